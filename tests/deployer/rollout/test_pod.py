"""deployer.rollout.pod: container states to failures, one case per row of the reason table.

The pods are the recorded healthy pod with its container status replaced by a hand-written one (states
this cluster cannot easily produce: OOM kills, bad image names, config errors, init containers).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from deployer.rollout.pod import pod_status
from deployer.rollout.reasons import FailurePolicy
from tests.deployer.rollout.conftest import recorded

HEALTHY = recorded("healthy")
NOW = HEALTHY.recorded_at


def _pod(
    state: dict[str, Any],
    *,
    last: dict[str, Any] | None = None,
    restarts: int = 0,
    ready: bool = False,
    init: bool = False,
) -> dict[str, Any]:
    pod = recorded("healthy").pod
    status = {"name": "app", "ready": ready, "restartCount": restarts, "state": state, "lastState": {}}
    if last:
        status["lastState"] = {"terminated": last}
    if init:
        pod["spec"]["initContainers"] = [{"name": "migrate", "image": "x"}]
        status["name"] = "migrate"
        pod["status"]["initContainerStatuses"] = [status]
        pod["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "PodInitializing"}}
        pod["status"]["containerStatuses"][0]["ready"] = False
    else:
        pod["status"]["containerStatuses"] = [status]
    pod["status"]["conditions"] = [c for c in pod["status"]["conditions"] if c["type"] != "Ready"] + [
        {"type": "Ready", "status": "True" if ready else "False"}
    ]
    return pod


def _waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"waiting": {"reason": reason, "message": message}}


def _terminated(code: int, reason: str = "Error", **extra: Any) -> dict[str, Any]:
    return {"exitCode": code, "reason": reason, **extra}


@pytest.mark.parametrize(
    ("pod", "reason", "rule", "hint_start"),
    [
        (
            _pod(_waiting("ImagePullBackOff", 'Back-off pulling image "r/x:1"')),
            "ImagePullBackOff",
            "back-off",
            "the kubelet could not pull the image",
        ),
        (
            _pod(_waiting("ImagePullBackOff", 'Back-off pulling image "r/x:1": manifest unknown')),
            "ImagePullBackOff",
            "definitive",
            "the image does not exist",
        ),
        (
            _pod(_waiting("ErrImagePull", "failed to authorize: 401 Unauthorized")),
            "ErrImagePull",
            "definitive",
            "the registry refused",
        ),
        (
            _pod(_waiting("ErrImageNeverPull", "Container image is not present with pull policy of Never")),
            "ErrImageNeverPull",
            "definitive",
            "imagePullPolicy is Never",
        ),
        (
            _pod(
                _waiting(
                    "InvalidImageName", 'Failed to apply default image tag "r/X:": invalid reference format'
                )
            ),
            "InvalidImageName",
            "definitive",
            "the image reference is malformed",
        ),
        (
            _pod(
                _waiting(
                    "CreateContainerConfigError",
                    "container has runAsNonRoot and image has non-numeric user (app), "
                    "cannot verify user is non-root",
                )
            ),
            "CreateContainerConfigError",
            "definitive",
            "the image's user is not numeric",
        ),
        (
            _pod(_waiting("CreateContainerConfigError", 'configmap "web-config" not found')),
            "CreateContainerConfigError",
            "definitive",
            "the container's configuration is invalid",
        ),
        (
            _pod(
                _waiting("CrashLoopBackOff", "back-off 10s restarting failed container"),
                last=_terminated(3),
                restarts=1,
            ),
            "CrashLoopBackOff",
            "back-off",
            "the container keeps exiting",
        ),
        (
            _pod(
                _waiting("CrashLoopBackOff", "back-off 10s"), last=_terminated(137, "OOMKilled"), restarts=1
            ),
            "CrashLoopBackOff",
            "back-off",
            "the container ran out of memory",
        ),
        (
            _pod(_waiting("CrashLoopBackOff", "back-off 10s"), last=_terminated(127), restarts=1),
            "CrashLoopBackOff",
            "back-off",
            "exit code 127: the command was not found",
        ),
        (_pod({"terminated": _terminated(127)}), "ExitCode:127", "definitive", "exit code 127"),
        (_pod({"terminated": _terminated(126)}), "ExitCode:126", "definitive", "exit code 126"),
        (
            _pod({"terminated": _terminated(137, "OOMKilled")}, restarts=1),
            "OOMKilled",
            "2 exits, budget 2",
            "the container ran out of memory",
        ),
        (
            _pod({"terminated": _terminated(0, "Completed")}, restarts=1),
            "Completed",
            "2 exits, budget 2",
            "the main process exited with code 0",
        ),
        (
            _pod({"running": {"startedAt": "2026-01-01T00:00:00Z"}}, last=_terminated(1), restarts=2),
            "Error",
            "2 exits, budget 2",
            "the container exited with an error",
        ),
        (
            _pod(_waiting("RunContainerError", 'exec: "app": executable file not found in $PATH')),
            "RunContainerError",
            "definitive",
            "the container could not be started",
        ),
        (
            _pod(_waiting("ImagePullBackOff", "Back-off pulling image"), init=True),
            "Init:ImagePullBackOff",
            "back-off",
            "the kubelet could not pull the image",
        ),
        (
            _pod({"terminated": _terminated(2)}, restarts=1, init=True),
            "Init:Error",
            "2 exits, budget 2",
            "the container exited with an error",
        ),
    ],
)
def test_failing_container_states(pod: dict[str, Any], reason: str, rule: str, hint_start: str) -> None:
    status = pod_status(pod, now=NOW)
    assert status.failure is not None, status
    assert (status.failure.reason, status.failure.rule) == (reason, rule)
    assert status.failure.hint.startswith(hint_start), status.failure.hint
    assert status.failure.pod == pod["metadata"]["name"]
    assert status.waiting_for == ""


def test_crashloop_message_names_the_last_exit() -> None:
    pod = _pod(
        _waiting("CrashLoopBackOff", "back-off 10s restarting"),
        last=_terminated(137, "OOMKilled"),
        restarts=1,
    )
    failure = pod_status(pod, now=NOW).failure
    assert failure is not None
    assert failure.message == "last exit: OOMKilled (exit code 137); back-off 10s restarting"
    assert failure.exit_code == 137 and failure.restarted  # read the previous run's log


def test_signal_without_reason() -> None:
    pod = _pod({"terminated": {"exitCode": 0, "signal": 9}}, restarts=1)
    failure = pod_status(pod, now=NOW).failure
    assert failure is not None and (failure.reason, failure.rule) == ("Signal:9", "2 exits, budget 2")


@pytest.mark.parametrize(
    ("pod", "waiting_for"),
    [
        (
            _pod({"terminated": _terminated(1)}),
            "container app: exited (Error (exit code 1)), 1 of 2 exits allowed",
        ),
        (_pod(_waiting("ErrImagePull", "connection reset by peer")), "container app: ErrImagePull"),
        (_pod(_waiting("ContainerCreating")), "container app: ContainerCreating"),
        (
            _pod(
                {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                last=_terminated(1),
                restarts=1,
                ready=False,
            ),
            "container app to become ready (0s of 4s grace left)",
        ),
        (_pod({"running": {}}, init=True), "container app: PodInitializing"),
    ],
)
def test_states_within_budget_wait(pod: dict[str, Any], waiting_for: str) -> None:
    policy = FailurePolicy(readiness_grace=None)
    now = NOW
    running = pod["status"]["containerStatuses"][0]["state"].get("running", {})
    if running.get("startedAt"):
        from deployer.rollout._obj import parse_time

        now = parse_time(running["startedAt"]) + timedelta(seconds=4)
    status = pod_status(pod, now=now, policy=policy)
    assert status.failure is None
    assert status.waiting_for == waiting_for


def test_ready_container_forgives_earlier_exits() -> None:
    pod = _pod(
        {"running": {"startedAt": "2026-01-01T00:00:00Z"}}, last=_terminated(1), restarts=5, ready=True
    )
    status = pod_status(pod, now=NOW)
    assert status.ready and status.failure is None and status.waiting_for == ""


def test_readiness_grace_comes_from_the_probe() -> None:
    # The recorded probe: period 1, failureThreshold 2, timeout 1 -> window 3 s + 1 s slack.
    pod = _pod({"running": {"startedAt": "2026-01-01T00:00:00Z"}})
    from deployer.rollout._obj import parse_time

    start = parse_time("2026-01-01T00:00:00Z")
    assert pod_status(pod, now=start + timedelta(seconds=4)).failure is None
    failure = pod_status(pod, now=start + timedelta(seconds=5)).failure
    assert failure is not None and failure.reason == "ReadinessProbeFailed"
    assert failure.message == "not ready 5s after start; its probes allow 4s"
    fixed = pod_status(pod, now=start + timedelta(seconds=5), policy=FailurePolicy(readiness_grace=60))
    assert fixed.failure is None


def test_readiness_that_only_timed_out_gets_more_grace() -> None:
    # CI saw this at load 9: a healthy node app answered its 1 s probe late for 6 s and was rolled back.
    from deployer.rollout._obj import parse_time

    pod = _pod({"running": {"startedAt": "2026-01-01T00:00:00Z"}})
    start = parse_time("2026-01-01T00:00:00Z")
    waiting = pod_status(pod, now=start + timedelta(seconds=5), probe_slow=True)
    assert waiting.failure is None
    assert waiting.waiting_for == "container app to become ready (29s of 34s grace left)"
    late = pod_status(pod, now=start + timedelta(seconds=35), probe_slow=True).failure
    assert late is not None and late.message == (
        "not ready 35s after start; its probes allow 4s, +30s as every failed probe timed out"
    )
    short = FailurePolicy(slow_probe_grace=2)
    assert pod_status(pod, now=start + timedelta(seconds=7), probe_slow=True, policy=short).failure


def test_readiness_is_timed_by_our_clock_when_the_nodes_runs_ahead_of_it() -> None:
    # CI saw this: the kubelet's startedAt 23 s before our clock although the watch saw the container
    # start 2 s earlier; timed by startedAt alone, a container still starting was failed.
    from deployer.rollout._obj import parse_time

    pod = _pod({"running": {"startedAt": "2026-01-01T00:00:00Z"}})
    now = parse_time("2026-01-01T00:00:23Z")
    seen = {"app": now - timedelta(seconds=2)}
    assert pod_status(pod, now=now).failure is not None
    waiting = pod_status(pod, now=now, seen_running=seen)
    assert waiting.failure is None
    assert waiting.waiting_for == "container app to become ready (2s of 4s grace left)"
    late = pod_status(pod, now=now + timedelta(seconds=3), seen_running=seen).failure
    assert late is not None and late.message == "not ready 5s after start; its probes allow 4s"
    # A sighting older than startedAt (our clock behind the node's) changes nothing.
    behind = {"app": parse_time("2025-12-31T23:59:00Z")}
    assert pod_status(pod, now=now, seen_running=behind).failure is not None


def test_unschedulable_within_grace_waits() -> None:
    r = recorded("unschedulable")
    cond = r.pod["status"]["conditions"][0]
    from deployer.rollout._obj import parse_time

    since = parse_time(cond["lastTransitionTime"])
    status = pod_status(r.pod, now=since + timedelta(seconds=5))
    assert status.failure is None and status.waiting_for.startswith("a node: 0/1 nodes are available")
    assert status.summary == "Pending"


def test_failed_hook_pod() -> None:
    pod = _pod({"terminated": _terminated(1)})
    pod["metadata"]["annotations"] = {"helm.sh/hook": "test"}
    pod["status"]["phase"] = "Failed"
    status = pod_status(pod, now=NOW)
    assert status.hook and status.failure is not None
    assert (status.failure.reason, status.failure.message, status.failure.container) == (
        "HookFailed",
        "Error (exit code 1)",
        "app",
    )


def test_failed_deployment_pod_is_not_a_failure() -> None:
    pod = _pod({"terminated": _terminated(137)})
    pod["status"].update(phase="Failed", reason="Evicted")
    assert pod_status(pod, now=NOW).failure is None


def test_terminating_pod_is_ignored() -> None:
    pod = _pod(_waiting("CrashLoopBackOff"), restarts=3)
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status = pod_status(pod, now=NOW)
    assert (status.summary, status.failure) == ("Terminating", None)


def test_summary_like_kubectl() -> None:
    assert pod_status(HEALTHY.pod, now=NOW).summary == "Running"
    assert (
        pod_status(_pod(_waiting("ImagePullBackOff"), init=True), now=NOW).summary == "Init:ImagePullBackOff"
    )
    assert pod_status(recorded("imagepull").pod, now=NOW).summary == "ErrImagePull"


_ANONYMOUS = (
    'failed to pull and unpack image "registry.team.test:5443/staging/web@sha256:5e1c": failed to authorize: '
    "failed to fetch anonymous token: unexpected status: 401 Unauthorized"
)
_STALE = 'failed to resolve reference "127.0.0.1:5000/e2e/web:2": unexpected status: 401 Unauthorized'
_BACKOFF = 'Back-off pulling image "registry.team.test:5443/web@sha256:5e1c"'


def _with_pull_secret(state: dict[str, Any]) -> tuple[dict[str, Any], datetime]:
    pod = _pod(state)
    pod["spec"]["imagePullSecrets"] = [{"name": "deployer-registry"}]
    return pod, datetime.fromisoformat(pod["metadata"]["creationTimestamp"].replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("state", "unread"),
    [
        (_waiting("ErrImagePull", _ANONYMOUS), False),  # the message says it: pulled without credentials
        (_waiting("ErrImagePull", _ANONYMOUS), True),
        (_waiting("ImagePullBackOff", _BACKOFF), True),  # no error in the message: the event says it
    ],
)
def test_a_pull_without_the_unread_pull_secret_waits_for_the_kubelets_retry(
    state: dict[str, Any], unread: bool
) -> None:
    # CI saw it: the kubelet's first read of the new pull Secret timed out (FailedToRetrieveImagePullSecret),
    # it pulled anonymously (401), and the watch failed a rollout whose retry 10 s later would have pulled.
    pod, created = _with_pull_secret(state)
    policy = FailurePolicy(pull_secret_grace=30)

    early = pod_status(pod, now=created + timedelta(seconds=12), policy=policy, pull_secret_unread=unread)
    assert early.failure is None
    assert "pulled without its pull secret deployer-registry" in early.waiting_for
    assert "(18s of 30s grace left)" in early.waiting_for

    late = pod_status(pod, now=created + timedelta(seconds=31), policy=policy, pull_secret_unread=unread)
    assert late.failure is not None and late.failure.reason == state["waiting"]["reason"]


@pytest.mark.parametrize(
    "state",
    [
        _waiting("ErrImagePull", _STALE),  # refused with the Secret the kubelet read: stale credentials
        _waiting("ImagePullBackOff", _BACKOFF),
        _waiting("ErrImagePull", "registry.team.test:5443/staging/web:1: not found"),
    ],
)
def test_a_pull_refused_with_the_pull_secret_or_a_missing_image_fails_at_once(state: dict[str, Any]) -> None:
    pod, created = _with_pull_secret(state)
    failure = pod_status(pod, now=created + timedelta(seconds=2)).failure
    assert failure is not None and failure.rule in ("definitive", "back-off")


def test_an_anonymous_pull_by_a_pod_without_pull_secrets_fails_at_once() -> None:
    pod = _pod(_waiting("ErrImagePull", _ANONYMOUS))
    pod["spec"].pop("imagePullSecrets", None)
    created = datetime.fromisoformat(pod["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    failure = pod_status(pod, now=created + timedelta(seconds=2)).failure
    assert failure is not None and failure.rule == "definitive"
