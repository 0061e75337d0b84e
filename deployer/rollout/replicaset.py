"""ReplicaSets of a Deployment: which one is new, which pods belong to it, and its own failure condition.

Only the new ReplicaSet's pods count for the rollout: an old pod crashing during a rolling update is not
what this deploy broke, and the controller is scaling it down anyway.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from deployer.rollout._obj import Obj, annotations, condition, dig, name, owner_uids, uid
from deployer.rollout.reasons import Failure, Kind, classify

__all__ = ["HASH_LABEL", "REVISION_ANNOTATION", "new_replicaset", "owned", "replicaset_failure", "revision"]

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
    """The Deployment's new ReplicaSet, or None while the controller has not created it yet.

    The controller's own rule: the owned ReplicaSet whose pod template equals the Deployment's once the
    pod-template-hash label is ignored (both are defaulted by the API server, so they compare as JSON);
    if several match, the oldest. Fallback when templates cannot be compared (e.g. an object trimmed by a
    recorder): the one carrying the Deployment's revision annotation, trusted only once the controller
    has observed the Deployment's current generation.
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
            if revision(rs) == revision(deployment):
                return rs
    return None


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
