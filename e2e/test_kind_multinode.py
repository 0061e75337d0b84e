"""Ships to a kind cluster of one control plane and two workers (DEPLOYER_KIND_NODES=3).

Not in `make test`: it brings up a second, three-node kind cluster (411 s at load average ~40 and
729 s at ~50 here) and its two tests took 647 s; run it with
    DEPLOYER_CLUSTER_PROVIDER=kind .venv/bin/pytest -q e2e/test_kind_multinode.py
- `replicas: 3` spreads over both workers and rolls out healthy;
- a worker stopped (`docker stop`) while a new version rolls out: deployer must end within the
  rollout deadline with a verdict that matches the cluster (never a hang, never a false success).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes import config as kube_config

from deployer.errors import ExitCode
from e2e.conftest import CLUSTER, Registry
from e2e.shipping import ServiceCopy, service_copy

pytestmark = [
    pytest.mark.provider("kind"),
    pytest.mark.cluster,
    pytest.mark.registry,
    pytest.mark.docker,
    pytest.mark.slow,
]

MULTI = {**os.environ, "DEPLOYER_CLUSTER_PROVIDER": "kind", "DEPLOYER_KIND_NODES": "3"}
KUBECONFIG = Path("/var/lib/deployer/kind/deployer-e2e-multi/kubeconfig")
WORKERS = {"deployer-e2e-multi-worker", "deployer-e2e-multi-worker2"}
ROLLOUT_DEADLINE = 180
DEPLOY = """namespace: {namespace}
replicas: 3
env: {{GREETING: "{greeting}"}}
# Lenient probes: this test is about nodes, not about how fast the app starts on a loaded machine.
probes:
  readiness: {{path: /healthz, initialDelaySeconds: 2, periodSeconds: 2, failureThreshold: 20}}
smoke:
  helmTest: false
# A fresh worker pulls the 150 MB image first; under load that alone took more than a minute.
timeouts: {{progressDeadline: {progress}, rollout: {rollout}, helm: 120, smoke: 15}}
"""


@pytest.fixture(scope="module")
def multi_api() -> client.ApiClient:
    """The three-node kind cluster, brought up (or repaired) by e2e/cluster."""
    if subprocess.run([str(CLUSTER), "status"], env=MULTI, capture_output=True).returncode != 0:
        up = subprocess.run([str(CLUSTER), "up"], env=MULTI, capture_output=True, text=True)
        assert up.returncode == 0, up.stderr[-4000:]
    return kube_config.new_client_from_config(config_file=str(KUBECONFIG))


@pytest.fixture
def service(multi_api: client.ApiClient, registry: Registry, tmp_path: Path) -> Iterator[ServiceCopy]:
    with service_copy(
        ServiceCopy,
        "node-hello",
        "e2emn",
        kubeconfig=KUBECONFIG,
        api=multi_api,
        registry=registry,
        tmp_path=tmp_path,
    ) as svc:
        svc.write(
            ".pipeline/deploy.yaml",
            DEPLOY.format(namespace=svc.namespace, greeting="v1", progress=240, rollout=300),
        )
        svc.commit("three replicas")
        yield svc


def _pods(svc: ServiceCopy) -> list[client.V1Pod]:
    pods = client.CoreV1Api(svc.api).list_namespaced_pod(
        svc.namespace, label_selector=f"app.kubernetes.io/instance={svc.name}"
    )
    return [p for p in pods.items if p.metadata.deletion_timestamp is None]


def _ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _node_ready(api: client.ApiClient, name: str) -> bool:
    node = client.CoreV1Api(api).read_node(name)
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


def test_three_replicas_spread_over_both_workers(service: ServiceCopy) -> None:
    ship = service.ship()
    assert ship.returncode == 0, ship.output[-4000:]
    assert ship.report["rollout"]["verdict"] == "healthy"
    pods = _pods(service)
    assert len(pods) == 3 and all(_ready(p) for p in pods), [(p.metadata.name, p.status.phase) for p in pods]
    # The control plane keeps its NoSchedule taint with workers present; the scheduler spreads the rest.
    assert {p.spec.node_name for p in pods} == WORKERS


def test_worker_stopped_mid_rollout_gives_a_verdict_that_matches_the_cluster(service: ServiceCopy) -> None:
    v1 = service.ship()
    assert v1.returncode == 0, v1.output[-4000:]
    old = {p.metadata.name for p in _pods(service)}
    service.write(
        ".pipeline/deploy.yaml",
        DEPLOY.format(namespace=service.namespace, greeting="v2", progress=120, rollout=ROLLOUT_DEADLINE),
    )
    service.commit("v2")
    stopped = "deployer-e2e-multi-worker2"
    result: list = []
    start = time.monotonic()
    worker = threading.Thread(target=lambda: result.append(service.ship()))
    worker.start()
    try:
        # Stop the worker as soon as the new version's first pod exists: the rollout is under way.
        while time.monotonic() - start < 240 and not (set(p.metadata.name for p in _pods(service)) - old):
            time.sleep(0.5)
        subprocess.run(["docker", "stop", "--time", "1", stopped], check=True, capture_output=True)
        worker.join(timeout=ROLLOUT_DEADLINE + 180)
        elapsed = time.monotonic() - start
        assert not worker.is_alive(), "deployer did not finish: a hang"
        (v2,) = result
        # Build, push and helm come before the watch; the watch itself is bounded by the deadline.
        assert v2.stage("watch")["duration_seconds"] <= ROLLOUT_DEADLINE + 15, (elapsed, v2.stage("watch"))
        rollout = v2.report["rollout"]
        if v2.returncode == 0:
            # A success must be true: three updated pods Ready, none of them on the stopped worker.
            pods = [p for p in _pods(service) if p.metadata.name not in old]
            ready = [p for p in pods if _ready(p) and p.spec.node_name != stopped]
            assert len(ready) >= 3, [(p.metadata.name, p.spec.node_name, _ready(p)) for p in pods]
        else:
            assert v2.returncode == ExitCode.ROLLOUT, v2.output[-4000:]
            assert rollout["verdict"] == "failed" and rollout["rolled_back"] is True, rollout
            # The explanation names what kept the rollout from finishing: a pod the stopped node holds.
            on_stopped = {p.metadata.name for p in _pods(service) if p.spec.node_name == stopped}
            text = " ".join([rollout["reason"], *rollout.get("evidence", [])])
            assert any(name in text for name in on_stopped) or stopped in text, (on_stopped, rollout)
    finally:
        subprocess.run(["docker", "start", stopped], capture_output=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not _node_ready(service.api, stopped):
            time.sleep(2)
