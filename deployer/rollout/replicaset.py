"""ReplicaSets of a Deployment: which one is new, which pods belong to it, and its own failure condition.

Only the new ReplicaSet's pods count for the rollout: an old pod crashing during a rolling update is not
what this deploy broke, and the controller is scaling it down anyway.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from deployer.rollout._obj import Obj, annotations, condition, dig, name, owner_uids, uid
from deployer.rollout.reasons import Failure, Kind, classify

__all__ = [
    "HASH_LABEL",
    "REVISION_ANNOTATION",
    "new_replicaset",
    "old_replicas_left",
    "owned",
    "replicaset_failure",
    "replicaset_waiting",
    "revision",
]

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"


def revision(obj: Obj) -> int:
    """The rollout revision a Deployment or ReplicaSet carries (0 when unset)."""
    try:
        return int(annotations(obj).get(REVISION_ANNOTATION, 0))
    except ValueError:
        return 0


def owned(owner: Obj, objects: Iterable[Obj]) -> list[Obj]:
    """The objects whose ownerReferences name `owner` (by uid, so a re-created namesake does not count)."""
    owner_uid = uid(owner)
    return [o for o in objects if owner_uid and owner_uid in owner_uids(o)]


def _template_without_hash(rs: Obj) -> Obj:
    template = copy.deepcopy(dig(rs, "spec", "template", default={}))
    template.get("metadata", {}).get("labels", {}).pop(HASH_LABEL, None)
    return template


def new_replicaset(deployment: Obj, replicasets: Iterable[Obj]) -> Obj | None:
    """The Deployment's new ReplicaSet, or None while the controller has not created it (or we not seen it).

    The controller's own rule: the owned ReplicaSet whose pod template equals the Deployment's once the
    pod-template-hash label is ignored (both are defaulted by the API server, so they compare as JSON);
    if several match, the oldest. A ReplicaSet with another template is never the new one, whatever its
    revision annotation says: its pods run something else than what was deployed. Only a ReplicaSet that
    carries no template at all (an object trimmed by a recorder) may be found by the Deployment's revision
    annotation, and only once the controller has observed the Deployment's current generation.
    """
    mine = owned(deployment, replicasets)
    template = dig(deployment, "spec", "template", default={})
    matching = [rs for rs in mine if _template_without_hash(rs) == template]
    if matching:
        # RFC 3339 timestamps in UTC sort as strings.
        return min(matching, key=lambda rs: (dig(rs, "metadata", "creationTimestamp", default=""), name(rs)))
    observed = dig(deployment, "status", "observedGeneration", default=0)
    if observed >= dig(deployment, "metadata", "generation", default=0) and revision(deployment):
        for rs in mine:
            if revision(rs) == revision(deployment) and not dig(rs, "spec", "template"):
                return rs
    return None


def replicaset_waiting(rs: Obj, desired: int) -> str:
    """What the new ReplicaSet still lacks to be complete ("" when nothing): by its own status.

    Complete means its controller has seen its latest spec, it is scaled to `desired`, and exactly
    `desired` pods exist, all ready and available. The Deployment's counters are summed from ReplicaSet
    statuses one sync later; this is the ReplicaSet's own word.
    """
    rname = name(rs)
    generation = dig(rs, "metadata", "generation", default=0)
    if dig(rs, "status", "observedGeneration", default=0) < generation:
        return f"replicaset {rname}: waiting for its controller to observe generation {generation}"
    spec = dig(rs, "spec", "replicas", default=1)
    if spec != desired:
        return f"replicaset {rname}: scaled to {spec} of {desired} replicas"
    counts = {
        key: dig(rs, "status", key, default=0) for key in ("replicas", "readyReplicas", "availableReplicas")
    }
    if any(count != desired for count in counts.values()):
        return (
            f"replicaset {rname}: {counts['replicas']} pods, {counts['readyReplicas']} ready, "
            f"{counts['availableReplicas']} available of {desired}"
        )
    return ""


def old_replicas_left(deployment: Obj, replicasets: Iterable[Obj], new: Obj | None) -> list[str]:
    """The Deployment's other ReplicaSets that still want or have pods, as "name: N replicas".

    Pods of an old ReplicaSet that are already terminating do not count (the ReplicaSet's status leaves
    them out): the old version is on its way out and cannot serve new connections.
    """
    left = []
    new_uid = uid(new) if new else ""
    for rs in owned(deployment, replicasets):
        if uid(rs) == new_uid:
            continue
        spec = dig(rs, "spec", "replicas", default=0)
        current = dig(rs, "status", "replicas", default=0)
        if spec or current:
            left.append(f"old replicaset {name(rs)}: {max(spec, current)} replicas")
    return sorted(left)


def replicaset_failure(rs: Obj) -> Failure | None:
    """The ReplicaSet's `ReplicaFailure` condition (it could not create pods) if the table calls it fatal."""
    cond = condition(rs, "ReplicaFailure")
    if not cond or cond.get("status") != "True":
        return None
    reason = cond.get("reason") or "FailedCreate"
    message = cond.get("message") or ""
    rule = classify(reason, message)
    if rule.kind is not Kind.DEFINITIVE:
        return None
    return Failure(reason, message, rule.hint, rule.kind.value, object=f"replicaset/{name(rs)}")
