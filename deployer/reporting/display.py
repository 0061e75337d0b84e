"""Turn workflow events into what a person or a CI log sees.

Two displays read the same events (`deployer.workflow.Event`):

- `PlainDisplay` (CI mode: `--ci`, `CI=true` or stdout not a terminal): one line per state change,
  prefixed with the elapsed time, never a redraw, never colour;
- `LiveDisplay` (a terminal): a rich live table, one row per stage with its status, elapsed time and
  latest state change; colour unless `NO_COLOR` is set.

Both end with the same summary: every stage with its time, and on failure the stage, the cause, the
evidence (log tail, events), the hint and the next command to run. Every line passes through
`deployer.reporting.redact.redact` first, so a registered secret never reaches the screen or the CI log.
This module never decides anything: it only renders results.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Protocol

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Text

from deployer.errors import ExitCode
from deployer.reporting.origin_line import describe
from deployer.reporting.redact import redact
from deployer.workflow import (
    Event,
    Status,
    StepFinished,
    StepProgress,
    StepResult,
    StepStarted,
    WorkflowFinished,
    WorkflowRun,
    WorkflowStarted,
)

__all__ = [
    "Display",
    "LiveDisplay",
    "PlainDisplay",
    "make_display",
    "stage_lines",
    "summary_lines",
    "verdict_lines",
]

Clock = Callable[[], float]

EVIDENCE_LINES = 30  # enough for a failing test's block and a crash's log tail; all of it is in --report
_EVIDENCE_TAIL = 8  # of a longer evidence, its start (what failed first) and its end (how it ended)

_MARK = {
    Status.SUCCESS: "ok",
    Status.FAILED: "FAILED",
    Status.SKIPPED: "skipped",
    Status.NOT_RUN: "not run",
    Status.INTERRUPTED: "INTERRUPTED",
}
_STYLE = {
    Status.SUCCESS: "green",
    Status.FAILED: "bold red",
    Status.SKIPPED: "yellow",
    Status.NOT_RUN: "dim",
    Status.INTERRUPTED: "bold red",
}


class Display(Protocol):
    """A sink for workflow events that also knows how to print the run's header line."""

    def __call__(self, event: Event) -> None: ...

    def header(self, text: str) -> None: ...


def _exit_text(code: int) -> str:
    try:
        return ExitCode(code).name.lower().replace("_", " ")
    except ValueError:
        return "unknown"


def summary_lines(run: WorkflowRun, command: str = "ship") -> list[str]:
    """The final summary as plain lines: one per stage, then the verdict and any failure in detail."""
    return stage_lines(run, command) + verdict_lines(run, command)


def stage_lines(run: WorkflowRun, command: str = "ship") -> list[str]:
    """One line per stage: name, status, duration, its summary or reason; then the total."""
    lines = [f"{command} summary:"]
    width = max((len(r.name) for r in run.results), default=0)
    for result in run.results:
        note = result.details.get("summary") or result.reason
        text = f"  {result.name:<{width}}  {_MARK[result.status]:<11} {result.duration:6.1f}s"
        lines.append(f"{text}  {note}".rstrip())
    lines.append(f"  {'total':<{width}}  {'':<11} {run.duration:6.1f}s")
    return lines


def verdict_lines(run: WorkflowRun, command: str = "ship") -> list[str]:
    """ "<command> succeeded", or the failed stage, cause, evidence, hint and next command."""
    failed = run.failed
    if failed is None:
        return [f"{command} succeeded in {run.duration:.1f}s"]
    return _failure_lines(failed, command)


def _failure_lines(failed: StepResult, command: str) -> list[str]:
    code = int(failed.exit_code)
    verb = "INTERRUPTED" if failed.status is Status.INTERRUPTED else "FAILED"
    lines = [f"{command} {verb} at stage {failed.name!r} (exit {code}: {_exit_text(code)})"]
    lines.append(f"  cause: {failed.reason}")
    if failed.details.get("origin"):  # the configuration line most likely behind it (deployer/origin.py)
        lines.append(f"  config: {describe(failed.details['origin'])}")
    evidence = list(failed.evidence)
    if "traceback" in failed.details:
        evidence = str(failed.details["traceback"]).rstrip().splitlines()
    if evidence:
        lines.append("  evidence:")
        lines += [f"    | {line}" for line in _cut(evidence)]
    if failed.hint:
        lines.append(f"  hint: {failed.hint}")
    if failed.next_command:
        lines.append(f"  next: {failed.next_command}")
    return lines


def _cut(evidence: list[str]) -> list[str]:
    if len(evidence) <= EVIDENCE_LINES:
        return evidence
    head = EVIDENCE_LINES - _EVIDENCE_TAIL - 1
    hidden = len(evidence) - head - _EVIDENCE_TAIL
    gap = f"… {hidden} more lines (all in the --report file)"
    return [*evidence[:head], gap, *evidence[-_EVIDENCE_TAIL:]]


class PlainDisplay:
    """One line per state change, elapsed seconds in front, no colour, no redraw (for CI logs)."""

    def __init__(
        self, stream: IO[str] | None = None, *, command: str = "ship", clock: Clock = time.monotonic
    ) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._command = command
        self._clock = clock
        self._started = clock()

    def _line(self, text: str) -> None:
        elapsed = self._clock() - self._started
        for part in redact(text).splitlines() or [""]:
            self._stream.write(f"[{elapsed:7.1f}s] {part}\n")
        self._stream.flush()

    def header(self, text: str) -> None:
        self._line(text)

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepStarted):
            title = f" {event.title}" if event.title != event.name else ""
            self._line(f"{event.name}: started ({event.index + 1}/{event.total}){title}")
        elif isinstance(event, StepProgress):
            self._line(f"{event.name}: {event.message}")
        elif isinstance(event, StepFinished):
            result = event.result
            tail = f": {result.reason}" if result.reason else ""
            self._line(f"{result.name}: {_MARK[result.status]} after {result.duration:.1f}s{tail}")
        elif isinstance(event, WorkflowFinished):
            for line in summary_lines(event.run, self._command):
                self._stream.write(redact(line) + "\n")
            self._stream.flush()


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


def make_display(*, ci: bool, color: bool, command: str = "ship", stream: IO[str] | None = None) -> Display:
    """The display for this run: plain lines in CI mode, the live table on a terminal."""
    if ci:
        return PlainDisplay(stream, command=command)
    console = Console(file=stream, no_color=not color, highlight=False)
    return LiveDisplay(console, command=command)
