"""What a Deployment's rollout state is: pure functions of the Deployment, its ReplicaSets and pods.

`deployment_status` follows the Deployment controller's (and `kubectl rollout status`'s) rules in their
order: the current generation must be observed first, then the `Progressing` condition (reason
`ProgressDeadlineExceeded` means failed), then updated, old and available replica counts. Each case has a
message, which the watcher reuses as progress lines.

`rollout_status` adds what the Deployment's counters cannot say: why the new ReplicaSet's pods are not
coming up (classified by `pod.pod_status`), whether the ReplicaSet could create pods at all, and whether a
helm hook or test pod started since tracking began has failed.

Healthy is declared only when every view agrees, because each one can lag the others (separate watch
streams, controller syncs): the Deployment (at least at the generation the deploy produced, observed, its
counters complete), the new ReplicaSet (present, the one whose template is the Deployment's current one,
complete by its own status), the old ReplicaSets (scaled to zero), and the new ReplicaSet's pods as seen
(at least `desired` active ones, each ready and settled). A missing or stale view means waiting, never
healthy; waiting can only end in a verdict from the pods or the deadline, so it cannot make a healthy
rollout fail.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from deployer.rollout._obj import Obj, condition, dig, name, parse_time
from deployer.rollout.pod import PodStatus, is_hook, pod_status
from deployer.rollout.reasons import DEFAULT_POLICY, Failure, FailurePolicy, classify
from deployer.rollout.replicaset import (
    new_replicaset,
    old_replicas_left,
    owned,
    replicaset_failure,
    replicaset_waiting,
    revision,
)

__all__ = ["DeploymentStatus", "RolloutStatus", "deployment_status", "rollout_status"]


@dataclass(frozen=True)
class DeploymentStatus:
    """The Deployment's own view of its rollout.

    desired is spec.replicas; total is status.replicas (old and new pods); complete means every desired
    replica is updated and available, no old replica is left, and the controller saw the latest spec.
    """

    name: str
    generation: int
    observed: bool
    desired: int
    updated: int
    ready: int
    available: int
    total: int
    complete: bool
    failure: Failure | None
    message: str


def deployment_status(deployment: Obj, since: datetime | None = None) -> DeploymentStatus:
    """Classify a Deployment object by the controller's rules (see the module docstring).

    A `ProgressDeadlineExceeded` condition last updated before `since` (when tracking began) is the verdict
    of an earlier rollout, not of this one: the controller keeps that condition, and its lastUpdateTime,
    until a rollout completes or makes progress, and a rollback to a ReplicaSet that is already available
    makes none (seen after a failed upgrade's pull waited out a 30 s deadline). Such a rollout is judged by
    its counters and pods, bounded by the watch's own deadline.
    """
    dname = name(deployment)
    generation = dig(deployment, "metadata", "generation", default=0)
    observed = dig(deployment, "status", "observedGeneration", default=0) >= generation
    desired = dig(deployment, "spec", "replicas", default=1)
    updated = dig(deployment, "status", "updatedReplicas", default=0)
    ready = dig(deployment, "status", "readyReplicas", default=0)
    available = dig(deployment, "status", "availableReplicas", default=0)
    total = dig(deployment, "status", "replicas", default=0)

    def result(complete: bool, message: str, failure: Failure | None = None) -> DeploymentStatus:
        return DeploymentStatus(
            dname, generation, observed, desired, updated, ready, available, total, complete, failure, message
        )

    if not observed:
        return result(False, f"waiting for the controller to observe generation {generation}")
    progressing = condition(deployment, "Progressing")
    timed_out = progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded"
    if timed_out and _updated_since(progressing, since):
        rule = classify("ProgressDeadlineExceeded")
        message = progressing.get("message") or ""
        failure = Failure(
            "ProgressDeadlineExceeded", message, rule.hint, rule.kind.value, f"deployment/{dname}"
        )
        return result(False, f"deployment {dname} exceeded its progress deadline", failure)
    if dig(deployment, "spec", "paused"):
        return result(False, f"deployment {dname} is paused; resume it to continue the rollout")
    if updated < desired:
        return result(False, f"{updated} of {desired} new replicas have been updated")
    if total > updated:
        return result(False, f"{total - updated} old replicas are pending termination")
    if available < updated:
        return result(False, f"{available} of {updated} updated replicas are available")
    return result(True, f"deployment {dname} successfully rolled out ({available}/{desired} available)")


@dataclass(frozen=True)
class RolloutStatus:
    """One evaluation of the rollout: healthy, failed (with the most specific `Failure`), or waiting."""

    deployment: DeploymentStatus | None
    new_replicaset: str | None
    revision: int
    pods: tuple[PodStatus, ...]  # the new ReplicaSet's pods, then hook/test pods
    healthy: bool
    failure: Failure | None
    waiting_for: str


def _active(pod: Obj) -> bool:
    """Counts toward the ReplicaSet: not being deleted, not finished (an evicted pod is replaced)."""
    return not dig(pod, "metadata", "deletionTimestamp") and dig(pod, "status", "phase") not in (
        "Succeeded",
        "Failed",
    )


def _image_mismatch(deployment: Obj, images: Mapping[str, str]) -> Failure | None:
    """The first container of the Deployment's template whose image is not the one in `images`."""
    containers = {
        c.get("name"): c.get("image", "")
        for key in ("initContainers", "containers")
        for c in dig(deployment, "spec", "template", "spec", key, default=[])
    }
    for container, expected in images.items():
        actual = containers.get(container)
        if actual != expected:
            rule = classify("UnexpectedImage")
            runs = f"runs {actual}" if actual is not None else "has no such container"
            message = f"container {container} {runs}; this deploy applied {expected}"
            where = f"deployment/{name(deployment)}"
            return Failure("UnexpectedImage", message, rule.hint, rule.kind.value, where, container=container)
    return None


def _updated_since(cond: Obj, since: datetime | None) -> bool:
    updated = parse_time(cond.get("lastUpdateTime"))
    return since is None or updated is None or updated >= since.replace(microsecond=0)


def _since(obj: Obj, since: datetime | None) -> bool:
    created = parse_time(dig(obj, "metadata", "creationTimestamp"))
    # Timestamps have whole seconds: an object made in the second tracking began counts.
    return since is None or created is None or created >= since.replace(microsecond=0)


def rollout_status(
    deployment: Obj | None,
    replicasets: Iterable[Obj],
    pods: Iterable[Obj],
    *,
    now: datetime,
    policy: FailurePolicy = DEFAULT_POLICY,
    since: datetime | None = None,
    generation: int | None = None,
    images: Mapping[str, str] | None = None,
    pull_secret_unread: frozenset[str] = frozenset(),
    seen_running: Mapping[str, Mapping[str, datetime]] | None = None,
    probes_slow: frozenset[str] = frozenset(),
) -> RolloutStatus:
    """Evaluate a rollout from the objects at time `now` (aware UTC).

    `generation` is the Deployment's metadata.generation that the deploy produced (read after applying);
    a Deployment object older than that is a stale view and is waited out, never judged. `images` maps
    container names to the images the deploy applied: another image in the Deployment's pod template is
    never healthy (what rolls out is not what was deployed); with `generation` known it fails the rollout
    at once (`UnexpectedImage`), without it the view may predate the apply, so it is waited out.

    Failures are reported most specific first: a pod's (CrashLoopBackOff beats the progress deadline it
    causes), then the new ReplicaSet's, then the Deployment's. Hook and test pods count only when created
    at or after `since`, so a failed test pod of an older release does not fail this one.
    `pull_secret_unread`: pods the kubelet said it could not read the pull Secrets of
    (`FailedToRetrieveImagePullSecret` events), see `pod.pod_status`. `seen_running`: pod name ->
    container name -> when the watch first saw it running (our clock), see `pod.pod_status`.
    `probes_slow`: pods whose readiness probe failures (events) were all timeouts, see `pod.pod_status`.
    Healthy (see the module docstring): the Deployment at `generation` or later is complete, the new
    ReplicaSet is complete by its own status, no old ReplicaSet has replicas, at least `desired` of the new
    ReplicaSet's active pods are seen, each ready by its own status, and each container without a
    readiness probe has run for `policy.unprobed_settle` seconds (startedAt has whole seconds).
    """
    pods = list(pods)

    def status(p: Obj) -> PodStatus:
        return pod_status(
            p,
            now=now,
            policy=policy,
            pull_secret_unread=name(p) in pull_secret_unread,
            seen_running=(seen_running or {}).get(name(p)),
            probe_slow=name(p) in probes_slow,
        )

    hooks = [status(p) for p in pods if is_hook(p) and _since(p, since)]
    if deployment is None:
        hook_failure = next((h.failure for h in hooks if h.failure), None)
        return RolloutStatus(None, None, 0, tuple(hooks), False, hook_failure, "the deployment to exist")

    seen_generation = dig(deployment, "metadata", "generation", default=0)
    if generation is not None and seen_generation < generation:
        hook_failure = next((h.failure for h in hooks if h.failure), None)
        return RolloutStatus(
            None,
            None,
            0,
            tuple(hooks),
            False,
            hook_failure,
            f"the deployment at generation {generation} (this deploy's; seen {seen_generation})",
        )
    replicasets = list(replicasets)
    dstatus = deployment_status(deployment, since)
    rs = new_replicaset(deployment, replicasets) if dstatus.observed else None
    new_pods = sorted(owned(rs, pods), key=name) if rs else []
    statuses = tuple(status(p) for p in new_pods) + tuple(hooks)
    hook_failure = next((h.failure for h in hooks if h.failure), None)

    def result(healthy: bool, failure: Failure | None, waiting_for: str) -> RolloutStatus:
        return RolloutStatus(
            dstatus,
            name(rs) if rs else None,
            revision(rs) if rs else 0,
            statuses,
            healthy,
            failure,
            waiting_for,
        )

    pod_failure = next((s.failure for s in statuses if s.failure), None)
    mismatch = _image_mismatch(deployment, images) if images else None
    image_failure = mismatch if generation is not None else None
    failure = image_failure or pod_failure or (replicaset_failure(rs) if rs else None) or dstatus.failure
    if failure:
        return result(False, failure, "")
    # The Deployment's counters lag its pods by a controller sync: a pod that just exited still counts as
    # available there. So every new pod must be ready by its own status too, and settled.
    active = {name(p) for p in new_pods if _active(p)}
    settling = [s for s in statuses if s.settle_left > 0 and s.name in active]
    unready = [s for s in statuses if not s.ready and s.name in active]
    rs_waiting = replicaset_waiting(rs, dstatus.desired) if rs else ""
    old_left = old_replicas_left(deployment, replicasets, rs) if rs else []
    seen_ready = len(active) - len(unready)
    if (
        dstatus.complete
        and mismatch is None
        and rs is not None
        and not rs_waiting
        and not old_left
        and seen_ready >= dstatus.desired
        and not settling
        and not unready
    ):
        return result(True, None, "")
    headline = dstatus.message
    if dstatus.complete:  # not "successfully rolled out" while another view still disagrees
        counts = f"{dstatus.available}/{dstatus.desired}"
        headline = f"deployment {dstatus.name} complete by its own counters ({counts} available)"
    waiting = [headline] + [f"pod {s.name}: {s.waiting_for}" for s in statuses if s.waiting_for]
    waiting += [
        f"pod {s.name}: running without a readiness probe, {s.settle_left:.0f}s to settle" for s in settling
    ]
    if mismatch is not None:
        waiting.append(f"the deployment to run the deployed image ({mismatch.message})")
    if dstatus.observed and rs is None:
        waiting.append("the new ReplicaSet")
    if dstatus.complete:
        # The Deployment says done; say which other view has not caught up yet.
        waiting += [rs_waiting] if rs_waiting else []
        waiting += old_left
        if rs is not None and seen_ready < dstatus.desired:
            waiting.append(f"{seen_ready} of {dstatus.desired} new pods seen ready")
    return result(False, None, "; ".join(waiting))
