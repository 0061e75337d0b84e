"""deployer.rollout.replicaset: the new ReplicaSet, ownership, and ReplicaSet failures."""

from __future__ import annotations

from deployer.rollout.replicaset import new_replicaset, owned, replicaset_failure, revision
from tests.deployer.rollout.conftest import recorded


def _by_revision(replicasets: list[dict]) -> dict[int, dict]:
    return {revision(rs): rs for rs in replicasets}


def test_new_replicaset_matches_the_template_of_the_recorded_upgrade() -> None:
    r = recorded("upgrade-crash")
    rs = _by_revision(r.replicasets)
    assert set(rs) == {1, 2}
    assert new_replicaset(r.deployment, r.replicasets) is rs[2]


def test_replicaset_with_another_template_is_never_the_new_one_whatever_its_revision() -> None:
    # A ReplicaSet carrying the Deployment's revision but another template runs something else than the
    # Deployment says: its ready pods must not make the rollout healthy.
    r = recorded("upgrade-crash")
    for rs in r.replicasets:
        rs["spec"]["template"]["metadata"]["labels"]["extra"] = "changed"
    assert revision(r.deployment) == 2 and 2 in _by_revision(r.replicasets)
    assert new_replicaset(r.deployment, r.replicasets) is None


def test_new_replicaset_falls_back_to_the_revision_annotation_only_without_a_template() -> None:
    r = recorded("upgrade-crash")
    for rs in r.replicasets:
        del rs["spec"]["template"]  # trimmed by a recorder: templates cannot be compared
    assert revision(new_replicaset(r.deployment, r.replicasets)) == 2
    r.deployment["metadata"]["generation"] += 1  # the controller has not seen the latest spec yet
    assert new_replicaset(r.deployment, r.replicasets) is None


def test_replicasets_of_another_deployment_do_not_count() -> None:
    r = recorded("upgrade-crash")
    r.deployment["metadata"]["uid"] = "another-deployment"
    assert owned(r.deployment, r.replicasets) == []
    assert new_replicaset(r.deployment, r.replicasets) is None


def test_pod_security_failure_is_definitive_and_quota_is_not() -> None:
    rs = recorded("healthy").replicasets[0]
    rs["status"]["conditions"] = [
        {
            "type": "ReplicaFailure",
            "status": "True",
            "reason": "FailedCreate",
            "message": 'pods "web-1" is forbidden: violates PodSecurity "restricted:latest": '
            "runAsNonRoot != true",
        }
    ]
    failure = replicaset_failure(rs)
    assert failure is not None
    assert (failure.reason, failure.rule, failure.object) == (
        "FailedCreate",
        "definitive",
        f"replicaset/{rs['metadata']['name']}",
    )
    assert failure.hint == "the namespace's Pod Security level forbids this pod: fix the securityContext"
    rs["status"]["conditions"][0]["message"] = 'pods "web-1" is forbidden: exceeded quota: compute'
    assert replicaset_failure(rs) is None
