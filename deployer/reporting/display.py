"""Turn workflow events into what a person or a CI log sees.

Two displays read the same events (`deployer.workflow.Event`):

- `PlainDisplay` (CI mode: `--ci`, `CI=true` or stdout not a terminal): one line per state change,
  prefixed with the elapsed time, never a redraw, never colour;
- `LiveDisplay` (a terminal): a rich live table, one row per stage with its status, elapsed time and
  latest state change; colour unless `NO_COLOR` is set. It lives in `deployer.reporting.live`, imported
  only for a terminal: rich costs a process about 70 ms of CPU, which a CI run does not need.

Both end with the same summary: every stage with its time, and on failure the stage, the cause, the
evidence (log tail, events), the hint and the next command to run. Every line passes through
`deployer.reporting.redact.redact` first, so a registered secret never reaches the screen or the CI log.
This module never decides anything: it only renders results.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Protocol

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
)

__all__ = [
    "Display",
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


def make_display(*, ci: bool, color: bool, command: str = "ship", stream: IO[str] | None = None) -> Display:
    """The display for this run: plain lines in CI mode, the live table on a terminal."""
    if ci:
        return PlainDisplay(stream, command=command)
    from rich.console import Console

    from deployer.reporting.live import LiveDisplay

    console = Console(file=stream, no_color=not color, highlight=False)
    return LiveDisplay(console, command=command)
