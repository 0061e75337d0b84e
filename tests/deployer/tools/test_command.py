"""deployer.tools.command.run against real (cheap) processes: `sys.executable -c ...` (STYLE 7.2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from deployer.errors import EnvironmentMissing
from deployer.reporting import redact
from deployer.tools import command
from deployer.tools.command import ToolFailed

PY = sys.executable


@pytest.fixture(autouse=True)
def _no_registered_secrets():
    redact.clear()
    yield
    redact.clear()


def py(code: str) -> list[str]:
    return [PY, "-c", code]


def test_returns_output_and_exit_code():
    result = command.run("py", py("import sys; print('out'); print('err', file=sys.stderr)"))
    assert result.exit_code == 0
    assert result.ok
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.argv[0] == PY


def test_no_output_is_lost_on_quick_exits():
    # sh 2.x's wait(timeout=...) returned before its output threads were joined; run() must not.
    outputs = {command.run("py", py("print('hello')")).stdout for _ in range(15)}
    assert outputs == {"hello\n"}


def test_failure_raises_tool_failed_with_stderr_tail():
    with pytest.raises(ToolFailed) as caught:
        command.run("py", py("import sys; print('a bad thing', file=sys.stderr); sys.exit(3)"))
    err = caught.value
    assert err.tool == "py"
    assert err.exit_code == 3
    assert err.stderr_tail == "a bad thing\n"
    assert not err.timed_out
    assert str(err).startswith("py exited with status 3: ")
    assert str(err).endswith(":\na bad thing")


def test_success_codes_and_check_false():
    assert command.run("py", py("import sys; sys.exit(4)"), success_codes=(0, 4)).exit_code == 4
    assert command.run("py", py("import sys; sys.exit(5)"), check=False).exit_code == 5
    with pytest.raises(ToolFailed):
        command.run("py", py("import sys; sys.exit(5)"), success_codes=(0, 4))


def test_missing_program_is_environment_missing_with_hint():
    with pytest.raises(EnvironmentMissing) as caught:
        command.run("frob", ["frob-does-not-exist-here"], missing_hint="apt-get install frob")
    assert caught.value.message == "frob not found: frob-does-not-exist-here (not on PATH)"
    assert caught.value.hint == "apt-get install frob"


def test_missing_program_by_path():
    with pytest.raises(EnvironmentMissing) as caught:
        command.run("frob", ["/nonexistent/bin/frob"])
    assert caught.value.message == "frob not found: /nonexistent/bin/frob"


def test_environment_is_clean_plus_extra(monkeypatch):
    monkeypatch.setenv("DEPLOYER_LEAK_CHECK", "leaked")
    code = "import os, json; print(json.dumps(sorted(os.environ)))"
    names = set(json.loads(command.run("py", py(code), env={"EXTRA": "1"}).stdout))
    assert "DEPLOYER_LEAK_CHECK" not in names
    assert {"PATH", "HOME", "LANG", "EXTRA"} <= names


def test_input_goes_to_stdin_and_is_not_logged(caplog):
    caplog.set_level("INFO", logger="deployer.tools.command")
    result = command.run("py", py("import sys; print(len(sys.stdin.read()))"), input="hunter2-secret")
    assert result.stdout == "14\n"
    assert "hunter2-secret" not in caplog.text


def test_argv_and_output_are_redacted(caplog):
    caplog.set_level("INFO", logger="deployer.tools.command")
    redact.register("s3cr3t-value")
    lines: list[str] = []
    result = command.run("py", py("print('token s3cr3t-value here')") + ["s3cr3t-value"], stream=lines.append)
    assert "s3cr3t-value" not in caplog.text
    assert redact.MASK in caplog.text
    assert result.stdout == f"token {redact.MASK} here\n"
    assert lines == [f"token {redact.MASK} here"]
    assert "s3cr3t-value" not in " ".join(result.argv)


def test_stream_gets_lines_in_order_with_merged_stderr():
    code = (
        "import sys\n"
        "for i in range(3):\n"
        " print('out', i, flush=True); print('err', i, file=sys.stderr, flush=True)"
    )
    lines: list[str] = []
    result = command.run("py", [PY, "-u", "-c", code], stream=lines.append, merge_stderr=True)
    assert lines == ["out 0", "err 0", "out 1", "err 1", "out 2", "err 2"]
    assert result.stderr == ""
    assert result.tail == lines


def test_tail_keeps_the_last_lines_only():
    result = command.run("py", py("for i in range(100): print(i)"))
    assert len(result.tail) == command.TAIL_LINES
    assert result.tail[-1] == "99"


def test_timeout_stops_the_whole_process_group():
    marker = f"deployer-timeout-{uuid.uuid4().hex}"
    # A shell with a background child: the child must die too, not only the shell.
    script = f"sleep 300 & exec -a {marker} sleep 300"
    with pytest.raises(ToolFailed) as caught:
        command.run("sh", ["bash", "-c", f"(exec -a {marker} sleep 300) & {script}"], timeout=1)
    assert caught.value.timed_out
    assert caught.value.exit_code is None
    assert not _processes_named(marker)


def test_ctrl_c_stops_the_child_and_propagates():
    marker = f"deployer-ctrlc-{uuid.uuid4().hex}"
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        command.run("sh", ["bash", "-c", f"(exec -a {marker} sleep 300) & wait"])
    timer.cancel()
    assert not _processes_named(marker)


def _processes_named(marker: str) -> list[str]:
    for _ in range(40):  # the group gets SIGKILL after SIGTERM; give the kernel a moment to reap
        out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
        found = [line for line in out.splitlines() if marker in line]
        if not found:
            return []
        time.sleep(0.05)
    return found


def test_completed_check_returncode():
    result = command.run("py", py("import sys; print('x', file=sys.stderr); sys.exit(2)"), check=False)
    with pytest.raises(ToolFailed) as caught:
        result.check_returncode()
    assert caught.value.exit_code == 2
    command.run("py", py("pass")).check_returncode()


def test_empty_argv_is_refused():
    with pytest.raises(ValueError):
        command.run("nothing", [])


def test_no_input_is_an_immediate_end_of_file():
    # Without `input` the child's stdin is empty (EOF), not a pipe nobody writes to: a tool that reads
    # stdin finishes instead of waiting for its deadline.
    result = command.run("py", py("import sys; print(repr(sys.stdin.read()))"), timeout=60)
    assert result.stdout == "''\n"


def test_bytes_input_goes_to_stdin():
    result = command.run("py", py("import sys; print(sys.stdin.buffer.read().hex())"), input=b"\x00\xff")
    assert result.stdout == "00ff\n"


def test_timeout_is_reported_even_when_every_exit_code_is_accepted():
    with pytest.raises(ToolFailed) as caught:
        command.run(
            "py", py("import time; print('started', flush=True); time.sleep(300)"), timeout=1, check=False
        )
    assert caught.value.timed_out
    assert caught.value.exit_code is None
    assert caught.value.stdout_tail == "started\n"  # what it printed before the deadline is kept


def test_timeout_kills_a_child_that_ignores_sigterm(monkeypatch):
    monkeypatch.setattr(command, "_TERM_GRACE", 0.5)
    marker = f"deployer-stubborn-{uuid.uuid4().hex}"
    script = f"trap '' TERM; (trap '' TERM; exec -a {marker} sleep 300) & wait"
    with pytest.raises(ToolFailed) as caught:
        command.run("sh", ["bash", "-c", script], timeout=1)
    assert caught.value.timed_out
    assert not _processes_named(marker)


def test_a_run_that_ends_in_time_leaves_no_deadline_behind():
    # The deadline is a timer cancelled when the tool exits: it must not fire (and stop nothing) later.
    before = {t for t in threading.enumerate() if isinstance(t, threading.Timer)}
    for _ in range(3):
        assert command.run("py", py("print('ok')"), timeout=30).stdout == "ok\n"
    for t in threading.enumerate():
        if isinstance(t, threading.Timer) and t not in before:
            t.join(5)
            assert not t.is_alive()
            assert t.finished.is_set()


def test_sh_is_called_without_its_polling_paths(monkeypatch):
    """sh 2.4 polls every 0.1 s in two places run() must not use (about 100 ms per process, see the
    comments in run()): its `_timeout` thread, and the stdin Queue it makes when `_out` is a callback
    and `_in` is None. Checked on the arguments, so a slow machine cannot make this flaky."""
    seen: list[dict[str, object]] = []
    real = command.sh.Command

    class Spy:
        def __init__(self, program: str) -> None:
            self.command = real(program)

        def __call__(self, *args: str, **kwargs: object) -> object:
            seen.append(kwargs)
            return self.command(*args, **kwargs)

    monkeypatch.setattr(command.sh, "Command", Spy)
    assert command.run("py", py("print('hi')"), timeout=30).stdout == "hi\n"
    (kwargs,) = seen
    assert "_timeout" not in kwargs
    assert kwargs["_in"] is not None
    assert callable(kwargs["_out"])


def test_stop_running_stops_a_tool_another_thread_is_waiting_for():
    """What `deployer ship` does when it ends early: work started in the background is stopped too."""
    import threading

    from deployer.tools import command

    outcome: list[BaseException] = []

    def background() -> None:
        try:
            command.run("sleep", ["sleep", "60"], timeout=120)
        except command.ToolFailed as e:
            outcome.append(e)

    thread = threading.Thread(target=background)
    thread.start()
    for _ in range(200):  # until it has started
        if command._running:
            break
        threading.Event().wait(0.01)
    assert command.stop_running() == 1
    thread.join(timeout=30)
    assert not thread.is_alive()
    (failed,) = outcome
    assert failed.exit_code != 0 and not failed.timed_out  # stopped, not timed out
    assert command._running == {} and command.stop_running() == 0
