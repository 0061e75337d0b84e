"""deployer.rollout.feed: typed events from two consecutive rollout statuses."""

from __future__ import annotations

import copy

from deployer.rollout import feed
from deployer.rollout.deployment import rollout_status
from tests.deployer.rollout.conftest import recorded


def _status(r, pods=None, deployment=None):
    return rollout_status(
        deployment or r.deployment,
        r.replicasets,
        r.pods if pods is None else pods,
        now=r.recorded_at,
        since=r.since,
    )


def test_first_status_announces_replicaset_pod_and_progress() -> None:
    r = recorded("healthy")
    events = feed.changes(None, _status(r), 1.5)
    rs = r.replicasets[0]["metadata"]["name"]
    pod = r.pod["metadata"]["name"]
    assert [e.text() for e in events] == [
        f"new replicaset {rs} (revision 1)",
        f"pod {pod} created",
        f"pod {pod} container app started",
        f"pod {pod} ready",
        "ready 1/1, available 1/1: deployment web successfully rolled out (1/1 available)",
    ]
    assert all(e.elapsed == 1.5 for e in events)


def test_no_change_no_event() -> None:
    r = recorded("crashloop")
    status = _status(r)
    assert feed.changes(status, status, 2.0) == []


def test_exit_seen_only_through_the_restart_count_is_reported() -> None:
    r = recorded("healthy")
    before = _status(r)
    pod = copy.deepcopy(r.pod)
    pod["status"]["containerStatuses"][0].update(
        restartCount=1, lastState={"terminated": {"exitCode": 1, "reason": "Error"}}
    )
    events = feed.changes(before, _status(r, pods=[pod]), 3.0)
    assert [type(e) for e in events] == [feed.ContainerExited, feed.ContainerStarted]
    assert events[0].text() == f"pod {pod['metadata']['name']} container app exited: Error (exit code 1)"
    assert events[1].text() == f"pod {pod['metadata']['name']} container app started (restart 1)"


def test_waiting_reason_change() -> None:
    r = recorded("imagepull")
    before = _status(r)
    pod = copy.deepcopy(r.pod)
    pod["status"]["containerStatuses"][0]["state"] = {
        "waiting": {"reason": "ImagePullBackOff", "message": "m"}
    }
    (event,) = feed.changes(before, _status(r, pods=[pod]), 4.0)
    assert isinstance(event, feed.ContainerWaiting)
    assert (event.reason, event.message) == ("ImagePullBackOff", "m")
