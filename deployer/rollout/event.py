"""Kubernetes Events (core/v1): which ones concern this rollout, and how they read in a report.

Events outlive the objects they describe and repeat (`count`, `series`); a namespace's list includes
events from earlier releases. Only events about the rollout's own objects and last seen at or after
tracking began are reported, oldest first, one line each.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from deployer.rollout._obj import Obj, dig, parse_time

__all__ = ["event_line", "event_time", "is_warning", "readiness_only_timed_out", "warning_lines"]

# How the kubelet words a probe that got no answer in time: HTTP (Go's client), TCP/gRPC dials, exec.
_PROBE_TIMEOUT = re.compile(r"deadline exceeded|Timeout exceeded|i/o timeout|timed out", re.IGNORECASE)


def event_time(event: Obj) -> datetime | None:
    """When the event was last seen: lastTimestamp, else series/eventTime (new style), else creation."""
    for path in (
        ("lastTimestamp",),
        ("series", "lastObservedTime"),
        ("eventTime",),
        ("firstTimestamp",),
        ("metadata", "creationTimestamp"),
    ):
        value = parse_time(dig(event, *path))
        if value:
            return value
    return None


def is_warning(event: Obj) -> bool:
    return event.get("type") == "Warning"


def _object(event: Obj) -> str:
    kind = dig(event, "involvedObject", "kind", default="")
    return f"{kind.lower()}/{dig(event, 'involvedObject', 'name', default='')}"


def event_line(event: Obj) -> str:
    """`pod/web-1: BackOff: Back-off restarting failed container app (x3)`."""
    count = dig(event, "count", default=0) or dig(event, "series", "count", default=0)
    times = f" (x{count})" if count and count > 1 else ""
    message = (event.get("message") or event.get("note") or "").strip()
    return f"{_object(event)}: {event.get('reason', '')}: {message}{times}"


def warning_lines(events: Iterable[Obj], objects: set[str], since: datetime | None) -> list[str]:
    """Warning events about `objects` (names of the Deployment, its ReplicaSets and pods) since `since`.

    Whole-second timestamps are compared at whole seconds, so an event in the second tracking began counts.
    """
    cutoff = since.replace(microsecond=0) if since else None
    chosen = []
    for event in events:
        if not is_warning(event) or dig(event, "involvedObject", "name") not in objects:
            continue
        when = event_time(event)
        if cutoff and when and when < cutoff:
            continue
        chosen.append((when.isoformat() if when else "", event_line(event)))
    return [line for _, line in sorted(chosen)]


def readiness_only_timed_out(events: Iterable[Obj]) -> frozenset[str]:
    """Pods whose readiness probe failed at least once and every time by a timeout, never by a wrong
    answer or a refused connection: a slow app (or a loaded node), not a wrong path or port."""
    timed_out: set[str] = set()
    answered: set[str] = set()
    for event in events:
        message = event.get("message") or event.get("note") or ""
        if event.get("reason") != "Unhealthy" or not message.startswith("Readiness probe failed"):
            continue
        pod = dig(event, "involvedObject", "name", default="")
        (timed_out if _PROBE_TIMEOUT.search(message) else answered).add(pod)
    return frozenset(timed_out - answered)
