"""The verdict of a rollout, and the evidence gathered for it when it failed.

On failure the failing container's last log lines (of its previous run when it restarted, since the
current one is usually still backing off) and the Warning events about the rollout's objects since
tracking began. A log that cannot be read (the container never started, e.g. an image pull failure) is
not an error: there is simply no log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from deployer.errors import UserError
from deployer.rollout.deployment import RolloutStatus
from deployer.rollout.reasons import Failure
from deployer.rollout.source import Source

__all__ = ["RolloutVerdict", "container_log", "timeout_failure"]

# The kubelet answers 200 with one of these as the "log" when the run's log file is gone (garbage collected).
_KUBELET_LOG_ERROR = re.compile(r"^(unable to retrieve container logs|failed to try resolving symlinks)")


@dataclass(frozen=True)
class RolloutVerdict:
    """How a rollout ended. `reason` is the API's reason (or `Timeout`); `rule` says which rule fired."""

    healthy: bool
    reason: str
    hint: str
    message: str = ""
    rule: str = ""
    object: str | None = None
    pod: str | None = None
    container: str | None = None
    exit_code: int | None = None
    log_tail: list[str] = field(default_factory=list)
    warning_events: list[str] = field(default_factory=list)
    duration: float = 0.0
    replicaset: str | None = None
    revision: int = 0

    def __bool__(self) -> bool:
        return self.healthy

    @property
    def diagnosis(self) -> str:
        """The reason and the API's message in one phrase ("CrashLoopBackOff: back-off 10s restarting
        ..."); the message alone when it already starts with the reason ("Error (exit code 3)")."""
        message = self.message or ""
        return message if message.startswith(self.reason) else f"{self.reason}: {message}".rstrip(": ")

    def where(self, deployment: str) -> str:
        """The failing object (and container), or `deployment/<deployment>` when no single one failed."""
        where = self.object or f"deployment/{deployment}"
        return where + (f" container {self.container}" if self.container else "")

    def evidence(self) -> list[str]:
        """The failing container's last log lines, then the Warning events, one line each."""
        lines = [f"log {self.pod}/{self.container}: {line}" for line in self.log_tail]
        return lines + [f"event {line}" for line in self.warning_events]

    def summary(self) -> list[str]:
        """The failure block as lines (empty when healthy): what failed, hint, logs, events, next commands."""
        if self.healthy:
            return []
        where = self.object or "rollout"
        if self.container:
            where += f" container {self.container}"
        lines = [f"{where}: {self.reason}" + (f" ({self.rule})" if self.rule else "")]
        if self.message:
            lines.append(f"  {self.message}")
        lines.append(f"  hint: {self.hint}")
        if self.log_tail:
            lines.append(f"  last log lines of {self.pod}/{self.container}:")
            lines.extend(f"    {line}" for line in self.log_tail)
        if self.warning_events:
            lines.append("  warning events since the deploy started:")
            lines.extend(f"    {line}" for line in self.warning_events)
        return lines


def container_log(source: Source, pod: str, container: str, *, restarted: bool, tail: int) -> list[str]:
    """The container's last `tail` log lines: its previous run first when it restarted, else the current one.

    Empty when no run has a log (never started, or garbage collected) or the API refuses it.
    """
    for previous in (True, False) if restarted else (False, True):
        try:
            lines = source.logs(pod, container, previous=previous, tail=tail)
        except UserError:
            continue
        if lines and not _KUBELET_LOG_ERROR.match(lines[0]):
            return lines
    return []


def timeout_failure(status: RolloutStatus | None, timeout: float) -> Failure:
    """A `Failure` for a rollout that neither failed nor finished before the deadline.

    Points at the first new pod that is not ready, so its log and state go into the report.
    """
    waiting = status.waiting_for if status else "the first list of objects from the API"
    # A pod on its way out (deleted, evicted) is not what the rollout waits for.
    waited_for = [
        p
        for p in (status.pods if status else ())
        if not (p.ready or p.hook or p.summary == "Terminating" or p.phase in ("Succeeded", "Failed"))
    ]
    pod = waited_for[0] if waited_for else None
    container = next((c for c in pod.containers if not c.init and not c.ready), None) if pod else None
    return Failure(
        "Timeout",
        f"still waiting for: {waiting}",
        f"the rollout did not finish within {timeout:.0f}s and no failure was recognised: see the state "
        "above and the events; raise the timeout if the service is just slow",
        "deadline",
        object=f"pod/{pod.name}"
        if pod
        else f"deployment/{status.deployment.name}"
        if status and status.deployment
        else "rollout",
        pod=pod.name if pod else None,
        container=container.name if container else None,
        restarted=bool(container and container.restarts),
    )
