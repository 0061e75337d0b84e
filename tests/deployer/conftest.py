"""Guards for deployer unit tests (STYLE 7.3).

A unit test must not reach docker, helm, kubectl or the Kubernetes API by accident: those tests belong
under the `docker`, `registry` or `cluster` markers and fail in CI when the part is missing. The autouse
fixture below makes every such call raise `ReachedOutside` in an unmarked test, and fails the test at
teardown even when the code under test caught the exception (e.g. a doctor check that reports "docker
is not reachable" would otherwise pass for the wrong reason).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
import sh

GUARDED_TOOLS = frozenset({"docker", "helm", "kubectl", "buildctl", "dockerd", "containerd", "kubelet"})
LIVE_MARKERS = ("docker", "registry", "cluster")


class ReachedOutside(RuntimeError):
    """A unit test tried to run an outside tool or call the cluster."""


def _tool_of(argv: object) -> str | None:
    if isinstance(argv, (str, bytes, os.PathLike)):
        first = os.fsdecode(argv).split()[0] if os.fsdecode(argv).strip() else ""
    elif isinstance(argv, (list, tuple)) and argv:
        first = os.fsdecode(argv[0]) if isinstance(argv[0], (str, bytes, os.PathLike)) else ""
    else:
        return None
    name = os.path.basename(first)
    return name if name in GUARDED_TOOLS else None


@pytest.fixture(autouse=True)
def forget_registered_secrets() -> Iterator[None]:
    """Each test starts with no registered secrets (deployer.reporting.redact keeps a process-wide set)."""
    from deployer.reporting import redact

    redact.clear()
    yield
    redact.clear()


@pytest.fixture(autouse=True)
def no_outside_calls_in_unit_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[str]]:
    """Yields the list of refused attempts (a test of the guard itself may inspect and clear it)."""
    attempts: list[str] = []
    if any(request.node.get_closest_marker(m) for m in LIVE_MARKERS):
        yield attempts
        return

    def refuse(what: str) -> None:
        attempts.append(what)
        raise ReachedOutside(
            f"unit test tried to call {what}; fake the seam, or mark the test "
            f"@pytest.mark.docker/registry/cluster and call tests.conftest.require(...)"
        )

    real_popen_init = subprocess.Popen.__init__

    def guarded_popen_init(self, args, *a, **kw):  # type: ignore[no-untyped-def]
        tool = _tool_of(args)
        if tool:
            refuse(f"`{tool}` through subprocess")
        real_popen_init(self, args, *a, **kw)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded_popen_init)

    real_sh_init = sh.RunningCommand.__init__

    def guarded_sh_init(self, cmd, *a, **kw):  # type: ignore[no-untyped-def]
        tool = _tool_of(list(cmd))
        if tool:
            refuse(f"`{tool}` through sh")
        real_sh_init(self, cmd, *a, **kw)

    monkeypatch.setattr(sh.RunningCommand, "__init__", guarded_sh_init)

    import kubernetes.client.rest
    import kubernetes.stream.ws_client

    def guarded_request(self, method, url, *a, **kw):  # type: ignore[no-untyped-def]
        refuse(f"the Kubernetes API ({method} {url})")

    def guarded_websocket(*a, **kw):  # type: ignore[no-untyped-def]
        refuse("the Kubernetes API (websocket: exec/port-forward)")

    monkeypatch.setattr(kubernetes.client.rest.RESTClientObject, "request", guarded_request)
    monkeypatch.setattr(kubernetes.stream.ws_client, "create_websocket", guarded_websocket)

    yield attempts
    if attempts:
        pytest.fail("unit test reached outside: " + "; ".join(attempts), pytrace=False)


@pytest.fixture(autouse=True)
def chores_end_with_their_test(no_outside_calls_in_unit_tests: list[str]) -> Iterator[None]:
    """A test that runs ship steps by hand never calls `Chores.finish`: its released chores (cache push,
    engine clean-up) would run on, late, inside the next test, calling that test's fakes or the real
    docker. Every Chores made in the test is abandoned and its worker joined at teardown, before the
    guard above counts outside calls (this fixture depends on it, so it tears down first)."""
    from deployer import background

    made: list[background.Chores] = []
    real_init = background.Chores.__init__

    def tracking_init(self: background.Chores) -> None:
        real_init(self)
        made.append(self)

    background.Chores.__init__ = tracking_init  # type: ignore[method-assign]
    try:
        yield
    finally:
        background.Chores.__init__ = real_init  # type: ignore[method-assign]
        for chores in made:
            thread = chores.abandon()
            if thread is not None:
                thread.join(10)
