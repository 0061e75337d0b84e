"""The live table `deployer` shows on a terminal (`deployer.reporting.display.make_display` picks it): one
row per stage with its status, elapsed time and latest state change, redrawn by rich.

Kept apart from the plain CI display so that a CI run never imports rich (about 70 ms of CPU per
process). Never decides anything: it only renders results.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Text

from deployer.reporting.display import _MARK, verdict_lines
from deployer.reporting.redact import redact
from deployer.workflow import (
    Event,
    Status,
    StepFinished,
    StepProgress,
    StepStarted,
    WorkflowFinished,
    WorkflowRun,
    WorkflowStarted,
)

__all__ = ["LiveDisplay"]

Clock = Callable[[], float]

_STYLE = {
    Status.SUCCESS: "green",
    Status.FAILED: "bold red",
    Status.SKIPPED: "yellow",
    Status.NOT_RUN: "dim",
    Status.INTERRUPTED: "bold red",
}


@dataclass
class _Row:
    name: str
    title: str
    status: Status | None = None  # None = running or waiting
    started: float | None = None
    duration: float | None = None
    last: str = ""
    running: bool = False


@dataclass
class _Board:
    """The live table's state; rendered on each refresh so running stages show a ticking time."""

    clock: Callable[[], float]
    rows: dict[str, _Row] = field(default_factory=dict)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        title_width = max((len(row.title) for row in self.rows.values()), default=0)
        # status, title, elapsed and the padding between the four columns; the rest is for the message,
        # cut to one line so the table never changes height while it redraws.
        fixed = 11 + title_width + 8 + 3 * 2
        room = max(options.max_width - fixed, 10)
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True, width=11)
        table.add_column(no_wrap=True, width=title_width)
        table.add_column(no_wrap=True, justify="right", width=8)
        table.add_column(no_wrap=True, overflow="ellipsis", max_width=room)
        now = self.clock()
        for row in self.rows.values():
            if row.status is not None:
                mark = Text(_MARK[row.status], style=_STYLE[row.status])
                elapsed = f"{row.duration or 0:.1f}s"
            elif row.running and row.started is not None:
                mark = Text("running", style="cyan")
                elapsed = f"{now - row.started:.1f}s"
            else:
                mark, elapsed = Text("waiting", style="dim"), ""
            last = Text(redact(row.last).replace("\n", " "), style="dim")
            last.truncate(room, overflow="ellipsis")
            table.add_row(mark, Text(row.title, style="bold"), elapsed, last)
        yield table


class LiveDisplay:
    """A rich live table for a terminal: a row per stage, elapsed times ticking, final summary."""

    def __init__(
        self, console: Console | None = None, *, command: str = "ship", clock: Clock = time.monotonic
    ) -> None:
        self._console = console or Console()
        self._command = command
        self._board = _Board(clock)
        self._clock = clock
        self._live: Live | None = None

    def header(self, text: str) -> None:
        self._console.print(Text(redact(text), style="bold"))

    def __call__(self, event: Event) -> None:
        board = self._board
        if isinstance(event, WorkflowStarted):  # every stage gets its row at once, "waiting"
            for name, title in event.steps:
                board.rows.setdefault(name, _Row(name, title))
        elif isinstance(event, StepStarted):
            row = board.rows.setdefault(event.name, _Row(event.name, event.title))
            row.running, row.started = True, self._clock()
            if self._live is None:
                self._live = Live(board, console=self._console, refresh_per_second=4, transient=False)
                self._live.start()
        elif isinstance(event, StepProgress):
            board.rows.setdefault(event.name, _Row(event.name, event.name)).last = event.message
        elif isinstance(event, StepFinished):
            row = board.rows.setdefault(event.result.name, _Row(event.result.name, event.title))
            row.running, row.status, row.duration = False, event.result.status, event.result.duration
            row.last = event.result.details.get("summary") or event.result.reason or row.last
        elif isinstance(event, WorkflowFinished):
            for result in event.run.results:  # stages that never started: "not run"
                row = board.rows.setdefault(result.name, _Row(result.name, result.name))
                if row.status is None:
                    row.status, row.duration, row.running = result.status, result.duration, False
            if self._live is not None:
                self._live.update(board, refresh=True)
                self._live.stop()
                self._live = None
            self._print_summary(event.run)

    def _print_summary(self, run: WorkflowRun) -> None:
        # The per-stage lines are already on screen in the table; print the verdict and the failure.
        lines = verdict_lines(run, self._command)
        style = "bold red" if run.failed else "bold green"
        body = [Text(redact(lines[0]), style=style)] + [Text(redact(line)) for line in lines[1:]]
        self._console.print(Group(*body))
