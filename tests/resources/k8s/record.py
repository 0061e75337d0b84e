"""Record the API objects of each rollout scenario from a real cluster, as test fixtures.

    python -m tests.resources.k8s.record [--kubeconfig PATH] [scenario ...]

For each scenario (see `scenarios.py`): a fresh namespace, the Deployment applied, the watcher run to its
verdict, then the namespace's Deployments, ReplicaSets, Pods and Events listed as the API's JSON (with
managedFields dropped) and written to `<scenario>.json` here with the time they were listed, the time
tracking began, and the watcher's verdict. `upgrade-crash` first rolls out `healthy`, then changes the
command to one that crashes, so the fixture holds an old and a new ReplicaSet.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client

from deployer.rollout import FailurePolicy, watch_rollout
from deployer.tools.kube import load_api
from tests.resources.k8s.scenarios import SCENARIOS, deployment

HERE = Path(__file__).resolve().parent


def _raw(fn: Any, namespace: str) -> list[dict[str, Any]]:
    items = json.loads(fn(namespace, _preload_content=False).data)["items"]
    for item in items:
        item.get("metadata", {}).pop("managedFields", None)
    return items


def record(api: client.ApiClient, scenario: str, timeout: float = 90) -> dict[str, Any]:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    ns = f"rec-{scenario}-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": ns}})
    try:
        if scenario == "upgrade-crash":
            apps.create_namespaced_deployment(ns, deployment("web", "healthy", replicas=2))
            first = watch_rollout(api, ns, "web", timeout=timeout)
            assert first.healthy, first
            crashing = deployment("web", "crashloop", replicas=2)
            since = datetime.now(UTC)
            apps.replace_namespaced_deployment("web", ns, crashing)
            expect = SCENARIOS["crashloop"]["expect"]
        else:
            since = datetime.now(UTC)
            apps.create_namespaced_deployment(ns, deployment("web", scenario))
            expect = SCENARIOS[scenario]["expect"]
        events: list[str] = []
        policy = FailurePolicy(**SCENARIOS.get(scenario, {}).get("policy", {}))
        verdict = watch_rollout(
            api,
            ns,
            "web",
            timeout=timeout,
            since=since,
            policy=policy,
            on_event=lambda e: events.append(e.text()),
        )
        recorded_at = datetime.now(UTC)
        fixture = {
            "scenario": scenario,
            "expect": expect,
            "since": since.isoformat(),
            "recorded_at": recorded_at.isoformat(),
            "deployments": _raw(apps.list_namespaced_deployment, ns),
            "replicasets": _raw(apps.list_namespaced_replica_set, ns),
            "pods": _raw(core.list_namespaced_pod, ns),
            "events": _raw(core.list_namespaced_event, ns),
            "policy": SCENARIOS.get(scenario, {}).get("policy", {}),
            "watcher": {
                "healthy": verdict.healthy,
                "reason": verdict.reason,
                "duration": round(verdict.duration, 2),
                "log_tail": verdict.log_tail,
                "warning_events": verdict.warning_events,
                "feed": events,
            },
        }
        return fixture
    finally:
        core.delete_namespace(ns)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig")
    parser.add_argument("scenarios", nargs="*", default=[*SCENARIOS, "upgrade-crash"])
    args = parser.parse_args(argv)
    api = load_api(args.kubeconfig)
    for scenario in args.scenarios:
        fixture = record(api, scenario)
        path = HERE / f"{scenario}.json"
        path.write_text(json.dumps(fixture, indent=1, sort_keys=True) + "\n")
        w = fixture["watcher"]
        print(
            f"{scenario}: {w['reason']} after {w['duration']}s (expected {fixture['expect']}) -> {path.name}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
