"""`deployer ship` as users run it (the installed console script), against the real cluster and registry.

Scenarios: a healthy ship of node-hello with HTTP smoke checks; a failing smoke check (exit 17, one JUnit
case per check); a ship interrupted with Ctrl-C during the watch, then a new ship; a release left in
pending-upgrade by a killed helm, refused while the dead run's lock is fresh and repaired by the next ship.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from deployer.policies import BLUBBER as BLUBBER_POLICY
from kubernetes import client

from blubber import load as load_blubber
from blubber import runtime
from deployer import chart, deploy_config
from deployer.chart import ImageRef
from deployer.errors import ExitCode
from deployer.release.lock import ReleaseLock
from deployer.tools.helm import Helm
from e2e.conftest import REPO, Registry

pytestmark = [pytest.mark.cluster, pytest.mark.registry, pytest.mark.slow]

DEPLOYER = str(Path(sys.executable).parent / "deployer")
NODE_HELLO = REPO / "examples" / "node-hello"

SMOKE = """
probes:
  readiness: {path: /healthz, periodSeconds: 1}
smoke:
  checks:
    - {name: root, path: /, body: hello from node-hello}
    - {name: health, path: /healthz, body: '"ok"'}
"""


@dataclass
class Service:
    """A copy of node-hello shipped into its own namespace."""

    root: Path
    namespace: str
    kubeconfig: Path
    api: client.ApiClient

    def deploy_yaml(self, text: str) -> None:
        (self.root / ".pipeline" / "deploy.yaml").write_text(f"namespace: {self.namespace}\n{text}")

    def ship_argv(self, tag: str) -> list[str]:
        out = self.root.parent
        return [
            DEPLOYER, "ship", str(self.root), "--kubeconfig", str(self.kubeconfig), "--timeout", "300",
            "--report", str(out / f"{tag}.json"), "--junit", str(out / f"{tag}.xml"),
        ]  # fmt: skip

    def ship(self, tag: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        done = subprocess.run(self.ship_argv(tag), capture_output=True, text=True, timeout=900, env=_env())
        return done, self.report(tag)

    def report(self, tag: str) -> dict[str, Any]:
        path = self.root.parent / f"{tag}.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def helm(self) -> Helm:
        return Helm(kubeconfig=self.kubeconfig, timeout=120)


def _env() -> dict[str, str]:
    # Not CI's strict mode: the copy of the example is not a git work tree.
    return {k: v for k, v in os.environ.items() if k != "CI"}


@pytest.fixture
def service(
    cluster_kubeconfig: Path, kube: client.ApiClient, registry: Registry, tmp_path: Path
) -> Iterator[Service]:
    root = tmp_path / "node-hello"
    shutil.copytree(NODE_HELLO, root, ignore=shutil.ignore_patterns("node_modules", ".git"))
    namespace = f"e2e-cli-{uuid.uuid4().hex[:6]}"
    svc = Service(root, namespace, cluster_kubeconfig, kube)
    svc.deploy_yaml(SMOKE)
    yield svc
    client.CoreV1Api(kube).delete_namespace(namespace, propagation_policy="Background")


def _stage(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in report["stages"] if s["name"] == name)


def _junit_cases(path: Path) -> dict[str, bool]:
    """testcase name → passed."""
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        cases[case.get("name", "")] = not failed
    return cases


def _leases(svc: Service) -> list[str]:
    items = client.CoordinationV1Api(svc.api).list_namespaced_lease(svc.namespace).items
    return [lease.metadata.name for lease in items]


def test_healthy_ship_with_smoke_checks(service: Service) -> None:
    done, report = service.ship("healthy")

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (report["outcome"]["status"], report["outcome"]["exit_code"]) == ("success", 0)
    assert [s["status"] for s in report["stages"]] == ["success"] * 8
    assert [(c["name"], c["status"]) for c in report["smoke"]] == [
        ("helm-test", "passed"),
        ("root", "passed"),
        ("health", "passed"),
    ]
    assert report["chart"]["ref"] == "oci://127.0.0.1:5000/staging/charts/node-hello"
    assert report["chart"]["digest"].startswith("sha256:")
    (image,) = [i for i in report["images"] if i.get("pushed")]
    pods = client.CoreV1Api(service.api).list_namespaced_pod(
        service.namespace, label_selector="app.kubernetes.io/component=server"
    )
    (pod,) = pods.items
    assert pod.spec.containers[0].image == f"{image['repository']}@{image['digest']}"
    assert _leases(service) == []  # the lock is released after the ship
    # the build cache pushes, the local push tags' removal and the engine clean-up ran off the critical
    # path (deployer.ship.chores)
    pushed = {c["name"]: c["status"] for c in _stage(report, "push")["details"]["background"]}
    assert pushed == {"build cache of production": "ok", "push tags": "ok", "engine clean-up": "ok"}, pushed
    tested = [c["name"] for c in _stage(report, "test")["details"]["background"]]
    assert tested == ["build cache of test"]


def test_failing_smoke_check_exits_17_with_one_junit_case_per_check(service: Service) -> None:
    service.deploy_yaml(
        """
smoke:
  checks:
    - {name: root, path: /, body: hello from node-hello}
    - {name: greeting, path: /, body: goodbye}
"""
    )
    done, report = service.ship("smoke-fails")

    assert done.returncode == ExitCode.SMOKE, done.stdout[-3000:] + done.stderr[-3000:]
    smoke = _stage(report, "smoke")
    assert smoke["status"] == "failed"
    assert "greeting" in smoke["reason"]
    assert {c["name"]: c["status"] for c in report["smoke"]} == {
        "helm-test": "passed",
        "root": "passed",
        "greeting": "failed",
    }
    cases = _junit_cases(service.root.parent / "smoke-fails.xml")
    # one case per check (the report's JUnit writer may add a stage-level case too)
    assert {name: cases[name] for name in ("helm-test", "root", "greeting")} == {
        "helm-test": True,
        "root": True,
        "greeting": False,
    }, cases
    assert _leases(service) == []


def test_ship_interrupted_during_watch_then_new_ship(service: Service) -> None:
    first, _ = service.ship("first")
    assert first.returncode == 0, first.stdout[-3000:]

    # A ship whose pods never get ready is interrupted (Ctrl-C) while it watches the rollout.
    service.deploy_yaml("probes:\n  readiness: {path: /never-ready}\n")
    interrupted = subprocess.Popen(
        service.ship_argv("interrupted"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )
    assert interrupted.stdout is not None
    seen = []
    for line in interrupted.stdout:  # wait until the watch sees the new pod failing its readiness probe
        seen.append(line)
        if "watch: warning" in line and "Readiness probe failed" in line:
            break
    interrupted.send_signal(signal.SIGINT)
    rest, _ = interrupted.communicate(timeout=120)
    assert interrupted.returncode == ExitCode.INTERRUPTED, "".join(seen) + rest
    assert _stage(service.report("interrupted"), "watch")["status"] == "interrupted", "".join(seen) + rest
    assert _leases(service) == []  # released on the way out, so the next ship is not refused

    service.deploy_yaml(SMOKE)
    again, report = service.ship("again")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert all(c["status"] == "passed" for c in report["smoke"])
    status = service.helm().status("node-hello", service.namespace)
    assert status is not None and status.status == "deployed"


def test_pending_release_refused_while_locked_then_recovered(
    service: Service, registry: Registry, cluster_kubeconfig: Path
) -> None:
    first, report = service.ship("first")
    assert first.returncode == 0, first.stdout[-3000:]
    (image,) = [i for i in report["images"] if i.get("pushed")]
    ref = ImageRef(image["repository"], image["digest"], image["tags"][0])

    # An earlier run died inside `helm upgrade --wait`: the release is stuck in pending-upgrade and the
    # run's lock is still there (not renewed any more).
    config = deploy_config.load(service.root)
    facts = runtime(
        load_blubber(service.root / ".pipeline" / "blubber.yaml", policy=BLUBBER_POLICY), config.variant
    )
    broken = chart.write_chart(
        service.root.parent / "broken",
        "node-hello",
        chart.chart_version(),
        chart.render_values(replace(config, readiness=replace(config.readiness, path="/never")), facts, ref),
    )
    helm = service.helm()
    holder = "ci@dead-runner pid=1"
    dead = ReleaseLock(service.api, service.namespace, "node-hello", holder=holder, duration=30)
    dead.acquire()
    killed = subprocess.Popen(
        helm.argv(
            "upgrade", "node-hello", str(broken.path), "--namespace", service.namespace,
            "--wait", "--timeout", "300s",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            current = helm.status("node-hello", service.namespace)
            if current is not None and current.status == "pending-upgrade":
                break
            time.sleep(0.5)
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    current = helm.status("node-hello", service.namespace)
    assert current is not None and current.status == "pending-upgrade"

    refused, report = service.ship("refused")
    assert refused.returncode == ExitCode.DEPLOY, refused.stdout[-3000:]
    deploy = _stage(report, "deploy")
    assert "ci@dead-runner pid=1" in deploy["reason"]

    # The dead run's lock expires (its last renewal is older than its duration) ...
    leases = client.CoordinationV1Api(service.api)
    lease = leases.read_namespaced_lease(dead.name, service.namespace)
    lease.spec.renew_time = datetime.now(UTC) - timedelta(seconds=31)
    leases.replace_namespaced_lease(dead.name, service.namespace, lease)

    # ... and the next ship takes it over, rolls the stuck release back and ships.
    recovered, report = service.ship("recovered")
    assert recovered.returncode == 0, recovered.stdout[-3000:] + recovered.stderr[-3000:]
    assert "pending-upgrade" in _stage(report, "deploy")["details"]["recovered"]
    assert "rolled back to revision 1" in _stage(report, "deploy")["details"]["recovered"]
    assert all(c["status"] == "passed" for c in report["smoke"])
