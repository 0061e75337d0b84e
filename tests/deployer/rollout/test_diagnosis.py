"""deployer.rollout.diagnosis: which log to read, and the verdict's failure block."""

from __future__ import annotations

from deployer.rollout.deployment import rollout_status
from deployer.rollout.diagnosis import RolloutVerdict, container_log, timeout_failure
from deployer.tools.kube import KubeRequestFailed
from tests.deployer.rollout.conftest import recorded
from tests.deployer.rollout.fakes import ScriptedSource


def test_previous_run_first_when_restarted_then_current() -> None:
    source = ScriptedSource(lists={}, logs={("p", "app", False): ["current"]})
    assert container_log(source, "p", "app", restarted=True, tail=5) == ["current"]
    assert [c for c in source.calls if c[0] == "logs"] == [
        ("logs", "p", "app", True),
        ("logs", "p", "app", False),
    ]


def test_kubelet_error_text_is_not_a_log() -> None:
    gone = ["unable to retrieve container logs for containerd://c3dcb1f8"]
    source = ScriptedSource(lists={}, logs={("p", "app", False): gone, ("p", "app", True): ["earlier run"]})
    assert container_log(source, "p", "app", restarted=False, tail=5) == ["earlier run"]


def test_refused_log_is_empty() -> None:
    class Refusing(ScriptedSource):
        def logs(self, pod: str, container: str, *, previous: bool, tail: int) -> list[str]:
            raise KubeRequestFailed("container app is waiting to start", status=400)

    assert container_log(Refusing(lists={}), "p", "app", restarted=True, tail=5) == []


def test_timeout_points_at_the_first_unready_pod() -> None:
    r = recorded("notready")
    status = rollout_status(r.deployment, r.replicasets, r.pods, now=r.since, since=r.since)
    failure = timeout_failure(status, 60)
    pod = r.pod["metadata"]["name"]
    assert (failure.reason, failure.rule, failure.object, failure.pod, failure.container) == (
        "Timeout",
        "deadline",
        f"pod/{pod}",
        pod,
        "app",
    )
    assert failure.message.startswith("still waiting for: 0 of 1 updated replicas are available; pod web-")
    assert failure.hint.startswith("the rollout did not finish within 60s")
    assert timeout_failure(None, 5).message == "still waiting for: the first list of objects from the API"


def test_summary_block() -> None:
    verdict = RolloutVerdict(
        False,
        "Error",
        "see its logs",
        message="Error (exit code 3)",
        rule="2 exits, budget 2",
        object="pod/p",
        pod="p",
        container="app",
        log_tail=["boom"],
        warning_events=["pod/p: BackOff: Back-off (x2)"],
    )
    assert verdict.summary() == [
        "pod/p container app: Error (2 exits, budget 2)",
        "  Error (exit code 3)",
        "  hint: see its logs",
        "  last log lines of p/app:",
        "    boom",
        "  warning events since the deploy started:",
        "    pod/p: BackOff: Back-off (x2)",
    ]
    assert not verdict
    assert RolloutVerdict(True, "Available", "").summary() == []


def test_a_failed_verdict_describes_itself_for_errors_and_reports() -> None:
    from deployer.rollout.diagnosis import RolloutVerdict

    crash = RolloutVerdict(
        False, "Error", "", message="Error (exit code 3)", object="pod/web-1", pod="web-1", container="app",
        log_tail=["fatal: no DATABASE_URL"], warning_events=["Warning BackOff pod/web-1: Back-off"],
    )  # fmt: skip
    assert crash.diagnosis == "Error (exit code 3)"  # the message already starts with the reason
    assert crash.where("web") == "pod/web-1 container app"
    assert crash.evidence() == [
        "log web-1/app: fatal: no DATABASE_URL",
        "event Warning BackOff pod/web-1: Back-off",
    ]
    timeout = RolloutVerdict(False, "Timeout", "", message="")
    assert (timeout.diagnosis, timeout.where("web"), timeout.evidence()) == ("Timeout", "deployment/web", [])
