"""The release lock (a Lease) against a fake coordination API: the API server's create/update semantics."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from deployer.release.lock import ReleaseLock, ShipInProgress


class FakeCoordination:
    """Leases by name with resourceVersion checks, like the API server (409 on conflict, 404 if missing)."""

    def __init__(self) -> None:
        self.leases: dict[str, client.V1Lease] = {}
        self.version = 0

    def _stamp(self, lease: client.V1Lease) -> client.V1Lease:
        self.version += 1
        lease = copy.deepcopy(lease)
        lease.metadata.resource_version = str(self.version)
        self.leases[lease.metadata.name] = lease
        return copy.deepcopy(lease)

    def create_namespaced_lease(self, namespace: str, body: client.V1Lease) -> client.V1Lease:
        if body.metadata.name in self.leases:
            raise ApiException(status=409, reason="AlreadyExists")
        return self._stamp(body)

    def read_namespaced_lease(self, name: str, namespace: str) -> client.V1Lease:
        if name not in self.leases:
            raise ApiException(status=404, reason="NotFound")
        return copy.deepcopy(self.leases[name])

    def replace_namespaced_lease(self, name: str, namespace: str, body: client.V1Lease) -> client.V1Lease:
        if self.leases[name].metadata.resource_version != body.metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        return self._stamp(body)

    def delete_namespaced_lease(self, name: str, namespace: str, body: client.V1DeleteOptions) -> None:
        if name not in self.leases:
            raise ApiException(status=404, reason="NotFound")
        if body.preconditions.resource_version != self.leases[name].metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        del self.leases[name]


class FakeCore:
    def __init__(self) -> None:
        self.namespaces: set[str] = set()

    def read_namespace(self, name: str) -> object:
        if name not in self.namespaces:
            raise ApiException(status=404, reason="NotFound")
        return name

    def create_namespace(self, body: client.V1Namespace) -> object:
        self.namespaces.add(body.metadata.name)
        return body


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 7, 0, 0, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def cluster() -> tuple[FakeCoordination, FakeCore, Clock]:
    return FakeCoordination(), FakeCore(), Clock()


def lock(cluster, holder: str) -> ReleaseLock:  # type: ignore[no-untyped-def]
    coord, core, clock = cluster
    return ReleaseLock(
        None, "ns", "hello", holder=holder, duration=60, coordination=coord, core=core, clock=clock
    )


def test_second_ship_is_refused_while_the_first_holds_the_lock(cluster) -> None:  # type: ignore[no-untyped-def]
    first = lock(cluster, "alice@ci pid=1")
    first.acquire()
    assert cluster[1].namespaces == {"ns"}  # created for the Lease (helm --create-namespace is then a no-op)
    cluster[2].now += timedelta(seconds=30)
    with pytest.raises(ShipInProgress, match="alice@ci pid=1.*last renewed 30s ago") as info:
        lock(cluster, "bob@ci pid=2").acquire()
    assert "expires 60s after" in info.value.hint
    first.release()
    second = lock(cluster, "bob@ci pid=2")
    second.acquire()  # free again after release
    assert cluster[0].leases["deployer-ship-hello"].spec.holder_identity == "bob@ci pid=2"


def test_renewal_keeps_the_lock_alive(cluster) -> None:  # type: ignore[no-untyped-def]
    first = lock(cluster, "alice")
    first.acquire()
    for _ in range(5):
        cluster[2].now += timedelta(seconds=50)
        first.renew()
    with pytest.raises(ShipInProgress):
        lock(cluster, "bob").acquire()


def test_expired_lock_of_a_dead_run_is_taken_over(cluster) -> None:  # type: ignore[no-untyped-def]
    dead = lock(cluster, "alice")
    dead.acquire()
    cluster[2].now += timedelta(seconds=61)
    taker = lock(cluster, "bob")
    taker.acquire()
    lease = cluster[0].leases["deployer-ship-hello"]
    assert (lease.spec.holder_identity, lease.spec.lease_transitions) == ("bob", 1)
    assert lease.metadata.annotations["deployer/took-over-from"] == "alice"
    # the dead run, if it wakes up, learns it lost the lock and its release() leaves bob's lock alone
    with pytest.raises(ShipInProgress, match="lost the lock"):
        dead.renew()
    dead.release()
    assert "deployer-ship-hello" in cluster[0].leases
    taker.release()
    assert cluster[0].leases == {}


def test_context_manager_releases_on_error(cluster) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError), lock(cluster, "alice"):
        assert "deployer-ship-hello" in cluster[0].leases
        raise RuntimeError("ship failed")
    assert cluster[0].leases == {}


class Ticks:
    """The renewal loop's timer: `n` renewals, then stop (no waiting in tests)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def wait(self, seconds: float) -> bool:
        self.n -= 1
        return self.n < 0


def test_a_run_that_stalled_past_the_lease_learns_it_lost_the_lock(cluster) -> None:  # type: ignore[no-untyped-def]
    stalled = lock(cluster, "alice")
    stalled.acquire()
    assert stalled.lost is None
    cluster[2].now += timedelta(seconds=61)  # alice stalled (suspended laptop, SIGSTOP) past the lease
    lock(cluster, "bob").acquire()
    stalled._stop = Ticks(3)  # type: ignore[assignment]
    stalled._renew_loop()
    assert stalled.lost is not None and "lost the lock of release 'hello' to bob" in stalled.lost.message
    assert stalled._stop.n == 2  # type: ignore[attr-defined]  # stopped renewing at the first refusal


def test_a_renewal_that_failed_once_and_then_worked_is_not_a_lost_lock(cluster, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from deployer.tools.kube import KubeRequestFailed

    held = lock(cluster, "alice")
    held.acquire()
    real = held.renew
    outcomes = iter([KubeRequestFailed("renew lease: apiserver restarting", status=503), None])

    def renew() -> None:
        failure = next(outcomes)
        if failure is not None:
            raise failure
        real()

    monkeypatch.setattr(held, "renew", renew)
    held._stop = Ticks(1)  # type: ignore[assignment]
    held._renew_loop()
    assert isinstance(held.renew_error, KubeRequestFailed) and held.lost is None
    held._stop = Ticks(1)  # type: ignore[assignment]
    held._renew_loop()
    assert held.renew_error is None and held.lost is None
