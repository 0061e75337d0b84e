"""deployer.rollout.deployment: the Deployment's own rules, and whole rollouts from recorded objects."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from deployer.rollout.deployment import deployment_status, rollout_status
from deployer.rollout.reasons import FailurePolicy
from tests.deployer.rollout.conftest import recorded


def _status(scenario: str):
    r = recorded(scenario)
    policy = FailurePolicy(**r.policy)
    return rollout_status(
        r.deployment, r.replicasets, r.pods, now=r.recorded_at, since=r.since, policy=policy
    )


# Each scenario was recorded from the local cluster right after the watcher's verdict; evaluated again at
# the time of the listing, the objects must give the same verdict. All of them are recorded, none hand-made.
@pytest.mark.parametrize(
    ("scenario", "reason", "rule", "message"),
    [
        ("crashloop", "Error", "2 exits, budget 2", "Error (exit code 3)"),
        ("upgrade-crash", "Error", "2 exits, budget 2", "Error (exit code 3)"),
        ("oom", "OOMKilled", "2 exits, budget 2", "OOMKilled (exit code 137)"),
        (
            "imagepull",
            "ErrImagePull",
            "definitive",
            "rpc error: code = NotFound desc = failed to pull and unpack image "
            '"127.0.0.1:5000/e2e/does-not-exist:never-pushed": failed to resolve reference '
            '"127.0.0.1:5000/e2e/does-not-exist:never-pushed": '
            "127.0.0.1:5000/e2e/does-not-exist:never-pushed: not found",
        ),
        ("notready", "ReadinessProbeFailed", "grace", "not ready 5s after start; its probes allow 4s"),
        (
            "deadline",
            "ProgressDeadlineExceeded",
            "definitive",
            'ReplicaSet "web-78bbc79ff5" has timed out progressing.',
        ),
        (
            "unschedulable",
            "Unschedulable",
            "unschedulable for 20s, grace 20s",
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: "
            "0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
        ),
    ],
)
def test_recorded_failures_give_their_reason(scenario: str, reason: str, rule: str, message: str) -> None:
    status = _status(scenario)
    assert not status.healthy
    assert status.failure is not None
    assert (status.failure.reason, status.failure.rule, status.failure.message) == (reason, rule, message)
    assert recorded(scenario).watcher["reason"] == reason  # what the live watcher said when recording


def test_recorded_missing_command_is_definitive_with_the_runtime_message() -> None:
    failure = _status("nocommand").failure
    assert failure is not None
    assert (failure.reason, failure.rule, failure.container) == ("RunContainerError", "definitive", "app")
    assert failure.message.startswith(
        "last exit: StartError (exit code 128); failed to create containerd task"
    )
    assert '"/no/such/binary": stat /no/such/binary: no such file or directory' in failure.message
    assert failure.hint.startswith("the container could not be started")


def test_recorded_healthy_rollout_is_healthy_with_the_new_replicaset() -> None:
    status = _status("healthy")
    assert status.healthy and status.failure is None and status.waiting_for == ""
    assert status.new_replicaset == recorded("healthy").replicasets[0]["metadata"]["name"]
    assert status.revision == 1
    assert status.deployment is not None
    assert status.deployment.message == "deployment web successfully rolled out (1/1 available)"


def test_upgrade_counts_only_the_new_replicasets_pods() -> None:
    r = recorded("upgrade-crash")
    status = _status("upgrade-crash")
    new = status.new_replicaset
    assert new is not None and status.revision == 2
    assert len(r.replicasets) == 2
    new_pod_names = {p["metadata"]["name"] for p in r.pods if new in p["metadata"]["name"]}
    assert {p.name for p in status.pods} == new_pod_names
    assert status.failure is not None and status.failure.pod in new_pod_names


def test_pod_failure_wins_over_the_deadline_it_causes() -> None:
    r = recorded("crashloop")
    r.deployment["status"]["conditions"][1].update(reason="ProgressDeadlineExceeded", status="False")
    status = rollout_status(r.deployment, r.replicasets, r.pods, now=r.recorded_at, since=r.since)
    assert status.failure is not None and status.failure.reason == "Error"


def test_unready_pod_is_not_healthy_although_the_deployment_counts_it_available() -> None:
    # The controller's counters lag: the crashloop pod exited but the Deployment still said available.
    r = recorded("crashloop")
    r.deployment["status"].update(availableReplicas=1, readyReplicas=1, updatedReplicas=1, replicas=1)
    assert deployment_status(r.deployment).complete
    first_exit = r.pod["status"]["containerStatuses"][0]
    first_exit["restartCount"] = 0  # one exit: within the budget
    status = rollout_status(r.deployment, r.replicasets, r.pods, now=r.recorded_at, since=r.since)
    assert not status.healthy and status.failure is None
    assert (
        "pod web-" in status.waiting_for
        and "exited (Error (exit code 3)), 1 of 2 exits allowed" in status.waiting_for
    )


def test_container_without_readiness_probe_must_settle() -> None:
    r = recorded("healthy")
    del r.pod["spec"]["containers"][0]["readinessProbe"]
    started = r.pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
    from deployer.rollout._obj import parse_time

    start = parse_time(started)
    early = rollout_status(
        r.deployment, r.replicasets, r.pods, now=start + timedelta(seconds=1), since=r.since
    )
    assert not early.healthy
    assert early.waiting_for.endswith("running without a readiness probe, 2s to settle")
    late = rollout_status(
        r.deployment, r.replicasets, r.pods, now=start + timedelta(seconds=4), since=r.since
    )
    assert late.healthy
    never = FailurePolicy(unprobed_settle=0)
    assert rollout_status(r.deployment, r.replicasets, r.pods, now=start, policy=never).healthy


def test_missing_deployment_waits() -> None:
    r = recorded("healthy")
    status = rollout_status(None, r.replicasets, r.pods, now=r.recorded_at)
    assert (status.healthy, status.failure, status.waiting_for) == (False, None, "the deployment to exist")


@pytest.mark.parametrize(
    ("status", "spec", "complete", "message"),
    [
        ({"observedGeneration": 1}, {}, False, "waiting for the controller to observe generation 2"),
        (
            {"observedGeneration": 2, "updatedReplicas": 1},
            {"replicas": 3},
            False,
            "1 of 3 new replicas have been updated",
        ),
        (
            {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 4},
            {"replicas": 3},
            False,
            "1 old replicas are pending termination",
        ),
        (
            {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 2},
            {"replicas": 3},
            False,
            "2 of 3 updated replicas are available",
        ),
        (
            {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3},
            {"replicas": 3},
            True,
            "deployment web successfully rolled out (3/3 available)",
        ),
        (
            {"observedGeneration": 2},
            {"replicas": 1, "paused": True},
            False,
            "deployment web is paused; resume it to continue the rollout",
        ),
    ],
)
def test_deployment_status_follows_the_controllers_order(status, spec, complete, message) -> None:
    r = recorded("healthy")
    r.deployment["metadata"]["generation"] = 2
    r.deployment["status"] = status
    r.deployment["spec"].update(spec)
    result = deployment_status(r.deployment)
    assert (result.complete, result.message, result.failure) == (complete, message, None)


def test_generation_check_comes_before_the_deadline() -> None:
    # A deadline condition from before the new spec was observed says nothing about the new spec.
    r = recorded("deadline")
    r.deployment["metadata"]["generation"] = 2
    result = deployment_status(r.deployment)
    assert result.failure is None and result.message == "waiting for the controller to observe generation 2"


def _hook_pod(created: str) -> dict:
    pod = copy.deepcopy(recorded("crashloop").pod)
    pod["metadata"].update(name="web-test", annotations={"helm.sh/hook": "test"}, creationTimestamp=created)
    pod["metadata"].pop("ownerReferences", None)
    pod["status"]["phase"] = "Failed"
    return pod


def test_failed_hook_pod_since_tracking_began_fails_a_complete_rollout() -> None:
    r = recorded("healthy")
    after = _hook_pod(r.since.strftime("%Y-%m-%dT%H:%M:%SZ"))
    status = rollout_status(r.deployment, r.replicasets, [*r.pods, after], now=r.recorded_at, since=r.since)
    assert status.failure is not None and not status.healthy
    assert (status.failure.reason, status.failure.object, status.failure.message) == (
        "HookFailed",
        "pod/web-test",
        "Error (exit code 3)",
    )


def test_failed_hook_pod_of_an_earlier_release_is_ignored() -> None:
    r = recorded("healthy")
    before = _hook_pod("2020-01-01T00:00:00Z")
    status = rollout_status(r.deployment, r.replicasets, [*r.pods, before], now=r.recorded_at, since=r.since)
    assert status.healthy and status.failure is None


def test_recorded_kubelet_back_off_when_the_exit_budget_is_lifted() -> None:
    status = _status("crashloop-backoff")
    assert status.failure is not None
    assert (status.failure.reason, status.failure.rule, status.failure.exit_code) == (
        "CrashLoopBackOff",
        "back-off",
        3,
    )
    assert status.failure.message.startswith(
        "last exit: Error (exit code 3); back-off 10s restarting failed container=app"
    )
    assert status.failure.restarted  # the log to read is the previous run's
    assert status.failure.hint == (
        "the container keeps exiting and the kubelet is backing off: see its last log lines and exit code"
    )
    # Back-off fails regardless of the exit budget: the default policy says the same.
    r = recorded("crashloop-backoff")
    default = rollout_status(r.deployment, r.replicasets, r.pods, now=r.recorded_at)
    assert default.failure is not None and default.failure.reason == "CrashLoopBackOff"


def test_a_deadline_exceeded_before_tracking_began_is_not_this_rollouts_verdict() -> None:
    # A rollback to a ReplicaSet that is still available makes no progress the controller counts, so it
    # keeps the failed upgrade's condition (and its lastUpdateTime) until the rollback completes.
    r = recorded("deadline")
    progressing = next(c for c in r.deployment["status"]["conditions"] if c["type"] == "Progressing")
    updated = progressing["lastUpdateTime"]
    assert deployment_status(r.deployment, since=r.since).failure is not None  # set while tracking
    later = r.since.replace(year=r.since.year + 1)
    stale = deployment_status(r.deployment, since=later)
    assert stale.failure is None and not stale.complete, (updated, stale)
    # at the time of the listing, its pods are still within their grace: the rollout waits, bounded by the
    # watch's own deadline, where the same objects tracked from the start fail by the deadline
    status = rollout_status(r.deployment, r.replicasets, r.pods, now=r.recorded_at, since=later)
    assert (status.failure, status.waiting_for) == (
        None,
        "0 of 1 updated replicas are available; pod web-78bbc79ff5-4w6kx: container app to become ready "
        "(599s of 604s grace left)",
    )
