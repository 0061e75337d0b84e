"""The JSON ship report: one document, built only from the workflow's results.

`build_report(run, info)` reads the list of `StepResult`s (and the run facts in `RunInfo`) and returns
a dict that validates against `deployer/schema/report.schema.json`; `write_report` masks secrets and
writes it with sorted keys, so two reports diff by what changed.

Steps put what the report needs into their `details` under these keys (the ship steps do; any step
may):

- ``images``: a list of ``{variant, repository, tags, digest, pushed[, image_id]}``; a later step's
  entry for the same variant updates an earlier one (build records tags, push adds the digest);
- ``tests``: ``{variant, passed, exit_code, duration_seconds, output_tail[, image]}``;
- ``chart``: ``{name, version[, ref, digest]}``;
- ``revision``: the helm release revision the deploy created;
- ``rollout``: ``{verdict, reason[, rolled_back, rollback, evidence]}`` from the watch step;
- ``smoke``: a list of ``{name, kind, status, detail, duration_seconds}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from deployer.errors import ExitCode
from deployer.reporting.redact import redact
from deployer.workflow import Status, StepResult, WorkflowRun

__all__ = ["SCHEMA_VERSION", "RunInfo", "build_report", "report_schema", "write_report"]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RunInfo:
    """Facts about the run that are not any one step's outcome."""

    service: str
    service_dir: str
    environment: str
    started_at: datetime
    finished_at: datetime
    git_sha: str | None = None
    git_dirty: bool | None = None
    namespace: str | None = None
    release: str | None = None
    kube_context: str | None = None
    reproduce: Sequence[str] = field(default_factory=tuple)
    command: str = "ship"


@cache
def report_schema() -> dict[str, Any]:
    """The report's JSON Schema, as shipped in the package."""
    text = resources.files("deployer").joinpath("schema/report.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _exit_class(code: int) -> str:
    try:
        return ExitCode(code).name.lower()
    except ValueError:
        return "internal"


def _outcome(run: WorkflowRun) -> dict[str, Any]:
    failed = run.failed
    if failed is None:
        return {
            "status": "success",
            "exit_code": 0,
            "exit_class": "ok",
            "failed_stage": None,
            "reason": None,
            "hint": None,
            "next_command": None,
            "origin": None,
        }
    code = run.exit_code
    return {
        "status": "interrupted" if failed.status is Status.INTERRUPTED else "failed",
        "exit_code": code,
        "exit_class": _exit_class(code),
        "failed_stage": failed.name,
        "reason": failed.reason,
        "hint": failed.hint,
        "next_command": failed.next_command,
        # the configuration line most likely responsible (deployer/origin.py), when one is known
        "origin": failed.details.get("origin"),
    }


def _images(results: Sequence[StepResult]) -> list[dict[str, Any]]:
    by_variant: dict[str, dict[str, Any]] = {}
    for result in results:
        for image in result.details.get("images", ()):
            entry = by_variant.setdefault(
                image["variant"],
                {"variant": image["variant"], "repository": "", "tags": [], "digest": None, "pushed": False},
            )
            for key, value in image.items():
                if key == "tags":
                    entry["tags"] = sorted(set(entry["tags"]) | set(value))
                elif value is not None:
                    entry[key] = value
    return [by_variant[v] for v in sorted(by_variant)]


def _last(results: Sequence[StepResult], key: str) -> Any:
    found = None
    for result in results:
        if key in result.details:
            found = result.details[key]
    return found


_VERDICT_BY_CODE = {ExitCode.TIMEOUT: "timeout", ExitCode.INTERRUPTED: "interrupted"}


def _rollout(run: WorkflowRun, watch_stage: str) -> dict[str, Any]:
    reported = _last(run.results, "rollout")
    rollout: dict[str, Any] = {
        "verdict": "not-run",
        "reason": None,
        "revision": _last(run.results, "revision"),
        "rolled_back": False,
        "rollback": None,
    }
    watch = run.result(watch_stage)
    if watch is not None and watch.status in (Status.SUCCESS, Status.FAILED, Status.INTERRUPTED):
        if watch.status is Status.SUCCESS:
            rollout["verdict"] = "healthy"
        else:
            rollout["verdict"] = _VERDICT_BY_CODE.get(ExitCode(watch.exit_code), "failed")
            rollout["reason"] = watch.reason
            if watch.evidence:
                rollout["evidence"] = list(watch.evidence)
    if isinstance(reported, Mapping):
        rollout.update({k: v for k, v in reported.items() if k in _ROLLOUT_KEYS})
    rollout["rolled_back"] = bool(rollout.get("rolled_back"))
    return rollout


_ROLLOUT_KEYS = ("verdict", "reason", "revision", "rolled_back", "rollback", "evidence")


def build_report(run: WorkflowRun, info: RunInfo, *, watch_stage: str = "watch") -> dict[str, Any]:
    """The report for `run`, as a JSON-ready dict (unmasked; `write_report` masks)."""
    results = run.results
    return {
        "schema_version": SCHEMA_VERSION,
        "command": info.command,
        "service": {"name": info.service, "dir": info.service_dir},
        "git": {"sha": info.git_sha, "dirty": info.git_dirty},
        "target": {
            "environment": info.environment,
            "namespace": info.namespace,
            "release": info.release,
            "kube_context": info.kube_context,
        },
        "started_at": _iso(info.started_at),
        "finished_at": _iso(info.finished_at),
        "duration_seconds": round(run.duration, 3),
        "outcome": _outcome(run),
        "stages": [r.serialize() for r in results],
        "images": _images(results),
        "chart": _last(results, "chart"),
        "tests": _last(results, "tests"),
        "rollout": _rollout(run, watch_stage),
        "smoke": list(_last(results, "smoke") or []),
        "reproduce": list(info.reproduce),
    }


def _mask(value: Any) -> Any:
    # Mask strings one by one (not the JSON text): a secret with a quote or backslash is escaped
    # differently in JSON, and masking the text could miss it or break the document.
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {_mask(k): _mask(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(v) for v in value]
    return value


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    """Write `report` to `path` (masked, sorted keys, trailing newline), atomically."""
    text = json.dumps(_mask(report), indent=2, sort_keys=True, default=str) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
