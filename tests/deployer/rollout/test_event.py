"""deployer.rollout.event: which Warning events belong to the rollout, and how they read."""

from __future__ import annotations

from datetime import timedelta

from deployer.rollout.event import event_line, event_time, readiness_only_timed_out, warning_lines
from tests.deployer.rollout.conftest import recorded


def test_recorded_readiness_warning() -> None:
    r = recorded("notready")
    pod = r.pod["metadata"]["name"]
    lines = warning_lines(r.events, {pod, "web"}, r.since)
    unhealthy = [line for line in lines if ": Unhealthy: " in line]
    assert len(unhealthy) == 1
    assert unhealthy[0].startswith(f'pod/{pod}: Unhealthy: Readiness probe failed: Get "http://')
    assert "8081" in unhealthy[0] and unhealthy[0].endswith(")")  # a repeated event shows its count (xN)


def test_only_warnings_about_our_objects_since_tracking_began() -> None:
    r = recorded("imagepull")
    pod = r.pod["metadata"]["name"]
    assert warning_lines(r.events, {"someone-else"}, r.since) == []
    later = max(event_time(e) for e in r.events) + timedelta(seconds=1)
    assert warning_lines(r.events, {pod}, later) == []
    assert all(line.startswith(f"pod/{pod}: ") for line in warning_lines(r.events, {pod}, r.since))


def test_event_line_without_count() -> None:
    event = {
        "involvedObject": {"kind": "Pod", "name": "p"},
        "reason": "BackOff",
        "message": " Back-off ",
        "count": 1,
    }
    assert event_line(event) == "pod/p: BackOff: Back-off"


def _unhealthy(pod: str, message: str, reason: str = "Unhealthy") -> dict:
    return {"involvedObject": {"kind": "Pod", "name": pod}, "reason": reason, "message": message}


def test_readiness_only_timed_out() -> None:
    timeout = 'Readiness probe failed: Get "http://10.244.0.220:8080/healthz": context deadline exceeded'
    events = [
        _unhealthy("slow", timeout + " (Client.Timeout exceeded while awaiting headers)"),
        _unhealthy("slow-exec", 'Readiness probe failed: command "check" timed out'),
        _unhealthy("wrong", timeout),
        _unhealthy("wrong", "Readiness probe failed: HTTP probe failed with statuscode: 404"),
        _unhealthy(
            "refused", 'Readiness probe failed: Get "http://x:1/": dial tcp x:1: connect: connection refused'
        ),
        _unhealthy("liveness", "Liveness probe failed: " + timeout),
        _unhealthy("other", timeout, reason="BackOff"),
    ]
    assert readiness_only_timed_out(events) == {"slow", "slow-exec"}
    # The recorded never-ready pod: /healthz on a port nothing listens on is refused, never slow.
    assert readiness_only_timed_out(recorded("notready").events) == frozenset()
