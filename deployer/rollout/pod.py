"""What a Pod's state means for a rollout: a pure function from the Pod object (and the time) to a status.

Container states are classified by the one table in `reasons.py`; this module only finds the reasons
(waiting reason, terminated reason or `ExitCode:N`/`Signal:N`, `Init:` for init containers, the
PodScheduled condition, readiness against the probe-derived grace) and applies the failure budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from deployer.rollout import probes
from deployer.rollout._obj import Obj, annotations, condition, dig, name, parse_time
from deployer.rollout.reasons import (
    DEFAULT_POLICY,
    MISSING_IMAGE_HINT,
    Failure,
    FailurePolicy,
    Kind,
    Rule,
    classify,
)

__all__ = ["HOOK_ANNOTATION", "ContainerStatus", "PodStatus", "is_hook", "pod_status"]

HOOK_ANNOTATION = "helm.sh/hook"
"""Set on pods that helm runs as hooks or tests (`helm test` pods carry `helm.sh/hook: test`)."""

# Waiting reasons that are plain progress, not a problem.
_PROGRESS = {"ContainerCreating", "PodInitializing"}


@dataclass(frozen=True)
class ContainerStatus:
    """One container's state, reduced to what the rollout cares about.

    `reason` is the waiting reason, the terminated reason (`ExitCode:N`/`Signal:N` when the runtime gave
    none) or "" while running; `last_reason`/`last_exit_code` describe the previous run after a restart.
    """

    name: str
    init: bool
    state: str  # "waiting" | "running" | "terminated" | "unknown"
    reason: str
    message: str
    ready: bool
    restarts: int
    exit_code: int | None = None
    last_reason: str = ""
    last_exit_code: int | None = None
    started_at: datetime | None = None

    @property
    def label(self) -> str:
        """The reason as kubectl shows it: `Init:` in front for init containers."""
        return f"Init:{self.reason}" if self.init and self.reason else self.reason


@dataclass(frozen=True)
class PodStatus:
    """A pod's meaning for the rollout: ready, failed (and why), or what it is waiting for."""

    name: str
    phase: str
    ready: bool
    summary: str  # like kubectl's STATUS column: Running, Pending, Init:0/1, CrashLoopBackOff, ...
    containers: tuple[ContainerStatus, ...]
    failure: Failure | None
    waiting_for: str  # "" when ready or failed
    hook: bool = False
    settle_left: float = 0.0  # seconds until an unprobed running container has proven it stays up


def is_hook(pod: Obj) -> bool:
    """Whether helm created this pod as a hook or test."""
    return HOOK_ANNOTATION in annotations(pod)


def _exit_reason(terminated: Obj) -> str:
    """The reason for a terminated state; exit codes 126/127 win over the runtime's generic `Error`."""
    code = int(terminated.get("exitCode") or 0)
    reason = terminated.get("reason") or ""
    if code in (126, 127) and reason in ("", "Error"):
        return f"ExitCode:{code}"
    if reason:
        return reason
    if terminated.get("signal"):
        return f"Signal:{terminated['signal']}"
    return f"ExitCode:{code}"


def _container(raw: Obj, init: bool) -> ContainerStatus:
    state = raw.get("state") or {}
    last = dig(raw, "lastState", "terminated")
    common = {
        "name": raw.get("name", ""),
        "init": init,
        "ready": bool(raw.get("ready")),
        "restarts": int(raw.get("restartCount") or 0),
        "last_reason": _exit_reason(last) if last else "",
        "last_exit_code": int(last.get("exitCode") or 0) if last else None,
    }
    if state.get("waiting") is not None:
        waiting = state["waiting"]
        return ContainerStatus(
            state="waiting",
            reason=waiting.get("reason") or "",
            message=waiting.get("message") or "",
            **common,
        )
    if state.get("terminated") is not None:
        term = state["terminated"]
        return ContainerStatus(
            state="terminated",
            reason=_exit_reason(term),
            message=term.get("message") or "",
            exit_code=int(term.get("exitCode") or 0),
            **common,
        )
    if state.get("running") is not None:
        started = parse_time(state["running"].get("startedAt"))
        return ContainerStatus(state="running", reason="", message="", started_at=started, **common)
    return ContainerStatus(state="unknown", reason="", message="", **common)


def _pull_secret_wait(
    pod: Obj, c: ContainerStatus, rule: Rule, now: datetime, policy: FailurePolicy, unread: bool
) -> str:
    """What to wait for when a refused pull may be the kubelet's race with the pod's pull Secret; else "".

    The kubelet reads a pod's imagePullSecrets just before the first pull; on a busy node its first read
    of a Secret it has not watched before can time out (event `FailedToRetrieveImagePullSecret`: `unread`),
    and it then pulls without them, which a registry with token auth refuses ("failed to fetch anonymous
    token", 401). Its retry 10 s later has the Secret. So a refused pull by a pod that names pull secrets
    the kubelet did not use fails the rollout only once the pod is older than `policy.pull_secret_grace`.
    A pull refused with the Secret (stale credentials) or a missing image still fails at once.
    """
    if c.reason not in ("ErrImagePull", "ImagePullBackOff") or rule.hint == MISSING_IMAGE_HINT:
        return ""
    if not (unread or "anonymous" in c.message.lower()):
        return ""
    secrets = [s.get("name", "") for s in dig(pod, "spec", "imagePullSecrets", default=[])]
    created = parse_time(dig(pod, "metadata", "creationTimestamp"))
    if not secrets or created is None:
        return ""
    left = policy.pull_secret_grace - (now - created).total_seconds()
    if left <= 0:
        return ""
    return (
        f"container {c.name}: {c.reason}, pulled without its pull secret {', '.join(secrets)} (the kubelet "
        f"had not read it yet) and refused; the kubelet retries ({left:.0f}s of "
        f"{policy.pull_secret_grace:.0f}s grace left)"
    )


def _exit_text(code: int | None, reason: str) -> str:
    if code is None:
        return reason
    return reason if reason == f"ExitCode:{code}" else f"{reason} (exit code {code})"


def _container_failure(
    pod: Obj,
    c: ContainerStatus,
    spec: Obj,
    now: datetime,
    policy: FailurePolicy,
    unread: bool,
    probe_slow: bool,
) -> tuple[Failure | None, str]:
    """(failure, waiting_for) for one container; both empty when it is fine."""
    # Whose log tells the story: while the container waits to restart (or runs again), its last run is
    # the "previous" one; a container that is terminated right now is its own latest run.
    restarted = c.restarts > 0 and c.state != "terminated"
    where = {"object": f"pod/{name(pod)}", "pod": name(pod), "container": c.name, "restarted": restarted}
    prefix = "Init:" if c.init else ""
    if c.state == "waiting" and c.reason and c.reason not in _PROGRESS:
        rule = classify(prefix + c.reason, c.message)
        secret_wait = _pull_secret_wait(pod, c, rule, now, policy, unread)
        if secret_wait:
            return None, secret_wait
        if rule.kind in (Kind.DEFINITIVE, Kind.BACKOFF):
            message, hint = c.message, rule.hint
            if c.last_reason:
                # The previous exit says more than "back-off": exit 127 is a missing command, OOMKilled
                # is memory. Its hint wins when it is specific.
                message = f"last exit: {_exit_text(c.last_exit_code, c.last_reason)}" + (
                    f"; {c.message}" if c.message else ""
                )
                last_rule = classify(c.last_reason)
                if last_rule.kind is Kind.DEFINITIVE or c.last_reason in ("OOMKilled", "Completed"):
                    hint = last_rule.hint
            failure = Failure(
                prefix + c.reason, message, hint, rule.kind.value, exit_code=c.last_exit_code, **where
            )
            return failure, ""
        return None, f"container {c.name}: {prefix}{c.reason}"
    if c.state == "waiting":
        return None, f"container {c.name}: {c.reason or 'waiting'}"
    if c.state == "terminated":
        if c.exit_code == 0 and c.init:
            return None, ""
        exits = c.restarts + 1
        rule = classify(prefix + c.reason, c.message)
        if rule.kind is Kind.DEFINITIVE or (rule.kind is Kind.COUNTED and exits >= policy.max_exits):
            why = (
                rule.kind.value
                if rule.kind is Kind.DEFINITIVE
                else f"{exits} exits, budget {policy.max_exits}"
            )
            message = _exit_text(c.exit_code, c.reason) + (f": {c.message}" if c.message else "")
            return Failure(prefix + c.reason, message, rule.hint, why, exit_code=c.exit_code, **where), ""
        return (
            None,
            f"container {c.name}: exited ({_exit_text(c.exit_code, c.reason)}), "
            f"{exits} of {policy.max_exits} exits allowed",
        )
    if c.state == "running":
        # Exits before the container came up and stayed ready are forgiven; a ready container is fine.
        if c.restarts >= policy.max_exits and c.last_reason and not c.ready:
            rule = classify(prefix + c.last_reason)
            message = (
                f"restarted {c.restarts} times; last exit: {_exit_text(c.last_exit_code, c.last_reason)}"
            )
            why = f"{c.restarts} exits, budget {policy.max_exits}"
            return Failure(
                prefix + c.last_reason, message, rule.hint, why, exit_code=c.last_exit_code, **where
            ), ""
        if c.init or c.ready:
            return None, ""
        grace = policy.readiness_grace if policy.readiness_grace is not None else probes.readiness_grace(spec)
        allowed = f"its probes allow {grace:.0f}s"
        if probe_slow:
            grace += policy.slow_probe_grace
            allowed += f", +{policy.slow_probe_grace:.0f}s as every failed probe timed out"
        not_ready_for = (now - c.started_at).total_seconds() if c.started_at else 0.0
        if not_ready_for > grace:
            rule = classify("ReadinessProbeFailed")
            message = f"not ready {not_ready_for:.0f}s after start; {allowed}"
            return Failure("ReadinessProbeFailed", message, rule.hint, rule.kind.value, **where), ""
        return (
            None,
            f"container {c.name} to become ready ({grace - not_ready_for:.0f}s of {grace:.0f}s grace left)",
        )
    return None, f"container {c.name}: state unknown"


def _started_by_our_clock(c: ContainerStatus, seen: datetime | None) -> ContainerStatus:
    if c.state != "running" or seen is None or (c.started_at and c.started_at >= seen):
        return c
    return replace(c, started_at=seen)


def _summary(pod: Obj, containers: tuple[ContainerStatus, ...], ready: bool) -> str:
    """kubectl's STATUS column, roughly: the first init container's problem, else the last container's."""
    if dig(pod, "metadata", "deletionTimestamp"):
        return "Terminating"
    inits = [c for c in containers if c.init]
    for i, c in enumerate(inits):
        if c.state == "terminated" and c.exit_code == 0:
            continue
        if c.reason and c.reason != "PodInitializing":
            return c.label
        return f"Init:{i}/{len(inits)}"
    summary = dig(pod, "status", "reason") or dig(pod, "status", "phase", default="Pending")
    for c in containers:
        if not c.init and c.reason:
            summary = c.reason
    return summary


def pod_status(
    pod: Obj,
    *,
    now: datetime,
    policy: FailurePolicy = DEFAULT_POLICY,
    pull_secret_unread: bool = False,
    seen_running: Mapping[str, datetime] | None = None,
    probe_slow: bool = False,
) -> PodStatus:
    """Classify one pod at time `now` (aware UTC): ready, failed with a `Failure`, or waiting for what.

    The first failing container decides, init containers first. A helm hook or test pod that failed is a
    failure (`HookFailed`); a Deployment's failed pod (e.g. evicted) is not, its ReplicaSet replaces it.
    `pull_secret_unread`: the kubelet said it could not read the pod's pull Secrets (an event), so a
    refused pull may be its race with a new Secret (see `_pull_secret_wait`).
    `seen_running`: container name -> when (our clock, like `now`) the watch first saw it running since its
    current start. A running container's time is counted from the later of that and its startedAt: the
    node's clock is not ours, and a node (or a CI runner) a few seconds apart would otherwise judge a
    container that started a moment ago as not ready for far longer than its probes allow.
    `probe_slow`: every readiness probe failure reported for the pod (events) was a timeout, so its
    containers get `policy.slow_probe_grace` more (see `FailurePolicy`).
    """
    hook = is_hook(pod)
    phase = dig(pod, "status", "phase", default="Pending")
    containers = tuple(
        _container(raw, True) for raw in dig(pod, "status", "initContainerStatuses", default=[])
    ) + tuple(_container(raw, False) for raw in dig(pod, "status", "containerStatuses", default=[]))
    if seen_running:
        containers = tuple(_started_by_our_clock(c, seen_running.get(c.name)) for c in containers)
    ready_cond = condition(pod, "Ready")
    ready = bool(ready_cond and ready_cond.get("status") == "True")
    summary = _summary(pod, containers, ready)

    specs = {c.get("name"): c for c in dig(pod, "spec", "initContainers", default=[])}
    specs.update({c.get("name"): c for c in dig(pod, "spec", "containers", default=[])})
    settle_left = max(
        (
            policy.unprobed_settle - (now - c.started_at).total_seconds()
            for c in containers
            if not c.init
            and c.state == "running"
            and c.started_at
            and not specs.get(c.name, {}).get("readinessProbe")
        ),
        default=0.0,
    )

    def result(failure: Failure | None, waiting_for: str) -> PodStatus:
        return PodStatus(
            name(pod), phase, ready, summary, containers, failure, waiting_for, hook, max(settle_left, 0.0)
        )

    if dig(pod, "metadata", "deletionTimestamp"):
        return result(None, "")
    if hook and phase == "Failed":
        failed = next((c for c in containers if c.state == "terminated" and c.exit_code), None)
        rule = classify("HookFailed")
        message = (
            _exit_text(failed.exit_code, failed.reason)
            if failed
            else dig(pod, "status", "message", default="")
        )
        return result(
            Failure(
                "HookFailed",
                message,
                rule.hint,
                rule.kind.value,
                object=f"pod/{name(pod)}",
                pod=name(pod),
                container=failed.name if failed else None,
                exit_code=failed.exit_code if failed else None,
            ),
            "",
        )
    if phase in ("Succeeded", "Failed"):
        return result(None, "")

    scheduled = condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        since = parse_time(scheduled.get("lastTransitionTime"))
        pending_for = (now - since).total_seconds() if since else 0.0
        message = scheduled.get("message") or ""
        if pending_for > policy.unschedulable_grace:
            rule = classify("Unschedulable")
            return result(
                Failure(
                    "Unschedulable",
                    message,
                    rule.hint,
                    f"unschedulable for {pending_for:.0f}s, grace {policy.unschedulable_grace:.0f}s",
                    object=f"pod/{name(pod)}",
                    pod=name(pod),
                ),
                "",
            )
        return result(None, f"a node: {message}")

    waiting: list[str] = []
    for c in containers:
        failure, waiting_for = _container_failure(
            pod, c, specs.get(c.name, {}), now, policy, pull_secret_unread, probe_slow
        )
        if failure:
            return result(failure, "")
        if waiting_for:
            waiting.append(waiting_for)
    if not containers and not ready:
        waiting.append("containers to be created" if scheduled else "scheduling")
    if ready:
        return result(None, "")
    return result(None, "; ".join(waiting) or "pod to become ready")
