"""Typed events the watcher reports: one per state *change*, never printed here.

A reporter (the CLI's TTY view, or one line per event in CI) decides how they look; `text()` is a plain
default. `changes(before, after)` derives the events from two consecutive `RolloutStatus` values, so the
same sequence of objects always gives the same events.
"""

from __future__ import annotations

from dataclasses import dataclass

from deployer.rollout.deployment import RolloutStatus
from deployer.rollout.pod import ContainerStatus, PodStatus
from deployer.rollout.reasons import Failure

__all__ = [
    "ApiReachable",
    "ApiUnreachable",
    "ContainerExited",
    "ContainerStarted",
    "ContainerWaiting",
    "DeploymentProgress",
    "Heartbeat",
    "NewReplicaSet",
    "PodAdded",
    "PodPending",
    "PodReady",
    "RolloutEvent",
    "RolloutFailed",
    "RolloutSucceeded",
    "RolloutTimedOut",
    "WarningEvent",
    "WatchRestarted",
    "changes",
]


@dataclass(frozen=True)
class RolloutEvent:
    """Base: `elapsed` is seconds since tracking began."""

    elapsed: float

    def text(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class DeploymentProgress(RolloutEvent):
    """The Deployment's counters changed ("Ready x/y")."""

    updated: int
    ready: int
    available: int
    desired: int
    message: str

    def text(self) -> str:
        return f"ready {self.ready}/{self.desired}, available {self.available}/{self.desired}: {self.message}"


@dataclass(frozen=True)
class NewReplicaSet(RolloutEvent):
    name: str
    revision: int

    def text(self) -> str:
        return f"new replicaset {self.name} (revision {self.revision})"


@dataclass(frozen=True)
class PodAdded(RolloutEvent):
    pod: str

    def text(self) -> str:
        return f"pod {self.pod} created"


@dataclass(frozen=True)
class PodPending(RolloutEvent):
    """The pod has no running containers yet; `reason` says what it waits for."""

    pod: str
    reason: str

    def text(self) -> str:
        return f"pod {self.pod} pending: {self.reason}"


@dataclass(frozen=True)
class ContainerWaiting(RolloutEvent):
    pod: str
    container: str
    reason: str
    message: str

    def text(self) -> str:
        detail = f": {self.message}" if self.message else ""
        return f"pod {self.pod} container {self.container} waiting: {self.reason}{detail}"


@dataclass(frozen=True)
class ContainerStarted(RolloutEvent):
    pod: str
    container: str
    restarts: int

    def text(self) -> str:
        again = f" (restart {self.restarts})" if self.restarts else ""
        return f"pod {self.pod} container {self.container} started{again}"


@dataclass(frozen=True)
class ContainerExited(RolloutEvent):
    pod: str
    container: str
    reason: str
    exit_code: int | None

    def text(self) -> str:
        return f"pod {self.pod} container {self.container} exited: {self.reason} (exit code {self.exit_code})"


@dataclass(frozen=True)
class PodReady(RolloutEvent):
    pod: str

    def text(self) -> str:
        return f"pod {self.pod} ready"


@dataclass(frozen=True)
class WarningEvent(RolloutEvent):
    """A Kubernetes Warning event about one of the rollout's objects (see `event.event_line`)."""

    line: str

    def text(self) -> str:
        return f"warning: {self.line}"


@dataclass(frozen=True)
class WatchRestarted(RolloutEvent):
    """Tracking itself hiccuped (watch expired, connection dropped) and resumed; not the service's fault."""

    kind: str
    cause: str

    def text(self) -> str:
        return f"watch on {self.kind} restarted: {self.cause}"


@dataclass(frozen=True)
class ApiUnreachable(RolloutEvent):
    """The API server stopped answering (one event per outage, whatever the number of streams)."""

    cause: str
    tolerated: float  # seconds the watch goes on waiting for it: the watch's remaining time
    backoff_cap: float

    def text(self) -> str:
        return (
            f"Kubernetes API unreachable ({self.cause}); retrying every {self.backoff_cap:.0f}s at most, "
            f"for up to {self.tolerated:.0f}s (the watch's remaining time)"
        )


@dataclass(frozen=True)
class ApiReachable(RolloutEvent):
    """The API server answers again after an `ApiUnreachable`; `outage` is how long it was gone."""

    outage: float

    def text(self) -> str:
        return f"Kubernetes API answers again after {self.outage:.1f}s; watch resumed"


@dataclass(frozen=True)
class Heartbeat(RolloutEvent):
    """Nothing changed for a while: still waiting, with the time left (for CI logs that look stuck)."""

    waiting_for: str
    remaining: float

    def text(self) -> str:
        return f"{self.elapsed:.0f}s: still waiting for {self.waiting_for} ({self.remaining:.0f}s left)"


@dataclass(frozen=True)
class RolloutSucceeded(RolloutEvent):
    message: str

    def text(self) -> str:
        return self.message


@dataclass(frozen=True)
class RolloutFailed(RolloutEvent):
    failure: Failure

    def text(self) -> str:
        return f"failed: {self.failure.describe()}"


@dataclass(frozen=True)
class RolloutTimedOut(RolloutEvent):
    waiting_for: str

    def text(self) -> str:
        return f"timed out waiting for {self.waiting_for}"


def _container_changes(
    pod: str, old: ContainerStatus | None, new: ContainerStatus, t: float
) -> list[RolloutEvent]:
    events: list[RolloutEvent] = []
    label = f"{new.name}" if not new.init else f"{new.name} (init)"
    if old and new.restarts > old.restarts and old.state != "terminated" and new.last_reason:
        # It exited and restarted between two observations: report the exit we did not see.
        events.append(ContainerExited(t, pod, label, new.last_reason, new.last_exit_code))
    same = old and (old.state, old.reason, old.restarts) == (new.state, new.reason, new.restarts)
    if same:
        return events
    if new.state == "waiting" and (not old or old.state != "waiting" or old.reason != new.reason):
        events.append(ContainerWaiting(t, pod, label, new.reason, new.message))
    elif new.state == "running" and (not old or old.state != "running" or old.restarts != new.restarts):
        events.append(ContainerStarted(t, pod, label, new.restarts))
    elif new.state == "terminated" and (not old or old.state != "terminated" or old.restarts != new.restarts):
        events.append(ContainerExited(t, pod, label, new.reason, new.exit_code))
    return events


def _pod_changes(old: PodStatus | None, new: PodStatus, t: float) -> list[RolloutEvent]:
    events: list[RolloutEvent] = []
    if old is None:
        events.append(PodAdded(t, new.name))
    if not new.containers and new.waiting_for and (old is None or old.waiting_for != new.waiting_for):
        events.append(PodPending(t, new.name, new.waiting_for))
    before = {(c.name, c.init): c for c in old.containers} if old else {}
    for c in new.containers:
        events.extend(_container_changes(new.name, before.get((c.name, c.init)), c, t))
    if new.ready and not (old and old.ready):
        events.append(PodReady(t, new.name))
    return events


def changes(before: RolloutStatus | None, after: RolloutStatus, elapsed: float) -> list[RolloutEvent]:
    """The events that lead from `before` (None at the start) to `after`, in a stable order."""
    events: list[RolloutEvent] = []
    if after.new_replicaset and (before is None or before.new_replicaset != after.new_replicaset):
        events.append(NewReplicaSet(elapsed, after.new_replicaset, after.revision))
    old_pods = {p.name: p for p in before.pods} if before else {}
    for pod in after.pods:
        events.extend(_pod_changes(old_pods.get(pod.name), pod, elapsed))
    d = after.deployment
    if d:
        old = before.deployment if before else None
        counters = (d.updated, d.ready, d.available, d.desired, d.message)
        if old is None or (old.updated, old.ready, old.available, old.desired, old.message) != counters:
            events.append(DeploymentProgress(elapsed, d.updated, d.ready, d.available, d.desired, d.message))
    return events
