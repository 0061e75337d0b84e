"""A scripted `Source` for the watcher: the seam where the real one talks to the API server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

Obj = dict[str, Any]


class ScriptedSource:
    """Each `list(kind)` returns the next scripted list (the last one repeats); each `watch(kind, ...)`
    plays the next script: (type, object) pairs, then an exception to raise if the script ends with one,
    else the watch ends as the server would at its timeout. A `threading.Event` in a script holds the
    stream until it is set (or `stop()`), so a test can order changes across kinds. With no script left, a
    watch blocks until `stop()` (a quiet cluster). Every call is recorded.
    """

    def __init__(
        self,
        lists: dict[str, list[list[Obj] | BaseException]],
        watches: dict[str, list[list[Any]]] | None = None,
        logs: dict[tuple[str, str, bool], list[str]] | None = None,
    ) -> None:
        self.lists = {k: list(v) for k, v in lists.items()}
        self.watches = {k: list(v) for k, v in (watches or {}).items()}
        self.log_lines = logs or {}
        self.calls: list[tuple[Any, ...]] = []
        self.clock_offset = 0.0
        self.stopped = threading.Event()
        self._lock = threading.Lock()

    def list(self, kind: str) -> tuple[list[Obj], str]:
        with self._lock:
            self.calls.append(("list", kind))
            scripted = self.lists.get(kind, [[]])
            result = scripted.pop(0) if len(scripted) > 1 else scripted[0]
            count = sum(1 for c in self.calls if c == ("list", kind))
        if isinstance(result, BaseException):
            raise result
        return result, f"{kind}-list-{count}"

    def watch(self, kind: str, resource_version: str, timeout: int) -> Iterator[tuple[str, Obj]]:
        with self._lock:
            self.calls.append(("watch", kind, resource_version))
            scripts = self.watches.get(kind, [])
            script = scripts.pop(0) if scripts else None
        if script is None:
            self.stopped.wait()
            return
        for step in script:
            if isinstance(step, BaseException):
                raise step
            if isinstance(step, threading.Event):
                while not step.wait(0.05):
                    if self.stopped.is_set():
                        return
                continue
            yield step

    def logs(self, pod: str, container: str, *, previous: bool, tail: int) -> list[str]:
        self.calls.append(("logs", pod, container, previous))
        return self.log_lines.get((pod, container, previous), [])

    def stop(self) -> None:
        self.calls.append(("stop",))
        self.stopped.set()
