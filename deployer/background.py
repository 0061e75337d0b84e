"""Start a piece of ship work early, on a daemon thread, and take its result (or its error) later.

`deployer ship` mostly waits on processes (docker, helm) and the API server; a few of those waits do not
depend on each other (the engine check and registry login vs compiling the config, the release lock vs
packaging the chart). `Background` overlaps them without changing what the user sees: an error raised
in the background is raised again, unchanged, where the result is taken, so it is reported by the stage
that needs the result. Daemon threads, so Ctrl-C never waits for one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Background", "ChoreResult", "Chores", "Relay", "beside"]

T = TypeVar("T")


class Background(Generic[T]):
    """`fn()` running on a daemon thread from construction on."""

    def __init__(self, fn: Callable[[], T], *, name: str) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], T]) -> None:
        try:
            self._value = fn()
        except BaseException as e:  # noqa: BLE001 - handed to whoever takes the result
            self._error = e

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds (None: no bound) for `fn` to finish; whether it has."""
        self._thread.join(timeout)
        return self.done

    def result(self) -> T:
        """Wait for `fn` to finish; its return value, or its exception raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class Relay:
    """Output of work started before its stage: kept until the stage starts, then passed on live."""

    def __init__(self) -> None:
        self._kept: list[str] = []
        self._to: Callable[[str], None] | None = None
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            if self._to is None:
                self._kept.append(line)
            else:
                self._to(line)

    def attach(self, to: Callable[[str], None]) -> None:
        with self._lock:
            for line in self._kept:
                to(line)
            self._kept, self._to = [], to


def beside(started: float, finished: float, windows: Mapping[str, tuple[float, float]]) -> list[str]:
    """The stages whose window (start, end; `time.monotonic()` values, end `math.inf` while the stage
    runs) overlaps work that ran from `started` to `finished`, in the windows' order."""
    return [name for name, (start, end) in windows.items() if start < finished and started < end]


@dataclass(frozen=True)
class ChoreResult:
    """One chore's outcome: when it ran (`time.monotonic()` values; None if it never started), whether it
    finished without an error, and the lines it said."""

    name: str
    stage: str  # the stage that queued it
    started: float | None
    finished: float | None
    ok: bool
    lines: tuple[str, ...]

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started


class Chores:
    """Work no later stage needs (build cache pushes, engine clean-up), off the critical path.

    Chores run one after another on one daemon thread, in the order queued, so they never race each other
    for the engine. `hold` keeps them from starting while the critical path still needs the engine and the
    network (the image push); `release` lets them go. `finish` waits for them up to a deadline and returns
    what each did; an error in a chore is one of its lines, never raised: a chore that fails costs the next
    run a cache or a clean-up, never this run its verdict. A chore still running at the deadline is left
    (its tools are stopped by whoever owns them) and said so.
    """

    def __init__(self) -> None:
        self._queue: list[tuple[str, str, Callable[[Callable[[str], None]], None]]] = []
        self._results: list[ChoreResult] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._held = False
        self._closed = False
        self._running: tuple[str, str, float, list[str]] | None = None
        self._thread: threading.Thread | None = None

    def hold(self) -> None:
        with self._lock:
            self._held = True

    def release(self) -> None:
        with self._lock:
            self._held = False
            self._wake.notify_all()

    def add(self, name: str, stage: str, fn: Callable[[Callable[[str], None]], None]) -> None:
        """Queue `fn(say)`; `say(line)` records a line for the report and the output."""
        with self._lock:
            if self._closed:
                return
            self._queue.append((name, stage, fn))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="chores", daemon=True)
                self._thread.start()
            self._wake.notify_all()

    def _work(self) -> None:
        while True:
            with self._lock:
                while (self._held or not self._queue) and not self._closed:
                    self._wake.wait()
                if not self._queue:
                    return
                name, stage, fn = self._queue.pop(0)
                lines: list[str] = []
                started = time.monotonic()
                self._running = (name, stage, started, lines)
            ok = True
            try:
                fn(lines.append)
            except Exception as err:  # noqa: BLE001 - a chore's failure is a warning (see the class)
                ok = False
                lines.append(f"failed: {err}")
            with self._lock:
                self._running = None
                self._results.append(ChoreResult(name, stage, started, time.monotonic(), ok, tuple(lines)))
                self._wake.notify_all()

    def abandon(self) -> threading.Thread | None:
        """Start nothing more: the ship is over (interrupted, or crashed before `finish`). A chore queued
        but not started must not run after the command returned (it would touch the engine behind the
        user's back, or behind the next test's)."""
        with self._lock:
            self._queue.clear()
            self._closed = True
            self._wake.notify_all()
            thread = self._thread
        return thread

    def finish(self, deadline: float | None, *, drop_held: str | None = None) -> list[ChoreResult]:
        """Let every queued chore run (held or not), wait for them until `deadline` (a `time.monotonic()`
        value; None: no bound), and return their results in the order they were queued. `drop_held`: if
        the chores are still held, run none of them and say this instead."""
        with self._lock:
            if self._held and drop_held is not None:
                dropped = [ChoreResult(n, s, None, None, False, (drop_held,)) for n, s, _ in self._queue]
                self._queue.clear()
                self._closed = True
                self._wake.notify_all()
                return dropped
            self._held = False
            self._closed = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(None if deadline is None else max(deadline - time.monotonic(), 0.0))
        with self._lock:
            results = list(self._results)
            if self._running is not None:
                name, stage, started, lines = self._running
                said = (*lines, "still running when the ship's --timeout ran out; stopped")
                results.append(ChoreResult(name, stage, started, None, False, said))
            results += [
                ChoreResult(name, stage, None, None, False, ("not started: the ship's --timeout ran out",))
                for name, stage, _ in self._queue
            ]
            self._queue.clear()
        return results
