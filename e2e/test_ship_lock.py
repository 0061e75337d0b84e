"""A ship that loses its release lock to another run while it watches: on the real cluster.

The Lease is taken over by hand (as a run would after this one stalled past the Lease duration) while
the ship watches a rollout that is slow on purpose (readiness only after 120 s). The ship's next renewal
finds the Lease held by someone else, and the watch stops at its next event or heartbeat: exit 15, the
report says why, nothing is rolled back or uninstalled, and the other holder's Lease is left alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes import client

from deployer.errors import ExitCode
from deployer.release.lock import LOCK_PREFIX
from e2e.conftest import Registry
from e2e.shipping import ServiceCopy, Ship, service_copy

pytestmark = [pytest.mark.cluster, pytest.mark.registry, pytest.mark.docker, pytest.mark.slow]

SLOW = """namespace: {namespace}
probes:
  readiness: {{path: /healthz, initialDelaySeconds: 120, periodSeconds: 1}}
smoke: {{helmTest: false}}
timeouts: {{progressDeadline: 280, rollout: 300, helm: 60}}
"""


@pytest.fixture
def service(
    cluster_kubeconfig: Path, kube: client.ApiClient, registry: Registry, tmp_path: Path
) -> Iterator[ServiceCopy]:
    where = dict(kubeconfig=cluster_kubeconfig, api=kube, registry=registry, tmp_path=tmp_path)
    with service_copy(ServiceCopy, "node-hello", "elk", **where) as svc:
        svc.write(".pipeline/deploy.yaml", SLOW.format(namespace=svc.namespace))
        svc.commit("slow readiness")
        yield svc


def _wait_for(what: str, probe, timeout: float = 180.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_a_ship_that_loses_its_lock_while_watching_stops_and_rolls_nothing_back(
    service: ServiceCopy, kube: client.ApiClient
) -> None:
    shipped: list[Ship] = []
    running = threading.Thread(target=lambda: shipped.append(service.ship("--timeout", "400")))
    running.start()

    apps, coord = client.AppsV1Api(kube), client.CoordinationV1Api(kube)
    lease_name = LOCK_PREFIX + service.name

    def deployment_has_a_pod() -> bool:
        if not running.is_alive():  # the ship ended before its rollout: show why
            pytest.fail(f"the ship ended early: {shipped[0].output[-3000:] if shipped else 'no result'}")
        try:
            deployment = apps.read_namespaced_deployment(service.name, service.namespace)
        except client.ApiException:
            return False
        return bool(deployment.status and deployment.status.replicas)

    _wait_for("the rollout to start (the ship is watching it)", deployment_has_a_pod)
    lease = coord.read_namespaced_lease(lease_name, service.namespace)
    holder = lease.spec.holder_identity
    lease.spec.holder_identity = "e2e-thief"
    lease.spec.renew_time = datetime.now(UTC)
    coord.replace_namespaced_lease(lease_name, service.namespace, lease)

    running.join(timeout=180)
    assert not running.is_alive(), "the ship went on watching after losing its lock"
    (ship,) = shipped
    assert ship.returncode == ExitCode.DEPLOY == 15, ship.output[-4000:]
    outcome = ship.report["outcome"]
    assert outcome["failed_stage"] == "watch", outcome
    assert outcome["reason"].startswith(f"lost the lock of release '{service.name}' to e2e-thief"), outcome
    assert "stopped during the rollout watch and changed nothing more (no rollback)" in outcome["reason"]
    assert holder != "e2e-thief"
    # nothing undone: the first install is still there (not uninstalled), and the thief keeps its Lease
    release = service.helm().status(service.name, service.namespace)
    assert release is not None and release.revision == 1, release
    kept = coord.read_namespaced_lease(lease_name, service.namespace)
    assert kept.spec.holder_identity == "e2e-thief"
