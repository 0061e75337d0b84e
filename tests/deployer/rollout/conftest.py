"""Recorded API objects (tests/resources/k8s/*.json, from `python -m tests.resources.k8s.record`)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

K8S = Path(__file__).resolve().parents[2] / "resources" / "k8s"


@dataclass(frozen=True)
class Recorded:
    """One scenario's objects as listed right after the watcher's verdict, and its timestamps."""

    scenario: str
    since: datetime
    recorded_at: datetime
    deployment: dict[str, Any]
    replicasets: list[dict[str, Any]]
    pods: list[dict[str, Any]]
    events: list[dict[str, Any]]
    watcher: dict[str, Any]
    policy: dict[str, Any]

    @property
    def pod(self) -> dict[str, Any]:
        """The one pod of single-pod scenarios."""
        (pod,) = self.pods
        return pod


@cache
def _load(scenario: str) -> dict[str, Any]:
    return json.loads((K8S / f"{scenario}.json").read_text())


def recorded(scenario: str) -> Recorded:
    """A fresh deep copy of a recorded scenario, safe to modify."""
    raw = copy.deepcopy(_load(scenario))
    (deployment,) = raw["deployments"]
    return Recorded(
        scenario,
        datetime.fromisoformat(raw["since"]),
        datetime.fromisoformat(raw["recorded_at"]),
        deployment,
        raw["replicasets"],
        raw["pods"],
        raw["events"],
        raw["watcher"],
        raw.get("policy", {}),
    )
