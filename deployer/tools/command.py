"""The one run helper for outside tools (STYLE 4.1): docker, git, helm, ... all go through `run`.

`run` finds the program first (a clear `EnvironmentMissing` when it is absent), logs the command line
with secrets masked, runs it through `sh` with a clean environment and a deadline, and turns a failure
into `ToolFailed(tool, argv, exit_code, stderr_tail)`. Output can be streamed line by line (already
redacted) to a callback while the tail is kept for error messages. On Ctrl-C the child's whole process
group is terminated (then killed) before `KeyboardInterrupt` propagates, so nothing keeps running.

The child runs in its own session: a terminal's Ctrl-C reaches only us, and we decide what the child
gets. This is what makes the behaviour the same on a TTY and in CI.

`run` is three parts: `_launch` starts the child, `_Output` takes its lines as they stream, `_wait` waits
for it under its deadline and turns the end into an exit code or `ToolFailed`.

Never prints: the command line goes to the `deployer.tools.command` logger, output to the `stream` callback.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import shlex
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import sh

from deployer.errors import EnvironmentMissing
from deployer.reporting.redact import redact, redact_argv

__all__ = ["DEFAULT_TIMEOUT", "Completed", "ToolFailed", "base_env", "run", "stop_running"]

log = logging.getLogger("deployer.tools.command")

DEFAULT_TIMEOUT = 600.0
"""Seconds a tool may run unless the caller says otherwise."""

TAIL_LINES = 40
"""Lines of output kept for error messages."""

# How long a child gets between SIGTERM and SIGKILL when we stop it (Ctrl-C, deadline).
_TERM_GRACE = 5.0

# Every tool process still running, so work started in the background (deployer.background) can be
# stopped when the command that started it ends early: no tool outlives the deployer command.
_running: dict[int, tuple[str, sh.RunningCommand]] = {}  # pgid -> (tool, process)
_running_lock = threading.Lock()


class ToolFailed(Exception):
    """An outside tool exited with a code not in `success_codes`, or ran past its deadline.

    Not a `UserError`: each tool module catches it and raises the `UserError` for its failure class
    (BuildFailed, PushFailed, DeployFailed, ...), using `stderr_tail` as evidence. `argv` is already
    redacted. `exit_code` is None when the tool was stopped at its deadline (`timed_out`).
    """

    def __init__(
        self,
        tool: str,
        argv: Sequence[str],
        exit_code: int | None,
        stderr_tail: str,
        *,
        stdout_tail: str = "",
        timed_out: bool = False,
    ) -> None:
        self.tool = tool
        self.argv = list(argv)
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        self.stdout_tail = stdout_tail
        self.timed_out = timed_out
        what = "timed out" if timed_out else f"exited with status {exit_code}"
        detail = f":\n{stderr_tail.rstrip()}" if stderr_tail.strip() else ""
        super().__init__(f"{tool} {what}: {shlex.join(self.argv)}{detail}")


@dataclass(frozen=True)
class Completed:
    """A finished run, shaped like `subprocess.CompletedProcess` (output is redacted)."""

    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str
    duration: float
    tool: str = ""
    tail: list[str] = field(default_factory=list, repr=False)
    """The last `TAIL_LINES` lines of stdout and stderr interleaved, as they arrived."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def check_returncode(self) -> None:
        """Raise `ToolFailed` when the exit code is not 0."""
        if self.exit_code != 0:
            tail = self.stderr[-4000:] or "\n".join(self.tail)
            raise ToolFailed(self.tool, self.argv, self.exit_code, tail)


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The clean environment a tool runs with: PATH, HOME, LANG and the caller's `extra`.

    Nothing else leaks in from the caller's shell (DOCKER_*, HELM_*, KUBECONFIG, proxies ...), so the
    same deployer command does the same thing for every user; modules pass what their tool needs.
    """
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
    }
    env.update(extra or {})
    return env


def _find(tool: str, program: str, path: str, hint: str | None) -> str:
    found = (
        program
        if os.sep in program and os.access(program, os.X_OK) and os.path.isfile(program)
        else (None if os.sep in program else shutil.which(program, path=path))
    )
    if not found:
        raise EnvironmentMissing(
            f"{tool} not found: {program}" + ("" if os.sep in program else " (not on PATH)"),
            hint=hint or f"install {tool}, or run `scripts/stack up`",
        )
    return found


def _stop(process: sh.RunningCommand, pgid: int) -> None:
    """Terminate the child's process group, then kill it if it has not gone within the grace time."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + _TERM_GRACE
    while time.monotonic() < deadline:
        if not process.is_alive():
            break
        time.sleep(0.05)
    # The leader may be gone while others in its group (a shell's children) still run.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def stop_running() -> int:
    """Stop every tool process this deployer command started that is still running (SIGTERM, then
    SIGKILL after the grace time); how many there were. Their `run` calls raise `ToolFailed`."""
    with _running_lock:
        running = list(_running.items())
    for pgid, (tool, process) in running:
        log.info("stopping %s (pid %d): the command that started it is ending", tool, pgid)
        _stop(process, pgid)
    return len(running)


class _Deadline:
    """Calls `stop` once `seconds` have passed, unless cancelled first (None: never).

    A `threading.Timer` sleeps until the deadline (no polling), so a tool that exits in time costs
    nothing extra. `expired()` waits for a `stop` in progress to finish, so when it says True the
    whole process group has been stopped.
    """

    def __init__(self, seconds: float | None, stop: Callable[[], None]) -> None:
        self._fired = threading.Event()
        self._timer: threading.Timer | None = None
        if seconds is not None:

            def fire() -> None:
                self._fired.set()
                stop()

            self._timer = threading.Timer(max(seconds, 0.0), fire)
            self._timer.daemon = True
            self._timer.start()

    def expired(self) -> bool:
        if self._fired.is_set() and self._timer is not None:
            self._timer.join()
            return True
        return False

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class _Output:
    """What a running tool has written: all of stdout and stderr, the last lines interleaved as they
    arrived (for error messages), each line passed on (redacted) to `stream` as it comes."""

    def __init__(self, stream: Callable[[str], None] | None) -> None:
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._stream = stream

    def collector(self, into: list[str]) -> Callable[[str], None]:
        def take(line: str) -> None:
            into.append(line)
            text = redact(line.rstrip("\n"))
            self.tail.append(text)
            if self._stream is not None:
                self._stream(text)

        return take

    def failed(self, tool: str, shown: Sequence[str], exit_code: int | None) -> ToolFailed:
        """The `ToolFailed` for this output (`exit_code` None: stopped at its deadline)."""
        return ToolFailed(
            tool,
            shown,
            exit_code,
            redact("".join(self.stderr))[-4000:],
            stdout_tail=redact("".join(self.stdout))[-4000:],
            timed_out=exit_code is None,
        )


def run(
    tool: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    input: str | bytes | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stream: Callable[[str], None] | None = None,
    success_codes: Iterable[int] = (0,),
    check: bool = True,
    merge_stderr: bool = False,
    missing_hint: str | None = None,
) -> Completed:
    """Run `argv` (argv[0] is the program, a name or a path) and return what it did.

    - `env` is added to `base_env()`; the child sees nothing else of our environment.
    - `timeout` (seconds, None for none): past it the process group is stopped and `ToolFailed`
      with `timed_out=True` is raised.
    - `input` goes to stdin (use it for passwords: never put a secret in argv). It is never logged.
    - `stream` receives every output line (stdout and stderr, redacted, without the newline) as it
      arrives; stdout/stderr are still returned, and the last lines are kept in `Completed.tail`.
    - `merge_stderr` sends stderr into stdout (one pipe), so streamed lines keep the order the tool
      wrote them in; `Completed.stderr` is then empty.
    - An exit code outside `success_codes` raises `ToolFailed` unless `check=False`.
    - Ctrl-C stops the child's process group and re-raises `KeyboardInterrupt`.

    Raises `EnvironmentMissing` when the program cannot be found.
    """
    if not argv:
        raise ValueError("run() needs a program to run")
    child_env = base_env(env)
    program = _find(tool, os.fspath(argv[0]), child_env["PATH"], missing_hint)
    args = [os.fspath(a) for a in argv[1:]]
    shown = redact_argv([os.fspath(argv[0]), *args])
    log.info("$ %s", shlex.join(shown))

    # check=False accepts every exit status, signals (negative in sh) included.
    ok_codes = sorted(set(success_codes)) if check else list(range(-64, 256))
    output = _Output(stream)
    started = time.monotonic()
    process = _launch(
        tool, program, args, output, env=child_env, cwd=cwd, input=input, ok_codes=ok_codes,
        merge_stderr=merge_stderr, missing_hint=missing_hint,
    )  # fmt: skip
    exit_code = _wait(tool, shown, process, output, timeout, started)
    return Completed(
        argv=shown,
        exit_code=exit_code,
        stdout=redact("".join(output.stdout)),
        stderr=redact("".join(output.stderr)),
        duration=time.monotonic() - started,
        tool=tool,
        tail=list(output.tail),
    )


def _launch(
    tool: str,
    program: str,
    args: Sequence[str],
    output: _Output,
    *,
    env: Mapping[str, str],
    cwd: str | os.PathLike[str] | None,
    input: str | bytes | None,
    ok_codes: Sequence[int],
    merge_stderr: bool,
    missing_hint: str | None,
) -> sh.RunningCommand:
    """Start the child in its own session, its output going to `output`, and register it as running."""
    outputs: dict[str, object] = {"_out": output.collector(output.stdout)}
    if merge_stderr:
        outputs["_err_to_out"] = True
    else:
        outputs["_err"] = output.collector(output.stderr)
    try:
        process = sh.Command(program)(
            *args,
            **outputs,
            _env=dict(env),
            _cwd=os.fspath(cwd) if cwd else None,
            # Never None: with an `_out` callback and no `_in`, sh feeds stdin from a Queue it polls
            # every 0.1 s until the child has exited (~100 ms per process). An empty input is an
            # immediate EOF, which is also what a tool that reads stdin should see when we give it none.
            _in="" if input is None else input,
            _bg=True,
            _bg_exc=False,
            # No `_timeout`: sh's timeout thread wakes every 0.1 s and is joined after the exit, so it
            # too cost ~100 ms per process. The deadline is our own timer (`_Deadline`, in `_wait`).
            _new_session=True,
            _ok_code=list(ok_codes),
            _encoding="utf-8",
            _decode_errors="replace",
        )
    except sh.CommandNotFound as e:  # raced with _find (program removed in between)
        raise EnvironmentMissing(f"{tool} not found: {program}", hint=missing_hint) from e
    with _running_lock:
        _running[process.pgid] = (tool, process)  # pgid == its pid: the child leads a new session
    return process


def _wait(
    tool: str,
    shown: Sequence[str],
    process: sh.RunningCommand,
    output: _Output,
    timeout: float | None,
    started: float,
) -> int:
    """Wait for the child under its deadline; its exit code. Raises `ToolFailed` for an exit code it may
    not have or when the deadline stopped it; on Ctrl-C stops its process group first."""
    pgid = process.pgid
    deadline = _Deadline(timeout, lambda: _stop(process, pgid))
    exit_code: int | None = None
    try:
        try:
            # A plain wait(): sh's wait(timeout=...) polls every 0.1 s and (sh 2.x) returns before the
            # output threads are joined, losing the last lines.
            process.wait()
            exit_code = process.exit_code
        except sh.ErrorReturnCode as e:
            if not deadline.expired():
                exit_code = e.exit_code
                raise output.failed(tool, shown, exit_code) from e
        if deadline.expired():  # stopped by the timer (its signal may even be in `success_codes`)
            exit_code = None
            raise output.failed(tool, shown, None)
    except KeyboardInterrupt:
        log.warning("interrupted: stopping %s", tool)
        deadline.cancel()
        _stop(process, pgid)
        raise
    finally:
        deadline.cancel()
        with _running_lock:
            _running.pop(pgid, None)
        log.debug("%s exited with %s after %.1fs", tool, exit_code, time.monotonic() - started)
    return int(exit_code or 0)
