"""Follow one Deployment's rollout to a verdict: watch-based, resumable, under one deadline.

One thread per kind (Deployment, ReplicaSet, Pod, Event) lists once, then watches from that list's
resourceVersion, resuming from the last seen version when the server ends a watch, and listing again on
410 Gone. The threads only feed a queue; the loop here keeps the latest objects, re-evaluates the pure
`rollout_status` after every batch of changes (and every second, so graces expire without an event),
and yields the typed events from `feed`. Nothing here prints.

An API server that stops answering is one outage, not one line per stream and second: a dropped
connection is resumed at once from the same version; when that fails too, the stream backs off (1 s,
doubling, at most `_BACKOFF_CAP` s) and lists again, which is how it learns the API is back. The loop
reports `ApiUnreachable` when the first stream finds the API gone and `ApiReachable` (with the outage's
length) when every stream has listed again. The outage may last the watch's remaining time; at the
deadline with the API still gone, the verdict says so (reason `ApiUnreachable`), not "timed out".
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kubernetes import client

from deployer.rollout import feed
from deployer.rollout._obj import Obj, dig, name, uid
from deployer.rollout.deployment import RolloutStatus, rollout_status
from deployer.rollout.diagnosis import RolloutVerdict, container_log, timeout_failure
from deployer.rollout.event import event_line, event_time, is_warning, readiness_only_timed_out
from deployer.rollout.reasons import DEFAULT_POLICY, Failure, FailurePolicy
from deployer.rollout.replicaset import owned
from deployer.rollout.source import KINDS, ApiSource, Source
from deployer.tools.kube import KubeUnreachable, WatchExpired

__all__ = ["RolloutWatch", "watch_rollout"]

_TICK = 1.0  # seconds between re-evaluations when nothing arrives: graces are whole seconds
_WATCH_SECONDS = 240  # server-side length of one watch request before we resume it
_RETRY_SECONDS = 1.0  # first pause after a failed reconnect; doubled on each further failure
_BACKOFF_CAP = 5.0  # longest pause between tries while the API is unreachable: it is back within 5 s


@dataclass(frozen=True)
class _Snapshot:  # a (re-)list: replaces everything known of the kind
    kind: str
    items: list[Obj]


@dataclass(frozen=True)
class _Change:
    kind: str
    type: str
    obj: Obj


@dataclass(frozen=True)
class _Restarted:  # tracking hiccup, reported as feed.WatchRestarted
    kind: str
    cause: str


@dataclass(frozen=True)
class _Unreachable:  # a stream's resume failed too: the API does not answer (since `since`, monotonic)
    kind: str
    cause: str
    since: float


@dataclass(frozen=True)
class _Reachable:  # the stream listed again after `_Unreachable`
    kind: str


@dataclass(frozen=True)
class _Crashed:  # a stream cannot go on (403, 404, a bug): the watch fails with this exception
    kind: str
    error: BaseException


def _key(obj: Obj) -> str:
    return uid(obj) or name(obj)


class RolloutWatch:
    """One rollout being followed. Iterate `events()`; afterwards `status` and `failure` hold the end state.

    `since` (aware UTC, default: now) is when the deploy began: older Warning events and hook pods are
    not this rollout's. After `heartbeat` seconds without an event, a `Heartbeat` says what is awaited.
    Call after the new spec was applied (e.g. after `helm upgrade` returned), else the previous, complete
    rollout would be reported healthy. `generation` (the Deployment's metadata.generation read after the
    apply) makes that explicit: an older view of the Deployment is waited out, never judged. `images`
    (container name → image the deploy applied) fails the rollout when the Deployment runs something else.
    """

    def __init__(
        self,
        source: Source,
        deployment: str,
        *,
        timeout: float,
        since: datetime | None = None,
        policy: FailurePolicy = DEFAULT_POLICY,
        heartbeat: float = 15.0,
        generation: int | None = None,
        images: Mapping[str, str] | None = None,
    ) -> None:
        self.source = source
        self.generation = generation
        self.images = dict(images) if images else None
        self.heartbeat = heartbeat
        self.deployment = deployment
        self.timeout = timeout
        since = since or datetime.now(UTC)
        # A naive time is taken as UTC: the API's timestamps are UTC.
        self.since = since if since.tzinfo else since.replace(tzinfo=UTC)
        self.policy = policy
        self.status: RolloutStatus | None = None
        self.failure: Failure | None = None
        self.healthy = False
        self.duration = 0.0
        self._objects: dict[str, dict[str, Obj]] = {kind: {} for kind in KINDS}
        self._synced: set[str] = set()
        self._queue: queue.Queue[object] = queue.Queue()
        self._stop = threading.Event()
        self._warned: set[tuple[str, str, str]] = set()
        self._down: dict[str, float] = {}  # kind → when its stream lost the API (monotonic)
        self._outage_began: float | None = None  # earliest loss among streams already back
        self._outage_cause = ""
        self._deadline = 0.0
        # (pod, container, startedAt) -> when this watch first saw that start (our clock): see pod_status
        self._seen_running: dict[tuple[str, str, str], datetime] = {}

    # --- the streams (threads)

    def _pump(self, kind: str) -> None:
        version: str | None = None
        failed_at: float | None = None  # when the current run of connection failures began
        failures = 0
        while not self._stop.is_set():
            try:
                if version is None:
                    items, version = self.source.list(kind)
                    self._queue.put(_Snapshot(kind, items))
                    if failures > 1:
                        self._queue.put(_Reachable(kind))
                    failures, failed_at = 0, None
                for type_, obj in self.source.watch(kind, version, _WATCH_SECONDS):
                    if self._stop.is_set():
                        return
                    failures, failed_at = 0, None
                    version = dig(obj, "metadata", "resourceVersion") or version
                    if type_ != "BOOKMARK":
                        self._queue.put(_Change(kind, type_, obj))
                # The server ended the watch (its timeout): resume from the last version seen.
            except WatchExpired as e:
                version = None
                self._queue.put(_Restarted(kind, f"resource version expired, listing again ({e})"))
            except KubeUnreachable as e:
                if self._stop.is_set():
                    return
                failures += 1
                failed_at = failed_at if failed_at is not None else time.monotonic()
                if failures == 1:
                    continue  # a dropped connection: resume from the same version at once
                if failures == 2:
                    self._queue.put(_Unreachable(kind, str(e), failed_at))
                # List again when it answers: a list is what tells us the API is back.
                version = None
                self._stop.wait(min(_RETRY_SECONDS * 2 ** (failures - 2), _BACKOFF_CAP))
            except BaseException as e:  # noqa: BLE001 - handed to the main loop, which re-raises it
                if not self._stop.is_set():
                    self._queue.put(_Crashed(kind, e))
                return

    # --- the loop

    def _apply(self, item: object) -> list[feed.RolloutEvent]:
        elapsed = self._elapsed()
        if isinstance(item, _Snapshot):
            self._objects[item.kind] = {_key(o): o for o in item.items}
            self._synced.add(item.kind)
        elif isinstance(item, _Change):
            store = self._objects[item.kind]
            if item.type == "DELETED":
                store.pop(_key(item.obj), None)
            else:
                store[_key(item.obj)] = item.obj
        elif isinstance(item, _Restarted):
            return [feed.WatchRestarted(elapsed, item.kind, item.cause)]
        elif isinstance(item, _Unreachable):
            first = not self._down
            self._down[item.kind] = item.since
            if first:
                self._outage_cause = item.cause
                left = max(self._deadline - time.monotonic(), 0.0)
                return [feed.ApiUnreachable(elapsed, item.cause, left, _BACKOFF_CAP)]
        elif isinstance(item, _Reachable):
            since = self._down.pop(item.kind, None)
            if since is not None:
                self._outage_began = min(self._outage_began or since, since)
            if since is not None and not self._down:
                began, self._outage_began = self._outage_began or since, None
                return [feed.ApiReachable(elapsed, time.monotonic() - began)]
        elif isinstance(item, _Crashed):
            raise item.error
        return []

    def _elapsed(self) -> float:
        return time.monotonic() - self._started

    # The API's timestamps are the cluster's clocks: compared with them, our times move by the server's
    # measured offset, so a CI runner whose clock is off neither ignores this rollout's own events and test
    # pods (ours ahead) nor judges a pod by a deadline that has not passed (ours behind).
    def _server_now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.source.clock_offset)

    def _server_since(self) -> datetime:
        return self.since + timedelta(seconds=self.source.clock_offset)

    def _note_running(self, now: datetime) -> dict[str, dict[str, datetime]]:
        """pod -> container -> when this watch first saw its current start (see `pod.pod_status`)."""
        seen: dict[str, dict[str, datetime]] = {}
        for pod in self._objects["pod"].values():
            statuses = dig(pod, "status", "initContainerStatuses", default=[]) + dig(
                pod, "status", "containerStatuses", default=[]
            )
            for c in statuses:
                started = dig(c, "state", "running", "startedAt")
                if started:
                    key = (name(pod), c.get("name", ""), started)
                    seen.setdefault(name(pod), {})[key[1]] = self._seen_running.setdefault(key, now)
        return seen

    def _evaluate(self) -> RolloutStatus:
        deployments = [d for d in self._objects["deployment"].values() if name(d) == self.deployment]
        now = self._server_now()
        return rollout_status(
            deployments[0] if deployments else None,
            self._objects["replicaset"].values(),
            self._objects["pod"].values(),
            now=now,
            policy=self.policy,
            since=self._server_since(),
            generation=self.generation,
            images=self.images,
            pull_secret_unread=frozenset(
                dig(e, "involvedObject", "name")
                for e in self._objects["event"].values()
                if e.get("reason") == "FailedToRetrieveImagePullSecret"
            ),
            seen_running=self._note_running(now),
            probes_slow=readiness_only_timed_out(self._objects["event"].values()),
        )

    def rollout_objects(self) -> set[str]:
        """Names of the Deployment, its ReplicaSets and their pods, and hook pods: whose events matter."""
        names = {self.deployment}
        deployments = [d for d in self._objects["deployment"].values() if name(d) == self.deployment]
        pods = list(self._objects["pod"].values())
        for rs in owned(deployments[0], self._objects["replicaset"].values()) if deployments else []:
            names.add(name(rs))
            names.update(name(p) for p in owned(rs, pods))
        if self.status:
            names.update(p.name for p in self.status.pods)
        return names

    def warnings(self) -> list[Obj]:
        """Warning events about the rollout's objects since `since`, oldest first."""
        objects = self.rollout_objects()
        cutoff = self._server_since().replace(microsecond=0)
        chosen = []
        for event in self._objects["event"].values():
            when = event_time(event)
            if (
                is_warning(event)
                and dig(event, "involvedObject", "name") in objects
                and (not when or when >= cutoff)
            ):
                chosen.append((when.isoformat() if when else "", event))
        return [event for _, event in sorted(chosen, key=lambda pair: pair[0])]

    def _new_warnings(self) -> list[feed.RolloutEvent]:
        out: list[feed.RolloutEvent] = []
        for event in self.warnings():
            # Once per event and message: a repeat only raises its count.
            seen = (_key(event), event.get("reason") or "", event.get("message") or "")
            if seen not in self._warned:
                self._warned.add(seen)
                out.append(feed.WarningEvent(self._elapsed(), event_line(event)))
        return out

    def events(self) -> Iterator[feed.RolloutEvent]:
        """Follow the rollout; the last event is RolloutSucceeded, RolloutFailed or RolloutTimedOut.

        Raises our errors (from `deployer.tools.kube`) when tracking itself cannot go on: a 403, a missing
        namespace. Stops the streams on the way out, whatever happens.
        """
        self._started = time.monotonic()
        deadline = self._deadline = self._started + self.timeout
        threads = [
            threading.Thread(target=self._pump, args=(k,), name=f"watch-{k}", daemon=True) for k in KINDS
        ]
        for t in threads:
            t.start()
        last_event = self._started
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining > 0 and time.monotonic() - last_event >= self.heartbeat:
                    last_event = time.monotonic()
                    waiting = (
                        self._outage_text()
                        if self._down
                        else self.status.waiting_for
                        if self.status
                        else "the first list of objects from the API"
                    )
                    yield feed.Heartbeat(self._elapsed(), waiting, remaining)
                if remaining <= 0:
                    self.failure = (
                        self._outage_failure() if self._down else timeout_failure(self.status, self.timeout)
                    )
                    self.duration = self._elapsed()
                    yield feed.RolloutTimedOut(
                        self.duration, self.failure.message.removeprefix("still waiting for: ")
                    )
                    return
                items: list[object] = []
                try:
                    next_beat = max(last_event + self.heartbeat - time.monotonic(), 0.01)
                    items.append(self._queue.get(timeout=min(remaining, _TICK, next_beat)))
                    while True:  # take the whole batch: one evaluation per burst of changes
                        items.append(self._queue.get_nowait())
                except queue.Empty:
                    pass
                for item in items:
                    for event in self._apply(item):
                        last_event = time.monotonic()
                        yield event
                if not {"deployment", "replicaset", "pod"} <= self._synced:
                    continue
                status = self._evaluate()
                elapsed = self._elapsed()
                news = feed.changes(self.status, status, elapsed)
                self.status = (
                    status  # before the warnings: the hook pods it found name objects whose events count
                )
                news += self._new_warnings()
                if news:
                    last_event = time.monotonic()
                yield from news
                if (status.healthy or status.failure) and self._down:
                    # A verdict came from fresh lists, so the API answers, though a stream (say, events)
                    # has not retried yet: say it is back rather than end on "unreachable".
                    yield self._back(elapsed)
                if status.healthy:
                    self.healthy = True
                    self.duration = elapsed
                    yield feed.RolloutSucceeded(
                        elapsed, status.deployment.message if status.deployment else ""
                    )
                    return
                if status.failure:
                    self.failure = status.failure
                    self.duration = elapsed
                    yield feed.RolloutFailed(elapsed, status.failure)
                    return
        finally:
            self._stop.set()
            self.source.stop()

    def _back(self, elapsed: float) -> feed.ApiReachable:
        began = min([*self._down.values(), *([self._outage_began] if self._outage_began else [])])
        self._down.clear()
        self._outage_began = None
        return feed.ApiReachable(elapsed, time.monotonic() - began)

    def _outage_text(self) -> str:
        lost = time.monotonic() - min(self._down.values())
        return f"the Kubernetes API to answer again (unreachable for {lost:.0f}s)"

    def _outage_failure(self) -> Failure:
        lost = time.monotonic() - min(self._down.values())
        return Failure(
            "ApiUnreachable",
            f"still waiting for: the Kubernetes API, unreachable for the last {lost:.0f}s "
            f"({self._outage_cause})",
            f"the rollout's state is unknown: the API server did not answer again within the watch's "
            f"{self.timeout:.0f}s; check the cluster (`e2e/cluster status`), then `deployer status`",
            "deadline",
            object="apiserver",
        )

    def verdict(self, *, log_lines: int = 30) -> RolloutVerdict:
        """The verdict after `events()` ended; on failure, with log lines and Warning events gathered."""
        status = self.status
        common = {
            "duration": self.duration,
            "replicaset": status.new_replicaset if status else None,
            "revision": status.revision if status else 0,
        }
        if self.healthy:
            return RolloutVerdict(True, "Available", "", message=status.deployment.message, **common)
        failure = self.failure or timeout_failure(status, self.timeout)
        logs = (
            container_log(
                self.source, failure.pod, failure.container, restarted=failure.restarted, tail=log_lines
            )
            if failure.pod and failure.container
            else []
        )
        return RolloutVerdict(
            False,
            failure.reason,
            failure.hint,
            message=failure.message,
            rule=failure.rule,
            object=failure.object,
            pod=failure.pod,
            container=failure.container,
            exit_code=failure.exit_code,
            log_tail=logs,
            warning_events=[event_line(e) for e in self.warnings()],
            **common,
        )


def watch_rollout(
    api: client.ApiClient | None,
    namespace: str,
    deployment: str,
    *,
    timeout: float,
    since: datetime | None = None,
    on_event: Callable[[feed.RolloutEvent], None] | None = None,
    policy: FailurePolicy = DEFAULT_POLICY,
    heartbeat: float = 15.0,
    pod_selector: str | None = None,
    log_lines: int = 30,
    source: Source | None = None,
    generation: int | None = None,
    images: Mapping[str, str] | None = None,
    abort: Callable[[], BaseException | None] | None = None,
) -> RolloutVerdict:
    """Follow `deployment` in `namespace` until it is fully available, fails, or `timeout` seconds pass.

    Calls `on_event` with each typed event as it happens (state changes, warnings, the end). Success means
    the Deployment's current generation (at least `generation`, when given: read it after applying) is
    observed and complete, and its new ReplicaSet (the one with the current pod template) agrees by its own
    status and pods: replicas == ready == available == desired, no old replicas (see
    `deployment.rollout_status`). Failure is reported as soon as a rule in `reasons.RULES` fires; with
    `images` (container name → the image the deploy applied), a Deployment running another image fails
    with `UnexpectedImage`. `abort` is asked after every event (at least every `heartbeat` seconds): an
    error it returns is raised at once, ending the watch without a verdict. `source` replaces the client
    (tests); otherwise `api` is used through `ApiSource`.
    """
    if source is None:
        if api is None:
            raise ValueError("watch_rollout needs an ApiClient or a Source")
        source = ApiSource(api, namespace, deployment, pod_selector)
    watch = RolloutWatch(
        source,
        deployment,
        timeout=timeout,
        since=since,
        policy=policy,
        heartbeat=heartbeat,
        generation=generation,
        images=images,
    )
    events = watch.events()
    try:
        for event in events:
            if on_event:
                on_event(event)
            stop = abort() if abort is not None else None
            if stop is not None:
                raise stop
    finally:
        events.close()  # stops the watch streams now, also when aborted
    return watch.verdict(log_lines=log_lines)
