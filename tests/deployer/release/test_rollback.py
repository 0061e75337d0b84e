"""`deployer rollback` at the CLI seam (deployer.release.rollback): which revision, under the lock, watched
until healthy, and its exit codes. The fake cluster is the `cluster` fixture (conftest.py).

The real helm and cluster are exercised in e2e/test_ship_failures.py.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from deployer import cli
from deployer.errors import ExitCode
from deployer.release.rollback import pick_rollback_revision
from deployer.rollout.diagnosis import RolloutVerdict
from deployer.tools.helm import Revision
from tests.deployer.helmfakes import HelmSaid, helm_failures_are_helm_said  # noqa: F401 - autouse fixture
from tests.deployer.release.fakes import (
    SHIP,
    SHIP_OLD,
    _invoke,
    _rev,
)


def test_rollback_default_skips_the_rolled_back_revision_and_watches(
    cluster: Callable[..., SimpleNamespace],
) -> None:
    # 1 ok, 2 ok, 3 broken and auto-rolled back by ship (4 = copy of 2): "previous" is 1, not 3 or 2.
    rows = [
        _rev(1, "superseded", SHIP_OLD),
        _rev(2, "superseded", SHIP),
        _rev(3, "superseded", SHIP),
        _rev(4, "deployed", "Rollback to 2"),
    ]
    fake = cluster(rows)
    result = _invoke("rollback", "node-hello", "--timeout", "42")

    assert result.exit_code == 0, result.output
    rollback = [c for c in fake.helm.calls if c[1] == "rollback"]
    assert [c[2:4] for c in rollback] == [["node-hello", "1"]]
    assert fake.lock.taken == [("node-hello", "node-hello", "deployer rollback node-hello")]
    (watched,) = fake.watched
    assert (watched["namespace"], watched["deployment"], watched["timeout"]) == (
        "node-hello",
        "node-hello",
        42,
    )
    assert watched["generation"] == 7  # read after the rollback applied: the watch never judges older specs
    assert "rolled back node-hello in node-hello from revision 4 to 1 (now revision 5)" in result.output


def test_rollback_to_an_explicit_revision(cluster: Callable[..., SimpleNamespace]) -> None:
    fake = cluster([_rev(1, "superseded", SHIP_OLD), _rev(2, "superseded", SHIP), _rev(3, "deployed", SHIP)])
    result = _invoke("rollback", "node-hello", "--revision", "2")
    assert result.exit_code == 0, result.output
    assert [c[2:4] for c in fake.helm.calls if c[1] == "rollback"] == [["node-hello", "2"]]


def test_rollback_to_an_unknown_revision_exits_15_without_touching_helm(
    cluster: Callable[..., SimpleNamespace],
) -> None:
    fake = cluster([_rev(1, "superseded", SHIP_OLD), _rev(2, "deployed", SHIP)])
    result = CliRunner().invoke(cli.main, ["rollback", "node-hello", "--revision", "9"])
    assert result.exit_code == ExitCode.DEPLOY
    assert "has no revision 9 (helm keeps: 1, 2)" in result.output
    assert "rollback" not in fake.helm.subcommands()


def test_rollback_with_nothing_to_go_back_to_exits_15(cluster: Callable[..., SimpleNamespace]) -> None:
    fake = cluster([_rev(1, "deployed", SHIP)])
    result = CliRunner().invoke(cli.main, ["rollback", "node-hello"])
    assert result.exit_code == ExitCode.DEPLOY
    assert "no earlier good revision than 1" in result.output
    assert "rollback" not in fake.helm.subcommands()


def test_rollback_of_a_missing_release_exits_15_without_taking_the_lock(
    cluster: Callable[..., SimpleNamespace],
) -> None:
    fake = cluster([])
    result = CliRunner().invoke(cli.main, ["rollback", "node-hello"])
    assert result.exit_code == ExitCode.DEPLOY
    assert fake.lock.taken == []  # the lock would create the namespace


def test_rollback_that_does_not_become_healthy_exits_16_with_the_diagnosis(
    cluster: Callable[..., SimpleNamespace],
) -> None:
    def crashing(**_kwargs: Any) -> RolloutVerdict:
        return RolloutVerdict(
            False,
            "CrashLoopBackOff",
            "the container keeps exiting",
            message="back-off restarting failed container",
            object="pod/node-hello-x",
            pod="node-hello-x",
            container="node-hello",
            log_tail=["boom: cannot start"],
            warning_events=["BackOff pod/node-hello-x: Back-off restarting failed container"],
        )

    fake = cluster([_rev(1, "superseded", SHIP_OLD), _rev(2, "deployed", SHIP)], watch=crashing)
    result = CliRunner().invoke(cli.main, ["rollback", "node-hello"])

    assert result.exit_code == ExitCode.ROLLOUT, result.output
    assert "rollback to revision 1 (now revision 3) did not become healthy" in result.output
    assert "pod/node-hello-x container node-hello: CrashLoopBackOff" in result.output
    assert "| log node-hello-x/node-hello: boom: cannot start" in result.output  # the evidence is shown
    assert "| event BackOff pod/node-hello-x" in result.output
    assert not fake.lock.held  # released on the way out


def test_rollback_helm_failure_exits_15(cluster: Callable[..., SimpleNamespace]) -> None:
    fake = cluster(
        [_rev(1, "superseded", SHIP_OLD), _rev(2, "deployed", SHIP)],
        refuse={"rollback": "Error: another operation (install/upgrade/rollback) is in progress"},
    )
    result = CliRunner().invoke(cli.main, ["rollback", "node-hello"])
    assert result.exit_code == ExitCode.DEPLOY
    assert "helm rollback failed: Error: another operation" in result.output
    assert fake.watched == []


def test_rollback_is_refused_while_a_ship_holds_the_lock(cluster: Callable[..., SimpleNamespace]) -> None:
    fake = cluster(
        [_rev(1, "superseded", SHIP_OLD), _rev(2, "deployed", SHIP)], lock_holder="ci@runner pid=7"
    )
    result = CliRunner().invoke(cli.main, ["rollback", "node-hello"])
    assert result.exit_code == ExitCode.DEPLOY
    assert "another ship of release 'node-hello' is running: ci@runner pid=7" in result.output
    assert "rollback" not in fake.helm.subcommands() and fake.watched == []


@pytest.mark.parametrize(
    ("rows", "current", "expected"),
    [
        ([_rev(1, "superseded", SHIP), _rev(2, "deployed", SHIP)], 2, 1),
        ([_rev(1, "superseded", SHIP), _rev(2, "failed", SHIP), _rev(3, "deployed", SHIP)], 3, 1),
        (
            [_rev(1, "superseded", SHIP), _rev(2, "superseded", SHIP), _rev(3, "deployed", "Rollback to 1")],
            3,
            None,
        ),
        ([_rev(1, "deployed", SHIP)], 1, None),
    ],
)
def test_pick_rollback_revision(rows: list[dict[str, Any]], current: int, expected: int | None) -> None:
    history = [
        Revision(r["revision"], r["status"], r["chart"], r["app_version"], r["description"]) for r in rows
    ]
    assert pick_rollback_revision(history, current) == expected
