"""Start a piece of ship work early, on a daemon thread, and take its result (or its error) later.

`deployer ship` mostly waits on processes (docker, helm) and the API server; a few of those waits do not
depend on each other (the engine check and registry login vs compiling the config, the release lock vs
packaging the chart). `Background` overlaps them without changing what the user sees: an error raised
in the background is raised again, unchanged, where the result is taken, so it is reported by the stage
that needs the result. Daemon threads, so Ctrl-C never waits for one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Background", "Relay"]

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
