"""Displays: plain CI lines (exact text) and the rich live table, both ending in the same summary."""

from __future__ import annotations

import io

from rich.console import Console

from deployer.reporting.display import PlainDisplay, make_display, summary_lines
from deployer.reporting.live import LiveDisplay
from tests.deployer import shipfakes


def _plain(kind=None) -> list[str]:
    stream = io.StringIO()
    display = PlainDisplay(stream, clock=shipfakes.TickClock(1.0))
    display.header("ship node-hello (0123456) to staging")
    shipfakes.ship_run(kind, sink=display)
    return stream.getvalue().splitlines()


def test_plain_display_is_one_line_per_state_change():
    lines = _plain()
    assert lines[:11] == [
        "[    1.0s] ship node-hello (0123456) to staging",
        "[    2.0s] compile: started (1/8)",
        "[    3.0s] compile: ok after 0.5s",
        "[    4.0s] test: started (2/8)",
        "[    5.0s] test: running npm test in node-hello:test",
        "[    6.0s] test: ok after 0.5s",
        "[    7.0s] build: started (3/8)",
        "[    8.0s] build: ok after 0.5s",
        "[    9.0s] push: started (4/8)",
        "[   10.0s] push: pushed 127.0.0.1:5000/node-hello:20261127-063000-production",
        "[   11.0s] push: ok after 0.5s",
    ]
    assert "[   18.0s] watch: deployment/node-hello: 2/2 replicas available" in lines
    assert "\x1b[" not in "\n".join(lines)  # never a colour or cursor escape
    assert lines[-11:] == [
        "ship summary:",
        "  compile  ok             0.5s  variants test, production",
        "  test     ok             0.5s",
        "  build    ok             0.5s",
        "  push     ok             0.5s  127.0.0.1:5000/node-hello@sha256:abababababab",
        "  chart    ok             0.5s",
        "  deploy   ok             0.5s",
        "  watch    ok             0.5s",
        "  smoke    ok             0.5s",
        "  total                   8.5s",
        "ship succeeded in 8.5s",
    ]


def test_failure_summary_names_stage_cause_evidence_hint_and_next_command():
    lines = _plain("rollout")
    cause = "CrashLoopBackOff: container app in pod node-hello-7d9-abc exited with 1 (3 restarts)"
    assert f"[   17.0s] watch: FAILED after 0.5s: {cause}" in lines
    at = lines.index("ship summary:")
    assert lines[at:] == [
        "ship summary:",
        "  compile  ok             0.5s  variants test, production",
        "  test     ok             0.5s",
        "  build    ok             0.5s",
        "  push     ok             0.5s  127.0.0.1:5000/node-hello@sha256:abababababab",
        "  chart    ok             0.5s",
        "  deploy   ok             0.5s",
        f"  watch    FAILED         0.5s  {cause}",
        "  smoke    not run        0.0s  an earlier step failed",
        "  total                   7.5s",
        "ship FAILED at stage 'watch' (exit 16: rollout)",
        f"  cause: {cause}",
        "  config: examples/node-hello/.pipeline/blubber.yaml:27: variants.production.entrypoint is "
        "[node, server.js] (set in the service's file): the container exited (CrashLoopBackOff: last exit: "
        "ExitCode:1)",
        "  evidence:",
        "    | log app: Error: Cannot find module '/srv/app/server.js'",
        "    | event Warning BackOff pod/node-hello-7d9-abc: Back-off restarting failed container",
        "  hint: the process exits at start; read the log lines above",
        "  next: deployer status examples/node-hello",
    ]


def test_internal_error_summary_shows_the_traceback_tail():
    text = "\n".join(_plain("internal"))
    assert "ship FAILED at stage 'chart' (exit 1: internal)" in text
    assert "    | RuntimeError: boom" in text
    assert "  hint: this is a bug in deployer; please report it with the traceback" in text


def test_long_evidence_keeps_its_start_and_its_end():
    from dataclasses import replace

    run = shipfakes.ship_run("build")
    failed = run.failed
    long = replace(failed, evidence=tuple(f"line {i}" for i in range(50)))
    run = replace(run, results=tuple(long if r is failed else r for r in run.results))
    lines = summary_lines(run)
    at = lines.index("  evidence:")
    shown = lines[at + 1 : at + 31]
    assert shown[0] == "    | line 0" and shown[20] == "    | line 20"
    assert shown[21] == "    | … 21 more lines (all in the --report file)"
    assert shown[22] == "    | line 42" and shown[29] == "    | line 49"
    assert len(lines) == at + 31  # the fake build failure has no hint or next command


def _live(kind=None, *, no_color: bool) -> str:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, no_color=no_color, width=120, highlight=False)
    display = LiveDisplay(console, clock=shipfakes.TickClock(1.0))
    display.header("ship node-hello to staging")
    shipfakes.ship_run(kind, sink=display)
    return stream.getvalue()


def test_live_display_shows_every_stage_and_the_verdict():
    out = _live(no_color=False)
    for stage in shipfakes.STAGES:
        assert stage in out
    assert "ship succeeded in" in out
    assert "\x1b[32m" in out or "\x1b[1;32m" in out  # green on a colour terminal


def test_live_display_failure_and_no_color():
    out = _live("push", no_color=True)
    assert "ship FAILED at stage 'push' (exit 14: push)" in out
    assert "  next: deployer doctor" in out
    assert "not run" in out
    assert "waiting" not in out.split("ship FAILED")[-1]
    # NO_COLOR: cursor movement for the live redraw is allowed, colour (SGR with a colour) is not
    assert "\x1b[31m" not in out and "\x1b[1;31m" not in out and "\x1b[32m" not in out


def test_make_display_picks_plain_in_ci_and_live_on_a_terminal():
    assert isinstance(make_display(ci=True, color=False, stream=io.StringIO()), PlainDisplay)
    assert isinstance(make_display(ci=False, color=True, stream=io.StringIO()), LiveDisplay)


def test_live_table_rows_stay_one_line_with_their_time():
    import re

    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, no_color=True, width=60, highlight=False)
    shipfakes.ship_run("rollout", sink=LiveDisplay(console, clock=shipfakes.TickClock(1.0)))
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", stream.getvalue())
    watch_rows = [line for line in text.splitlines() if line.startswith("FAILED ")]
    assert watch_rows, text
    row = watch_rows[-1]
    assert len(row.rstrip()) <= 60
    assert re.match(r"FAILED\s+watch\s+0\.5s  CrashLoopBackOff: .*…$", row.rstrip())
