"""A command as a list of small steps, and what each step's outcome was, as data.

`run(steps, ctx, sink)` calls each step in order with one context. A step returns normally (success),
returns a `StepResult` it built itself (e.g. to say it was skipped), or raises:

- a `UserError` → a FAILED result carrying the error's exit code, message, hint and, when the error has
  them, `evidence` (log tail, events: a sequence of lines), `next_command` (what to run next) and
  `details` (a mapping that goes into the report);
- `KeyboardInterrupt` → an INTERRUPTED result, exit 130;
- anything else → a FAILED result with exit code INTERNAL and the traceback in its details.

The first failure stops the run; the steps after it are recorded as NOT_RUN so a report always lists
every stage. The JSON report, the JUnit file, the printed summary and the exit code are all readers of
the returned `WorkflowRun`. This module never prints: progress goes to `sink` as typed events.
"""

from __future__ import annotations

import enum
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from blubber.errors import ConfigErrors
from deployer.errors import DeployerError, ExitCode, Timeout, UserError

__all__ = [
    "Event",
    "Status",
    "Step",
    "StepContext",
    "StepFinished",
    "StepProgress",
    "StepResult",
    "StepStarted",
    "WorkflowFinished",
    "WorkflowRun",
    "WorkflowStarted",
    "final_exit_code",
    "run",
]

C = TypeVar("C")  # the command's frozen config
S = TypeVar("S")  # the command's mutable state, filled in by steps (image digest, release revision, ...)


class Status(enum.Enum):
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_RUN = "not-run"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class StepResult:
    """One step's outcome. True when the step succeeded or was skipped on purpose."""

    name: str
    status: Status
    reason: str = ""
    duration: float = 0.0
    details: Mapping[str, Any] = field(default_factory=dict)
    exit_code: ExitCode = ExitCode.OK
    hint: str | None = None
    evidence: tuple[str, ...] = ()
    next_command: str | None = None

    def __bool__(self) -> bool:
        return self.status in (Status.SUCCESS, Status.SKIPPED)

    @property
    def is_failed(self) -> bool:
        return self.status in (Status.FAILED, Status.INTERRUPTED)

    @classmethod
    def skipped(cls, name: str, reason: str, **details: Any) -> StepResult:
        return cls(name=name, status=Status.SKIPPED, reason=reason, details=details)

    def serialize(self) -> dict[str, Any]:
        """A JSON-ready dict (keys in a fixed order, so reports diff cleanly)."""
        return {
            "name": self.name,
            "status": self.status.value,
            "reason": self.reason,
            "duration_seconds": round(self.duration, 3),
            "exit_code": int(self.exit_code),
            "hint": self.hint,
            "evidence": list(self.evidence),
            "next_command": self.next_command,
            "details": dict(self.details),
        }


# --- events: what the runner and the steps tell the display ------------------------------------------


@dataclass(frozen=True)
class WorkflowStarted:
    """The stages about to run, in order: (name, title) pairs."""

    steps: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class StepStarted:
    name: str
    title: str
    index: int
    total: int


@dataclass(frozen=True)
class StepProgress:
    """A state change inside a step (e.g. "pod web-1: CrashLoopBackOff"), one line in CI mode."""

    name: str
    message: str
    elapsed: float


@dataclass(frozen=True)
class StepFinished:
    result: StepResult
    title: str


@dataclass(frozen=True)
class WorkflowFinished:
    run: WorkflowRun


Event = WorkflowStarted | StepStarted | StepProgress | StepFinished | WorkflowFinished
Sink = Callable[[Event], None]


def _discard(_event: Event) -> None:
    pass


class StepContext(Generic[C, S]):
    """What every step gets: the command's config, the shared state, progress and the deadline."""

    def __init__(self, config: C, state: S, *, deadline: float | None = None) -> None:
        self.config = config
        self.state = state
        self.deadline = deadline  # time.monotonic() value, None = no overall deadline
        self._sink: Sink = _discard
        self._step = ""
        self._started = time.monotonic()

    def progress(self, message: str) -> None:
        """Report a state change of the running step."""
        self._sink(StepProgress(self._step, message, time.monotonic() - self._started))

    def remaining(self) -> float | None:
        """Seconds left before the overall deadline (None without one); raises `Timeout` when past it."""
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Timeout(
                f"the overall deadline passed during step {self._step!r}",
                hint="raise it with --timeout, or look at what the step was waiting for above",
            )
        return left

    def _enter(self, step: str, sink: Sink) -> None:
        self._step = step
        self._sink = sink
        self._started = time.monotonic()


StepFn = Callable[[StepContext[Any, Any]], "StepResult | Mapping[str, Any] | None"]


@dataclass(frozen=True)
class Step:
    """A named unit of work. `title` is what the display shows ("build production image")."""

    name: str
    fn: StepFn
    title: str = ""

    @property
    def label(self) -> str:
        return self.title or self.name


@dataclass(frozen=True)
class WorkflowRun:
    """All step results of one run, in order, and the run's total duration."""

    results: tuple[StepResult, ...]
    duration: float

    @property
    def exit_code(self) -> int:
        return final_exit_code(self.results)

    @property
    def failed(self) -> StepResult | None:
        """The step that stopped the run, if one did."""
        return next((r for r in self.results if r.is_failed), None)

    def __bool__(self) -> bool:
        return self.failed is None

    def result(self, name: str) -> StepResult | None:
        return next((r for r in self.results if r.name == name), None)


def final_exit_code(results: Iterable[StepResult]) -> int:
    """The exit code of the first failed step, 0 when none failed."""
    for result in results:
        if result.is_failed:
            return int(result.exit_code) or int(ExitCode.INTERNAL)
    return int(ExitCode.OK)


def _from_user_error(name: str, err: UserError) -> StepResult:
    # The compiler's errors (config, policy) carry only message, location and hint.
    ours = err if isinstance(err, DeployerError) else None
    evidence = [str(line) for line in ours.evidence] if ours else []
    # A message of several lines (a tool's output tail after the first line) is a reason plus evidence;
    # several problems found in one pass (blubber's ConfigErrors) are evidence one per line.
    first, *rest = err.message.splitlines() or [""]
    if not evidence:
        problems = err.problems if isinstance(err, ConfigErrors) else []
        evidence = [str(p) for p in problems] if len(problems) > 1 else [_unquote(line) for line in rest]
    where = err.location()
    return StepResult(
        name=name,
        status=Status.FAILED,
        reason=f"{where}: {first}" if where else first,
        details=dict(ours.details) if ours else {},
        exit_code=ExitCode(err.exit_code),
        hint=err.hint,
        evidence=tuple(evidence),
        next_command=ours.next_command if ours else None,
    )


def _unquote(line: str) -> str:
    """`  | text` (how tool output is quoted inside a message) → `text`."""
    stripped = line.lstrip()
    if stripped == "|":
        return ""
    return stripped[2:] if stripped.startswith("| ") else line


def _run_one(step: Step, ctx: StepContext[Any, Any], sink: Sink, clock: Callable[[], float]) -> StepResult:
    ctx._enter(step.name, sink)
    started = clock()
    try:
        ctx.remaining()  # a step never starts after the deadline
        outcome = step.fn(ctx)
    except UserError as err:
        result = _from_user_error(step.name, err)
    except KeyboardInterrupt:
        result = StepResult(
            step.name, Status.INTERRUPTED, reason="interrupted (Ctrl-C)", exit_code=ExitCode.INTERRUPTED
        )
    except Exception as err:  # an internal error: keep the traceback for the display and the report
        result = StepResult(
            step.name,
            Status.FAILED,
            reason=f"internal error: {type(err).__name__}: {err}",
            exit_code=ExitCode.INTERNAL,
            hint="this is a bug in deployer; please report it with the traceback",
            details={"traceback": traceback.format_exc()},
        )
    else:
        if isinstance(outcome, StepResult):
            result = replace(outcome, name=step.name)
        else:
            result = StepResult(step.name, Status.SUCCESS, details=dict(outcome or {}))
    return replace(result, duration=clock() - started)


def run(
    steps: Sequence[Step],
    ctx: StepContext[Any, Any],
    sink: Sink = _discard,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> WorkflowRun:
    """Run `steps` in order until one fails; return every step's result (NOT_RUN after a failure).

    `clock` measures step durations (tests pass a fake one for exact output).
    """
    started = clock()
    results: list[StepResult] = []
    stopped = False
    sink(WorkflowStarted(tuple((step.name, step.label) for step in steps)))
    for index, step in enumerate(steps):
        if stopped:
            results.append(StepResult(step.name, Status.NOT_RUN, reason="an earlier step failed"))
            continue
        sink(StepStarted(step.name, step.label, index, len(steps)))
        result = _run_one(step, ctx, sink, clock)
        results.append(result)
        sink(StepFinished(result, step.label))
        stopped = result.is_failed
    outcome = WorkflowRun(tuple(results), clock() - started)
    sink(WorkflowFinished(outcome))
    return outcome
