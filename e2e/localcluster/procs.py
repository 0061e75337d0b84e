"""Start, identify and stop the cluster's processes through pid files (never by process name).

A pid file holds the pid, the process start time (so a reused pid is never mistaken for ours) and a
fingerprint of the command line and config files, so `up` restarts a component whose config changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import layout as L
from .host import ClusterError, in_netns, say


@dataclass(frozen=True)
class Component:
    """One long-running process of the cluster."""

    name: str
    argv: list[str]
    in_netns: bool = True
    config_files: tuple[Path, ...] = ()

    @property
    def pidfile(self) -> Path:
        return L.PIDS / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return L.LOGS / f"{self.name}.log"

    def fingerprint(self) -> str:
        h = hashlib.sha256(json.dumps([self.argv, self.in_netns]).encode())
        for f in self.config_files:
            h.update(f.read_bytes() if f.exists() else b"-")
        return h.hexdigest()[:16]


def _start_time(pid: int) -> str | None:
    """Start time (clock ticks since boot) of a live, non-zombie process, else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def read_pidfile(pidfile: Path) -> dict | None:
    try:
        return json.loads(pidfile.read_text())
    except (OSError, ValueError):
        return None


def running_pid(pidfile: Path) -> int | None:
    """The pid recorded in `pidfile` if that very process still runs."""
    rec = read_pidfile(pidfile)
    if rec and _start_time(rec["pid"]) == rec["start"]:
        return rec["pid"]
    return None


def start(comp: Component) -> int:
    """Start `comp` detached (own session, output to its log) unless it already runs as configured."""
    fp = comp.fingerprint()
    pid = running_pid(comp.pidfile)
    if pid is not None:
        if read_pidfile(comp.pidfile).get("fingerprint") == fp:
            return pid
        say(f"{comp.name}: configuration changed, restarting")
        stop(comp.name)
    L.LOGS.mkdir(parents=True, exist_ok=True)
    L.PIDS.mkdir(parents=True, exist_ok=True)
    cmd = [*in_netns(), *comp.argv] if comp.in_netns else comp.argv
    with open(comp.logfile, "ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {' '.join(cmd)}\n".encode())
        log.flush()
        # nsenter execs the component (no fork for a net-only switch), so the pid is the component's.
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    start_time = _start_time(proc.pid)
    if start_time is None:
        raise ClusterError(f"{comp.name} exited at once; see {comp.logfile}")
    comp.pidfile.write_text(json.dumps({"pid": proc.pid, "start": start_time, "fingerprint": fp}))
    say(f"{comp.name} started (pid {proc.pid}, log {comp.logfile})")
    return proc.pid


def ensure_alive(name: str) -> None:
    """Raise with the log's tail when a component we started has died."""
    pidfile = L.PIDS / f"{name}.pid"
    if running_pid(pidfile) is None:
        raise ClusterError(f"{name} is not running; last log lines:\n{tail(L.LOGS / f'{name}.log', 25)}")


# kube-apiserver's graceful shutdown hangs ~15 s after draining requests; its data is throw-away.
STOP_TIMEOUT = {"kube-apiserver": 3.0}


def stop(name: str, timeout: float | None = None, children: bool = False) -> None:
    """SIGTERM the recorded process, SIGKILL it after `timeout` seconds, and drop its pid file.

    With `children`, its child processes go too (socat forks one per open connection).
    """
    pidfile = L.PIDS / f"{name}.pid"
    pid = running_pid(pidfile)
    if pid is not None:
        kids = children_of(pid) if children else []
        kill_pids([pid, *kids], timeout if timeout is not None else STOP_TIMEOUT.get(name, 10.0))
        say(f"{name} stopped (pid {pid})")
    pidfile.unlink(missing_ok=True)


def kill_pids(pids: list[int], timeout: float = 10.0) -> None:
    """Terminate exactly these pids: SIGTERM first, SIGKILL for those still alive after `timeout`."""
    starts = {p: _start_time(p) for p in pids}
    alive = [p for p, s in starts.items() if s is not None]
    for p in alive:
        _signal(p, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if _start_time(p) == starts[p]]
    for p in alive:
        _signal(p, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if _start_time(p) == starts[p]]


def children_of(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
