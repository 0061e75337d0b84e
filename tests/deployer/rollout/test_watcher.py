"""deployer.rollout.watcher: the loop over a scripted source (resume, re-list on 410, deadline, errors)."""

from __future__ import annotations

import copy
import re
import time

import pytest

from deployer.rollout import feed, watcher
from deployer.rollout.reasons import FailurePolicy
from deployer.rollout.watcher import watch_rollout
from deployer.tools.kube import KubeForbidden, KubeUnreachable, WatchExpired
from tests.deployer.rollout.conftest import recorded
from tests.deployer.rollout.fakes import ScriptedSource


def _creating(pod: dict) -> dict:
    pod = copy.deepcopy(pod)
    pod["status"]["containerStatuses"][0].update(
        ready=False, state={"waiting": {"reason": "ContainerCreating"}}
    )
    pod["status"]["conditions"] = [c for c in pod["status"]["conditions"] if c["type"] != "Ready"]
    return pod


def _unobserved(deployment: dict) -> dict:
    deployment = copy.deepcopy(deployment)
    deployment["status"]["observedGeneration"] = 0
    return deployment


def _run(source: ScriptedSource, r, timeout: float = 10) -> tuple[object, list[feed.RolloutEvent]]:
    seen: list[feed.RolloutEvent] = []
    verdict = watch_rollout(
        None, "ns", "web", timeout=timeout, since=r.since, on_event=seen.append, source=source
    )
    return verdict, seen


def test_lists_then_watches_resumes_from_last_version_and_relists_on_410() -> None:
    r = recorded("healthy")
    still = _unobserved(r.deployment)
    still["metadata"]["resourceVersion"] = "7"
    source = ScriptedSource(
        lists={
            "deployment": [[_unobserved(r.deployment)]],
            "replicaset": [r.replicasets],
            "pod": [[_creating(r.pod)], r.pods],
        },
        watches={
            # The server ends the first deployment watch after one change: the next one resumes from
            # version 7 and brings the complete Deployment.
            "deployment": [[("MODIFIED", still)], [("MODIFIED", r.deployment)]],
            # The pod watch expires (410): list again, which now shows the pod ready.
            "pod": [[WatchExpired("too old resource version: 1 (2)")]],
        },
    )
    verdict, seen = _run(source, r)
    assert verdict.healthy and verdict.reason == "Available"
    assert verdict.message == "deployment web successfully rolled out (1/1 available)"
    assert ("list", "pod") in source.calls and source.calls.count(("list", "pod")) == 2
    deployment_watches = [c for c in source.calls if c[:2] == ("watch", "deployment")]
    assert deployment_watches[:2] == [
        ("watch", "deployment", "deployment-list-1"),
        ("watch", "deployment", "7"),
    ]
    restarts = [e for e in seen if isinstance(e, feed.WatchRestarted)]
    assert [(e.kind, e.cause) for e in restarts] == [
        ("pod", "resource version expired, listing again (too old resource version: 1 (2))")
    ]
    assert isinstance(seen[-1], feed.RolloutSucceeded)
    assert any(isinstance(e, feed.PodReady) for e in seen)
    assert ("stop",) in source.calls


def test_deadline_gives_a_timeout_verdict_with_what_it_waited_for() -> None:
    r = recorded("healthy")
    source = ScriptedSource(
        lists={"deployment": [[_unobserved(r.deployment)]], "replicaset": [r.replicasets], "pod": [r.pods]}
    )
    verdict, seen = _run(source, r, timeout=0.3)
    assert not verdict.healthy
    assert (verdict.reason, verdict.rule) == ("Timeout", "deadline")
    assert verdict.message == "still waiting for: waiting for the controller to observe generation 1"
    assert isinstance(seen[-1], feed.RolloutTimedOut)
    assert seen[-1].waiting_for == "waiting for the controller to observe generation 1"
    assert 0.3 <= verdict.duration < 5
    assert ("stop",) in source.calls


def test_failure_gathers_the_log_of_the_latest_run_and_warning_events() -> None:
    r = recorded("crashloop")
    pod = r.pod["metadata"]["name"]
    source = ScriptedSource(
        lists={
            "deployment": [[r.deployment]],
            "replicaset": [r.replicasets],
            "pod": [r.pods],
            "event": [r.events],
        },
        logs={(pod, "app", False): ["starting up", "fatal: no config"]},
    )
    verdict, seen = _run(source, r)
    assert (verdict.healthy, verdict.reason, verdict.pod, verdict.container) == (False, "Error", pod, "app")
    assert verdict.exit_code == 3
    assert verdict.log_tail == ["starting up", "fatal: no config"]
    assert ("logs", pod, "app", False) in source.calls  # terminated now: its own log is the latest run
    assert any(
        line.startswith(f"pod/{pod}: BackOff: Back-off restarting failed container app")
        for line in verdict.warning_events
    )
    assert isinstance(seen[-1], feed.RolloutFailed)
    assert seen[-1].failure.reason == "Error"
    assert verdict.summary()[0] == f"pod/{pod} container app: Error (2 exits, budget 2)"


def test_tracking_errors_are_raised_not_reported_as_a_verdict() -> None:
    r = recorded("healthy")
    forbidden = KubeForbidden("cannot list events in namespace ns: forbidden (403)", status=403)
    source = ScriptedSource(
        lists={
            "deployment": [[_unobserved(r.deployment)]],
            "replicaset": [r.replicasets],
            "pod": [r.pods],
            "event": [forbidden],
        }
    )
    with pytest.raises(KubeForbidden):
        _run(source, r)
    assert ("stop",) in source.calls


def test_dropped_connection_resumes_from_the_same_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watcher, "_RETRY_SECONDS", 0.01)
    r = recorded("healthy")
    source = ScriptedSource(
        lists={"deployment": [[_unobserved(r.deployment)]], "replicaset": [r.replicasets], "pod": [r.pods]},
        watches={"deployment": [[KubeUnreachable("connection reset")], [("MODIFIED", r.deployment)]]},
    )
    verdict, seen = _run(source, r)
    assert verdict.healthy
    deployment_watches = [c for c in source.calls if c[:2] == ("watch", "deployment")]
    assert deployment_watches[:2] == [("watch", "deployment", "deployment-list-1")] * 2
    assert source.calls.count(("list", "deployment")) == 1
    # One dropped connection that resumes at once is no outage: nothing about it is reported.
    noise = (feed.WatchRestarted, feed.ApiUnreachable, feed.ApiReachable)
    assert not [e.text() for e in seen if isinstance(e, noise)]


def test_heartbeat_while_nothing_changes() -> None:
    r = recorded("healthy")
    source = ScriptedSource(
        lists={"deployment": [[_unobserved(r.deployment)]], "replicaset": [r.replicasets], "pod": [r.pods]}
    )
    seen: list[feed.RolloutEvent] = []
    watch_rollout(None, "ns", "web", timeout=1.0, heartbeat=0.3, on_event=seen.append, source=source)
    beats = [e for e in seen if isinstance(e, feed.Heartbeat)]
    assert beats, [e.text() for e in seen]
    assert beats[0].waiting_for == "waiting for the controller to observe generation 1"
    assert 0 < beats[0].remaining < 1.0
    assert isinstance(seen[-1], feed.RolloutTimedOut)


def test_abort_ends_the_watch_with_its_error_and_stops_the_streams() -> None:
    r = recorded("healthy")
    source = ScriptedSource(
        lists={"deployment": [[_unobserved(r.deployment)]], "replicaset": [r.replicasets], "pod": [r.pods]}
    )
    seen: list[feed.RolloutEvent] = []
    asked: list[int] = []

    class Lost(Exception):
        pass

    def abort() -> BaseException | None:
        asked.append(len(seen))
        return Lost("lost the lock") if len(asked) >= 2 else None

    with pytest.raises(Lost, match="lost the lock"):
        watch_rollout(
            None, "ns", "web", timeout=30.0, heartbeat=0.2, on_event=seen.append, source=source, abort=abort
        )
    assert len(asked) == 2 and asked[-1] == len(seen)  # asked after each event, stopped at the second
    assert source.stopped.is_set()


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Back-off of 0.05 s doubling, capped at 0.2 s (a test may raise the cap)."""
    monkeypatch.setattr(watcher, "_RETRY_SECONDS", 0.05)
    monkeypatch.setattr(watcher, "_BACKOFF_CAP", 0.2)
    return monkeypatch


def _outage_source(r, down_lists: int) -> ScriptedSource:
    """Every stream's connection drops, its resume fails, then `down_lists` lists fail before one answers."""
    gone = KubeUnreachable("connection refused")
    return ScriptedSource(
        lists={
            "deployment": [[_unobserved(r.deployment)], *[gone] * down_lists, [r.deployment]],
            "replicaset": [r.replicasets, *[gone] * down_lists, r.replicasets],
            "pod": [[_creating(r.pod)], *[gone] * down_lists, r.pods],
            "event": [[], *[gone] * down_lists, []],
        },
        watches={kind: [[gone], [gone]] for kind in ("deployment", "replicaset", "pod", "event")},
    )


@pytest.mark.usefixtures("fast_backoff")
def test_an_api_outage_is_one_line_down_and_one_line_back_with_its_length() -> None:
    r = recorded("healthy")
    source = _outage_source(r, down_lists=4)
    verdict, seen = _run(source, r)
    assert verdict.healthy, [e.text() for e in seen]
    about_the_api = [
        e for e in seen if isinstance(e, (feed.ApiUnreachable, feed.ApiReachable, feed.WatchRestarted))
    ]
    assert [type(e) for e in about_the_api] == [feed.ApiUnreachable, feed.ApiReachable]
    down, back = about_the_api
    assert down.cause == "connection refused" and 0 < down.tolerated <= 10
    assert down.text().startswith("Kubernetes API unreachable (connection refused)")
    # Each stream waited 0.05 + 0.1 + 0.2 + 0.2 s (capped) between its four failed lists.
    assert 0.5 <= back.outage < 5
    assert f"after {back.outage:.1f}s" in back.text()
    # Every stream listed again once per failed try plus the one that answered: no tight loop.
    assert source.calls.count(("list", "pod")) == 1 + 4 + 1


@pytest.mark.usefixtures("fast_backoff")
def test_a_verdict_reached_while_one_stream_still_retries_says_the_api_is_back() -> None:
    """The rollout's own lists answer again while the event stream still waits to retry: the verdict
    comes from fresh lists, so the last word about the API must be that it is back, not that it is gone."""
    r = recorded("healthy")
    source = _outage_source(r, down_lists=1)
    gone = KubeUnreachable("connection refused")
    source.lists["event"] = [[], *[gone] * 1000, []]  # events stay down far past the verdict
    verdict, seen = _run(source, r)
    assert verdict.healthy, [e.text() for e in seen]
    about_the_api = [e for e in seen if isinstance(e, (feed.ApiUnreachable, feed.ApiReachable))]
    assert [type(e) for e in about_the_api] == [feed.ApiUnreachable, feed.ApiReachable]
    assert isinstance(seen[-1], feed.RolloutSucceeded) and seen[-2] is about_the_api[-1]


def test_backoff_while_the_api_is_gone_doubles_and_is_capped(fast_backoff: pytest.MonkeyPatch) -> None:
    fast_backoff.setattr(watcher, "_BACKOFF_CAP", 0.4)
    r = recorded("healthy")
    times: list[float] = []
    source = _outage_source(r, down_lists=6)
    original = source.list

    def timed(kind: str):
        if kind == "deployment":
            times.append(time.monotonic())
        return original(kind)

    source.list = timed  # type: ignore[method-assign]
    verdict, _ = _run(source, r)
    assert verdict.healthy
    gaps = [b - a for a, b in zip(times[1:], times[2:], strict=False)]  # after the first re-list
    assert len(gaps) == 6
    assert gaps[0] < gaps[1] < gaps[2], gaps  # 0.1, 0.2, 0.4: doubling …
    # … then capped at 0.4 s (uncapped, the last gaps would be 1.6 and 3.2 s)
    assert all(0.35 <= g < 1.2 for g in gaps[2:]), gaps


@pytest.mark.usefixtures("fast_backoff")
def test_an_outage_past_the_deadline_is_a_clear_verdict_not_a_timeout() -> None:
    r = recorded("healthy")
    source = _outage_source(r, down_lists=10_000)
    verdict, seen = _run(source, r, timeout=1.5)
    assert not verdict.healthy
    assert (verdict.reason, verdict.rule, verdict.object) == ("ApiUnreachable", "deadline", "apiserver")
    assert "the Kubernetes API, unreachable for the last" in verdict.message
    assert "(connection refused)" in verdict.message
    assert "rollout's state is unknown" in verdict.hint
    assert isinstance(seen[-1], feed.RolloutTimedOut)
    assert [type(e) for e in seen if isinstance(e, (feed.ApiUnreachable, feed.ApiReachable))] == [
        feed.ApiUnreachable
    ]
    assert 1.5 <= verdict.duration < 5


@pytest.mark.parametrize("unread", [True, False], ids=["secret-unread", "secret-read"])
def test_the_kubelets_unread_pull_secret_event_turns_a_pull_back_off_into_a_wait(unread: bool) -> None:
    from datetime import UTC, datetime

    r = recorded("imagepull")
    pod = copy.deepcopy(r.pod)
    pod["metadata"]["creationTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    pod["spec"]["imagePullSecrets"] = [{"name": "deployer-registry"}]
    pod["status"]["containerStatuses"][0]["state"] = {
        "waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "r/web@sha256:5e1c"'}
    }
    event = {
        "metadata": {"name": "e1", "uid": "e1", "resourceVersion": "1"},
        "type": "Warning",
        "reason": "FailedToRetrieveImagePullSecret" if unread else "BackOff",
        "message": "Unable to retrieve some image pull secrets (deployer-registry)",
        "involvedObject": {"kind": "Pod", "name": pod["metadata"]["name"]},
    }
    source = ScriptedSource(
        lists={
            "deployment": [[r.deployment]],
            "replicaset": [r.replicasets],
            "pod": [[pod]],
            "event": [[event]],
        }
    )
    verdict, _ = _run(source, r, timeout=1.0)
    if unread:  # the kubelet pulled without the Secret: its retry is waited for, the deadline decides here
        assert (verdict.reason, verdict.rule) == ("Timeout", "deadline"), verdict.summary()
        assert "pulled without its pull secret deployer-registry" in verdict.message
    else:
        assert (verdict.reason, verdict.rule) == ("ImagePullBackOff", "back-off"), verdict.summary()


def test_a_container_the_watch_saw_start_is_timed_from_that_sighting_not_the_nodes_clock() -> None:
    # The node's startedAt is a minute behind our clock (a skewed node, or CI's clock stepped): the pod's
    # readiness grace (4 s) counts from when this watch saw it running, so the deadline decides here.
    from datetime import UTC, datetime, timedelta

    r = recorded("notready")
    pod = copy.deepcopy(r.pod)
    skewed = datetime.now(UTC) - timedelta(seconds=60)
    status = pod["status"]["containerStatuses"][0]
    status.update(ready=False, state={"running": {"startedAt": skewed.strftime("%Y-%m-%dT%H:%M:%SZ")}})
    status.pop("lastState", None)
    status["restartCount"] = 0
    source = ScriptedSource(
        lists={"deployment": [[r.deployment]], "replicaset": [r.replicasets], "pod": [[pod]], "event": [[]]}
    )
    verdict, _ = _run(source, r, timeout=1.5)
    assert (verdict.reason, verdict.rule) == ("Timeout", "deadline"), verdict.summary()
    assert "to become ready" in verdict.message


def test_times_from_the_api_are_compared_in_the_servers_clock() -> None:
    # Our clock 40 s ahead of the cluster's: the rollout's own failed test pod, created after the deploy
    # began by the cluster's clock but "before" it by ours, still fails the rollout.
    from datetime import UTC, datetime, timedelta

    r = recorded("healthy")
    since = datetime.now(UTC)
    server_now = since - timedelta(seconds=40)
    hook = {
        "metadata": {
            "name": "web-test-http",
            "uid": "t1",
            "resourceVersion": "9",
            "creationTimestamp": (server_now + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "annotations": {"helm.sh/hook": "test"},
        },
        "spec": {"containers": [{"name": "http-check"}]},
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {"name": "http-check", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}
            ],
        },
    }
    lists = {"deployment": [[r.deployment]], "replicaset": [r.replicasets], "pod": [[*r.pods, hook]]}
    for offset, failed in ((0.0, False), (-40.0, True)):
        source = ScriptedSource(lists={k: [list(v[0])] for k, v in lists.items()} | {"event": [[]]})
        source.clock_offset = offset
        verdict = watch_rollout(None, "ns", "web", timeout=2, since=since, source=source)
        assert (verdict.reason == "HookFailed") is failed, verdict.summary()


@pytest.mark.parametrize("answer", ["timed out", "refused"])
def test_a_readiness_probe_that_only_timed_out_is_given_more_time(answer: str) -> None:
    # CI at load 9: a healthy app answered its 1 s probe late for 6 s and was rolled back. A probe that
    # only ever timed out waits `slow_probe_grace` more; one that was refused fails at its own grace.
    from datetime import UTC, datetime

    r = recorded("notready")
    pod = copy.deepcopy(r.pod)
    status = pod["status"]["containerStatuses"][0]
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status.update(ready=False, state={"running": {"startedAt": started}}, restartCount=0)
    status.pop("lastState", None)
    message = {
        "timed out": 'Get "http://10.244.0.9:8080/healthz": context deadline exceeded',
        "refused": 'Get "http://10.244.0.9:8080/healthz": dial tcp 10.244.0.9:8080: connection refused',
    }[answer]
    event = {
        "metadata": {"name": "e1", "uid": "e1", "resourceVersion": "1"},
        "type": "Warning",
        "reason": "Unhealthy",
        "message": f"Readiness probe failed: {message}",
        "involvedObject": {"kind": "Pod", "name": pod["metadata"]["name"]},
    }
    source = ScriptedSource(
        lists={
            "deployment": [[r.deployment]],
            "replicaset": [r.replicasets],
            "pod": [[pod]],
            "event": [[event]],
        }
    )
    verdict = watch_rollout(
        None, "ns", "web", timeout=1.5, since=r.since, source=source, policy=FailurePolicy(readiness_grace=0)
    )
    if answer == "timed out":
        assert (verdict.reason, verdict.rule) == ("Timeout", "deadline"), verdict.summary()
        assert re.search(r"container app to become ready \(\d+s of 30s grace left\)", verdict.message)
    else:
        assert (verdict.reason, verdict.rule) == ("ReadinessProbeFailed", "grace"), verdict.summary()
