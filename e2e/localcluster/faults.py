"""Stop and start single parts of the running local cluster, and the build stack's registry, for the e2e
fault tests (`e2e/test_faults.py`).

Stops go by pid file, never by process name, as `procs` does for `down`; a start runs exactly the
recorded command again and waits until the part answers. The registry is the build stack's
(`scripts/stack`): its pid file and config live under /var/lib/deployer/registry. Other engineers share
these parts: keep each outage short.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from . import local, procs
from .api import Api, node_ready
from .host import ClusterError

REGISTRY_DIR = Path("/var/lib/deployer/registry")
REGISTRY_PID = REGISTRY_DIR / "registry.pid"
REGISTRY_ADDR = "127.0.0.1:5000"


def _wait(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Poll `check` until true; seconds it took. Raises `ClusterError` after `timeout`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise ClusterError(f"{what} did not come back within {timeout:.0f}s")
        time.sleep(0.2)
    return time.monotonic() - started


def _api_ready() -> bool:
    try:
        return Api().ready()
    except OSError:
        return False


def stop_apiserver() -> None:
    """Stop kube-apiserver (etcd and the rest keep running)."""
    procs.stop("kube-apiserver")


def start_apiserver(timeout: float = 60) -> float:
    """Start kube-apiserver as configured; seconds until /readyz says ok."""
    procs.start(local.by_name()["kube-apiserver"])
    return _wait("kube-apiserver", _api_ready, timeout)


def restart_kubelet(timeout: float = 60) -> float:
    """Stop the kubelet and start it again (the pods keep running under containerd meanwhile); seconds
    until the node is Ready again."""
    procs.stop("kubelet")
    procs.start(local.by_name()["kubelet"])
    return _wait("the kubelet's node", _node_ready, timeout)


def _node_ready() -> bool:
    try:
        nodes = Api().get("/api/v1/nodes") or {}
    except OSError:
        return False
    return bool(nodes.get("items")) and all(node_ready(n) for n in nodes["items"])


def _alive(pid: int) -> bool:
    """The process runs (not a zombie). A registry this process started is its child: reap it."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not ours (scripts/stack started it): init reaps it
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def _registry_pid() -> int | None:
    try:
        pid = int(REGISTRY_PID.read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if comm == "docker-registry" and _alive(pid) else None


def _registry_code() -> int:
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://{REGISTRY_ADDR}/v2/", timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def stop_registry(timeout: float = 15) -> None:
    """Stop the build stack's registry (SIGTERM, then SIGKILL); nothing answers on 127.0.0.1:5000."""
    pid = _registry_pid()
    if pid is None:
        raise ClusterError(f"no registry runs from {REGISTRY_PID}; start it with `scripts/stack up`")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    _wait("the registry's port to close", lambda: _registry_code() == 0, timeout)


def start_registry(timeout: float = 30) -> float:
    """Start the registry again with the config `scripts/stack up` wrote; seconds until it answers 401."""
    if _registry_pid() is not None:
        return 0.0
    config = REGISTRY_DIR / "config.yml"
    with open(REGISTRY_DIR / "registry.log", "ab") as log:
        proc = subprocess.Popen(
            ["/usr/bin/docker-registry", "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    REGISTRY_PID.write_text(f"{proc.pid}\n")
    return _wait("the registry", lambda: _registry_code() == 401, timeout)
