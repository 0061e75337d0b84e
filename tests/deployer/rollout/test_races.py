"""Event orderings around an upgrade that could pass for success, and the ones that must not fail.

The objects are the recorded healthy rollout (tests/resources/k8s/healthy.json) upgraded to a pod template
whose readiness probe never passes (path /never-ready), the way `deployer ship` upgrades a release: same
Deployment, generation 2, a new ReplicaSet. Each race is a moment where one view (the Deployment, the
ReplicaSets, the pods) has not caught up with the others. Watcher tests put that moment in the first list of
each kind and hold every watch stream until the watcher has evaluated it (a gate set by the first event),
so the order is fixed, not left to the threads.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deployer.rollout import feed
from deployer.rollout.deployment import rollout_status
from deployer.rollout.reasons import FailurePolicy
from deployer.rollout.replicaset import HASH_LABEL, REVISION_ANNOTATION
from deployer.rollout.watcher import watch_rollout
from tests.deployer.rollout.conftest import recorded
from tests.deployer.rollout.fakes import ScriptedSource

Obj = dict[str, Any]
NEW_HASH = "5d9f8c7b6a"
PATIENT = FailurePolicy(readiness_grace=3600)  # pure-function tests: waiting stays waiting


@dataclass
class Upgrade:
    """The objects of a healthy revision 1 and a never-ready revision 2 of Deployment `web`."""

    old_deployment: Obj
    old_rs: Obj
    old_pod: Obj
    new_template: Obj
    since: datetime

    def deployment(self, status: Obj | None = None, *, revision: str = "2") -> Obj:
        """The Deployment after the upgrade was applied (generation 2) with `status`."""
        d = copy.deepcopy(self.old_deployment)
        d["metadata"]["generation"] = 2
        d["metadata"]["annotations"][REVISION_ANNOTATION] = revision
        d["spec"]["template"] = copy.deepcopy(self.new_template)
        d["status"] = copy.deepcopy(status if status is not None else self.old_deployment["status"])
        return d

    def new_rs(self, replicas: int = 1, ready: int = 0) -> Obj:
        rs = copy.deepcopy(self.old_rs)
        rs["metadata"].update(name=f"web-{NEW_HASH}", uid="rs-new-uid", generation=1)
        rs["metadata"]["annotations"][REVISION_ANNOTATION] = "2"
        rs["metadata"]["labels"][HASH_LABEL] = NEW_HASH
        template = copy.deepcopy(self.new_template)
        template["metadata"]["labels"][HASH_LABEL] = NEW_HASH
        rs["spec"].update(replicas=1, template=template)
        rs["spec"]["selector"]["matchLabels"][HASH_LABEL] = NEW_HASH
        rs["status"] = {
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "fullyLabeledReplicas": replicas,
            "observedGeneration": 1,
        }
        return rs

    def old_rs_scaled(self, spec: int, current: int) -> Obj:
        rs = copy.deepcopy(self.old_rs)
        rs["metadata"]["generation"] = 2
        rs["spec"]["replicas"] = spec
        rs["status"] = {"replicas": current, "readyReplicas": current, "availableReplicas": current}
        rs["status"]["observedGeneration"] = 2
        return rs

    def new_pod(self, *, ready: bool, suffix: str = "abcde", started: datetime | None = None) -> Obj:
        pod = copy.deepcopy(self.old_pod)
        pod["metadata"].update(name=f"web-{NEW_HASH}-{suffix}", uid=f"pod-{suffix}")
        pod["metadata"]["labels"][HASH_LABEL] = NEW_HASH
        pod["metadata"]["ownerReferences"][0].update(name=f"web-{NEW_HASH}", uid="rs-new-uid")
        pod["spec"]["containers"] = copy.deepcopy(self.new_template["spec"]["containers"])
        status = pod["status"]
        status["containerStatuses"][0]["ready"] = ready
        if started is not None:
            status["containerStatuses"][0]["state"] = {"running": {"startedAt": _stamp(started)}}
        for cond in status["conditions"]:
            if cond["type"] in ("Ready", "ContainersReady"):
                cond["status"] = "True" if ready else "False"
        return pod

    def terminating_old_pod(self, exit_code: int = 143) -> Obj:
        """The old pod on its way out: deleted, its container killed by the SIGTERM it was sent."""
        pod = copy.deepcopy(self.old_pod)
        pod["metadata"]["deletionTimestamp"] = _stamp(self.since + timedelta(seconds=3))
        container = pod["status"]["containerStatuses"][0]
        container.update(ready=False, state={"terminated": {"exitCode": exit_code, "reason": "Error"}})
        for cond in pod["status"]["conditions"]:
            if cond["type"] in ("Ready", "ContainersReady"):
                cond["status"] = "False"
        return pod


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _upgrade() -> Upgrade:
    r = recorded("healthy")
    template = copy.deepcopy(r.deployment["spec"]["template"])
    template["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/never-ready"
    return Upgrade(r.deployment, r.replicasets[0], r.pod, template, r.since)


# The Deployment's own status at moments of the upgrade (replicas 1, maxSurge 1, maxUnavailable 0).
OBSERVED_STILL_OLD_COUNTERS = {  # the hypothetical "complete before the new RS exists"
    "observedGeneration": 2,
    "replicas": 1,
    "updatedReplicas": 1,
    "readyReplicas": 1,
    "availableReplicas": 1,
}
SURGED = {  # the real state of a never-ready upgrade: the old pod serves, the new one is not ready
    "observedGeneration": 2,
    "replicas": 2,
    "updatedReplicas": 1,
    "readyReplicas": 1,
    "availableReplicas": 1,
}
DONE = {
    "observedGeneration": 2,
    "replicas": 1,
    "updatedReplicas": 1,
    "readyReplicas": 1,
    "availableReplicas": 1,
}


def _evaluate(u: Upgrade, deployment: Obj, replicasets: list[Obj], pods: list[Obj], **kw: Any):
    now = kw.pop("now", u.since + timedelta(seconds=5))
    policy = kw.pop("policy", PATIENT)
    return rollout_status(deployment, replicasets, pods, now=now, since=u.since, policy=policy, **kw)


# --- pure orderings: each view lagging the others


def test_deployment_complete_before_the_new_replicaset_is_seen_waits_for_it() -> None:
    u = _upgrade()
    status = _evaluate(u, u.deployment(OBSERVED_STILL_OLD_COUNTERS), [u.old_rs], [u.old_pod])
    assert not status.healthy and status.failure is None
    assert status.new_replicaset is None
    assert "the new ReplicaSet" in status.waiting_for


def test_old_replicaset_with_the_deployments_revision_does_not_stand_in_for_the_new_one() -> None:
    # The controller bumped the Deployment's revision annotation, our view of the old ReplicaSet carries
    # the same number (a rollback reuses ReplicaSets): its ready pod runs the old template.
    u = _upgrade()
    old = copy.deepcopy(u.old_rs)
    old["metadata"]["annotations"][REVISION_ANNOTATION] = "2"
    status = _evaluate(u, u.deployment(OBSERVED_STILL_OLD_COUNTERS), [old], [u.old_pod])
    assert not status.healthy and status.new_replicaset is None


def test_new_replicaset_seen_but_none_of_its_pods_yet_waits() -> None:
    u = _upgrade()
    status = _evaluate(u, u.deployment(DONE), [u.new_rs(1, 1), u.old_rs_scaled(0, 0)], [u.old_pod])
    assert not status.healthy and status.failure is None
    assert status.waiting_for == (
        "deployment web complete by its own counters (1/1 available); 0 of 1 new pods seen ready"
    )


def test_new_replicaset_behind_the_deployment_waits_for_its_own_status() -> None:
    u = _upgrade()
    pods = [u.new_pod(ready=True)]
    status = _evaluate(u, u.deployment(DONE), [u.new_rs(1, 0), u.old_rs_scaled(0, 0)], pods)
    assert not status.healthy
    assert f"replicaset web-{NEW_HASH}: 1 pods, 0 ready, 0 available of 1" in status.waiting_for


def test_old_replicaset_still_scaled_up_waits() -> None:
    u = _upgrade()
    pods = [u.new_pod(ready=True)]
    status = _evaluate(u, u.deployment(DONE), [u.new_rs(1, 1), u.old_rs_scaled(1, 1)], pods)
    assert not status.healthy
    assert "old replicaset web-78bd5ffdd8: 1 replicas" in status.waiting_for


def test_stale_deployment_from_before_the_apply_is_not_judged() -> None:
    # The complete revision 1 is what a view from before the apply shows: with the generation the
    # deploy produced, it is waited out instead of being reported healthy.
    u = _upgrade()
    stale = _evaluate(u, u.old_deployment, [u.old_rs], [u.old_pod])
    assert stale.healthy  # without knowing the deploy's generation the old rollout looks done
    status = _evaluate(u, u.old_deployment, [u.old_rs], [u.old_pod], generation=2)
    assert not status.healthy and status.failure is None
    assert status.waiting_for == "the deployment at generation 2 (this deploy's; seen 1)"


def test_never_ready_upgrade_is_never_healthy_at_any_moment() -> None:
    u = _upgrade()
    not_ready = u.new_pod(ready=False, started=u.since + timedelta(seconds=1))
    moments = [
        (u.deployment(), [u.old_rs], [u.old_pod]),  # applied, not observed
        (u.deployment(OBSERVED_STILL_OLD_COUNTERS), [u.old_rs], [u.old_pod]),
        (u.deployment(OBSERVED_STILL_OLD_COUNTERS), [u.old_rs, u.new_rs(0)], [u.old_pod]),
        (u.deployment(SURGED), [u.old_rs, u.new_rs(1)], [u.old_pod]),
        (u.deployment(SURGED), [u.old_rs, u.new_rs(1)], [u.old_pod, not_ready]),
        (u.deployment(DONE), [u.old_rs_scaled(0, 0), u.new_rs(1)], [not_ready]),  # counters ahead
    ]
    for i, (deployment, replicasets, pods) in enumerate(moments):
        status = _evaluate(u, deployment, replicasets, pods)
        assert not status.healthy, (i, status.waiting_for)
    # Past its probe-derived grace the new pod fails the rollout.
    late = _evaluate(
        u,
        u.deployment(SURGED),
        [u.old_rs, u.new_rs(1)],
        [u.old_pod, not_ready],
        now=u.since + timedelta(seconds=60),
        policy=FailurePolicy(),
    )
    assert late.failure is not None and late.failure.reason == "ReadinessProbeFailed"
    assert late.failure.pod == not_ready["metadata"]["name"]


# --- the false-failure side: a healthy upgrade must end healthy


def test_healthy_upgrade_while_the_old_pod_is_killed_on_its_way_out() -> None:
    u = _upgrade()
    ready = u.new_pod(ready=True)
    status = _evaluate(
        u,
        u.deployment(DONE),
        [u.new_rs(1, 1), u.old_rs_scaled(0, 0)],
        [u.terminating_old_pod(exit_code=143), ready],
    )
    assert status.healthy and status.failure is None
    assert [p.name for p in status.pods] == [ready["metadata"]["name"]]


def test_evicted_pod_of_the_new_replicaset_does_not_hold_up_a_healthy_rollout() -> None:
    u = _upgrade()
    evicted = u.new_pod(ready=False, suffix="evict")
    evicted["status"].update(phase="Failed", reason="Evicted", message="The node was low on memory.")
    replacement = u.new_pod(ready=True, suffix="fghij")
    status = _evaluate(u, u.deployment(DONE), [u.new_rs(1, 1), u.old_rs_scaled(0, 0)], [evicted, replacement])
    assert status.healthy and status.failure is None


def test_terminating_pod_of_the_new_replicaset_is_neither_counted_nor_waited_for() -> None:
    u = _upgrade()
    leaving = u.new_pod(ready=False, suffix="going")
    leaving["metadata"]["deletionTimestamp"] = _stamp(u.since)
    ready = u.new_pod(ready=True, suffix="fghij")
    replicasets = [u.new_rs(1, 1), u.old_rs_scaled(0, 0)]
    assert _evaluate(u, u.deployment(DONE), replicasets, [leaving, ready]).healthy
    alone = _evaluate(u, u.deployment(DONE), replicasets, [leaving])
    assert not alone.healthy and alone.waiting_for.endswith("0 of 1 new pods seen ready")


# --- the watcher: the race in the first lists, the truth held back until it was evaluated


def _gated(lists: dict[str, list[Obj]], truth: dict[str, list[tuple[str, Obj]]]):
    gate = threading.Event()
    source = ScriptedSource(
        lists={kind: [items] for kind, items in lists.items()},
        watches={kind: [[gate, *changes]] for kind, changes in truth.items()},
    )
    seen: list[feed.RolloutEvent] = []

    def on_event(event: feed.RolloutEvent) -> None:
        seen.append(event)
        gate.set()  # the racy moment has been evaluated: let the truth in

    return source, seen, on_event


def _watch(source: ScriptedSource, on_event, u: Upgrade, **kw: Any):
    return watch_rollout(
        None, "ns", "web", timeout=10, since=u.since, on_event=on_event, source=source, heartbeat=0.2, **kw
    )


@pytest.mark.parametrize(
    "moment",
    ["deployment-complete-before-new-rs", "new-rs-without-pods", "stale-deployment"],
)
def test_watcher_does_not_report_a_racy_moment_as_success(moment: str) -> None:
    u = _upgrade()
    generation = None
    if moment == "deployment-complete-before-new-rs":
        lists = {"deployment": [u.deployment(OBSERVED_STILL_OLD_COUNTERS)], "replicaset": [u.old_rs]}
        lists["pod"] = [u.old_pod]
    elif moment == "new-rs-without-pods":
        lists = {"deployment": [u.deployment(DONE)], "replicaset": [u.new_rs(1, 1), u.old_rs_scaled(0, 0)]}
        lists["pod"] = [u.old_pod]
    else:
        lists = {"deployment": [u.old_deployment], "replicaset": [u.old_rs], "pod": [u.old_pod]}
        generation = 2
    # Then the truth: the new pod started long ago and is still not ready.
    not_ready = u.new_pod(ready=False)
    truth = {
        "deployment": [("MODIFIED", u.deployment(SURGED))],
        "replicaset": [("ADDED", u.new_rs(1)), ("MODIFIED", u.old_rs)],
        "pod": [("ADDED", not_ready)],
    }
    source, seen, on_event = _gated(lists, truth)
    verdict = _watch(source, on_event, u, **({"generation": generation} if generation else {}))
    assert not verdict.healthy, [e.text() for e in seen]
    assert (verdict.reason, verdict.pod) == ("ReadinessProbeFailed", not_ready["metadata"]["name"])
    assert not any(isinstance(e, feed.RolloutSucceeded) for e in seen)


def test_watcher_reports_a_healthy_upgrade_once_every_view_agrees() -> None:
    u = _upgrade()
    ready = u.new_pod(ready=True)
    lists = {
        "deployment": [u.deployment(DONE)],
        "replicaset": [u.new_rs(1, 1), u.old_rs_scaled(0, 1)],  # the old ReplicaSet's status lags
        "pod": [u.terminating_old_pod()],  # and the new pod is not seen yet
    }
    truth = {
        "replicaset": [("MODIFIED", u.old_rs_scaled(0, 0))],
        "pod": [("ADDED", ready), ("DELETED", u.terminating_old_pod())],
    }
    source, seen, on_event = _gated(lists, truth)
    verdict = _watch(source, on_event, u)
    assert verdict.healthy, verdict.summary()
    assert verdict.replicaset == f"web-{NEW_HASH}" and verdict.revision == 2
    first = next(e for e in seen if isinstance(e, feed.DeploymentProgress))
    assert first.message == "deployment web successfully rolled out (1/1 available)"
    assert isinstance(seen[-1], feed.RolloutSucceeded)


# --- what rolls out is not what was deployed (a concurrent deploy, a chart tag overwritten by another)


def test_another_image_than_the_deployed_one_fails_once_the_deploys_generation_is_seen() -> None:
    u = _upgrade()
    deployed = {"app": "127.0.0.1:5000/staging/web@sha256:" + "1" * 64}
    done = (u.deployment(DONE), [u.new_rs(1, 1), u.old_rs_scaled(0, 0)], [u.new_pod(ready=True)])
    assert _evaluate(u, *done).healthy  # healthy by every view: only the image says it is not ours
    status = _evaluate(u, *done, images=deployed, generation=2)
    assert not status.healthy and status.failure is not None
    assert (status.failure.reason, status.failure.rule, status.failure.object) == (
        "UnexpectedImage",
        "definitive",
        "deployment/web",
    )
    assert status.failure.message == (
        f"container app runs 127.0.0.1:5000/base/python3:12; this deploy applied {deployed['app']}"
    )
    # Without the deploy's generation the view may predate the apply: never healthy, but no verdict yet.
    waiting = _evaluate(u, *done, images=deployed)
    assert not waiting.healthy and waiting.failure is None
    assert "the deployment to run the deployed image (container app runs" in waiting.waiting_for
    # The deployed image itself is fine.
    ours = {"app": "127.0.0.1:5000/base/python3:12"}
    assert _evaluate(u, *done, images=ours, generation=2).healthy


def test_watcher_fails_a_rollout_of_another_image_without_waiting_for_it() -> None:
    u = _upgrade()
    source = ScriptedSource(
        lists={
            "deployment": [[u.deployment(SURGED)]],
            "replicaset": [[u.old_rs, u.new_rs(1)]],
            "pod": [[u.old_pod, u.new_pod(ready=False, started=datetime.now(UTC))]],
        }
    )
    seen: list[feed.RolloutEvent] = []
    verdict = watch_rollout(
        None,
        "ns",
        "web",
        timeout=10,
        since=u.since,
        source=source,
        on_event=seen.append,
        generation=2,
        images={"app": "127.0.0.1:5000/staging/web@sha256:" + "2" * 64},
    )
    assert (verdict.healthy, verdict.reason, verdict.object) == (False, "UnexpectedImage", "deployment/web")
    assert verdict.log_tail == [] and ("logs", "web", "app", False) not in source.calls
    assert isinstance(seen[-1], feed.RolloutFailed)


def test_timeout_points_at_the_pod_waited_for_not_one_on_its_way_out() -> None:
    from deployer.rollout.diagnosis import timeout_failure

    u = _upgrade()
    leaving = u.new_pod(ready=False, suffix="aaaaa")  # sorts first
    leaving["metadata"]["deletionTimestamp"] = _stamp(u.since)
    waiting = u.new_pod(ready=False, suffix="bbbbb", started=u.since + timedelta(seconds=4))
    status = _evaluate(u, u.deployment(SURGED), [u.old_rs, u.new_rs(1)], [u.old_pod, leaving, waiting])
    assert not status.healthy and status.failure is None
    failure = timeout_failure(status, 120)
    assert (failure.reason, failure.pod, failure.container) == ("Timeout", waiting["metadata"]["name"], "app")
