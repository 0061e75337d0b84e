"""`deployer status` at the CLI seam (deployer.release.status): helm's view, the Deployment's pods, the last
ship read from the helm history, the lock holder. The fake cluster is the `cluster` fixture (conftest.py).

The real helm and cluster are exercised in e2e/test_ship_failures.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from deployer import cli
from deployer.errors import ExitCode
from deployer.release import status as status_mod
from deployer.tools.helm import Revision
from tests.deployer.helmfakes import HelmSaid, helm_failures_are_helm_said  # noqa: F401 - autouse fixture
from tests.deployer.release.fakes import (
    IMAGE,
    SHIP,
    SHIP_OLD,
    FakeKube,
    _invoke,
    _pod,
    _rev,
)


def test_status_shows_revision_image_pods_and_last_ship(cluster: Callable[..., SimpleNamespace]) -> None:
    fake = cluster(
        [_rev(1, "superseded", SHIP_OLD), _rev(2, "deployed", SHIP)],
        kube=FakeKube(pods=[_pod("node-hello-1", True), _pod("node-hello-2", False, "CrashLoopBackOff", 4)]),
    )
    result = _invoke("status", "node-hello", "--namespace", "ns1")

    assert result.exit_code == 0, result.output
    out = result.output
    assert "release:   node-hello in namespace ns1" in out
    assert "revision:  2 (deployed), chart node-hello-0.0.2, app version tag2" in out
    assert f"image:     {IMAGE}" in out
    assert "pods:      1/1 ready, 1 updated, 1 available" in out
    assert "node-hello-2  CrashLoopBackOff  not ready  restarts 4" in out
    assert f"last ship: revision 2 ({IMAGE}) shipped, now deployed" in out
    assert "lock:      free" in out
    assert fake.kube.selectors == ["app.kubernetes.io/instance=node-hello,app.kubernetes.io/name=node-hello"]
    assert all("--namespace" in c and c[c.index("--namespace") + 1] == "ns1" for c in fake.helm.calls)


def test_status_json_says_a_failed_ship_was_rolled_back_and_who_holds_the_lock(
    cluster: Callable[..., SimpleNamespace],
) -> None:
    lease = SimpleNamespace(
        spec=SimpleNamespace(
            holder_identity="ci@runner pid=7",
            renew_time=datetime.now(UTC) - timedelta(seconds=3),
            acquire_time=None,
            lease_duration_seconds=60,
        ),
        metadata=SimpleNamespace(annotations={"deployer/command": "deployer ship node-hello"}),
    )
    cluster(
        [_rev(1, "superseded", SHIP_OLD), _rev(2, "superseded", SHIP), _rev(3, "deployed", "Rollback to 1")],
        kube=FakeKube(ready=0, lease=lease),
    )
    result = _invoke("status", "node-hello", "--json")

    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["revision"], data["status"], data["healthy"]) == (3, "deployed", False)
    assert data["last_ship"] == (
        f"revision 2 ({IMAGE}) did not roll out and was rolled back: revision 3 is a rollback to 1"
    )
    assert data["lock"].startswith("held by ci@runner pid=7 (deployer ship node-hello)")


def test_status_of_a_missing_release_exits_15(cluster: Callable[..., SimpleNamespace]) -> None:
    cluster([])
    result = CliRunner().invoke(cli.main, ["status", "node-hello"])
    assert result.exit_code == ExitCode.DEPLOY
    assert "no release 'node-hello' in namespace 'node-hello'" in result.output


def test_status_of_an_unknown_service_is_a_config_error() -> None:
    result = CliRunner().invoke(cli.main, ["status", "/nonexistent/service"])
    assert result.exit_code == ExitCode.CONFIG
    assert "service directory not found" in result.output


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([], None),
        ([_rev(1, "deployed", "Install complete")], None),
        (
            [_rev(1, "pending-upgrade", SHIP)],
            f"revision 1 ({IMAGE}) is pending-upgrade: that ship was interrupted",
        ),
        (
            [_rev(1, "superseded", SHIP), _rev(2, "deployed", "Upgrade complete")],
            f"revision 1 ({IMAGE}) shipped, now superseded",
        ),
    ],
)
def test_last_ship(rows: list[dict[str, Any]], expected: str | None) -> None:
    history = [
        Revision(r["revision"], r["status"], r["chart"], r["app_version"], r["description"]) for r in rows
    ]
    assert status_mod.last_ship(history) == expected
