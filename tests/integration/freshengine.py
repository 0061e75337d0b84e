"""A fresh Docker engine of its own: what a new CI runner has (no images, no build cache), for the build
cache test and bench/cache.py, without emptying the shared engine other builds rely on.

A second dockerd with its own data root, exec root (so its own managed containerd) and socket, configured
like scripts/stack's (no bridge, no iptables, BuildKit); deployer reaches it through DOCKER_HOST, which
`deployer.tools.docker` passes through on purpose. Registry logins are client side (DOCKER_CONFIG), so it
pulls from and pushes to the same registry with the same credentials.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"


def available() -> bool:
    return os.access(DOCKERD, os.X_OK) and os.access(DOCKER, os.X_OK)


def docker(host: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`docker <args>` against the engine at `host` (the registry logins of deployer's client config)."""
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_CONFIG": "/var/lib/deployer/docker-client"}
    return subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True, check=check)


@contextmanager
def fresh_engine(start_timeout: float = 60) -> Iterator[str]:
    """Start an empty engine; yield its DOCKER_HOST; stop it and delete everything it stored."""
    root = Path(tempfile.mkdtemp(prefix="deployer-engine-", dir="/var/tmp"))
    host = f"unix://{root}/docker.sock"
    config = {
        "data-root": str(root / "data"),
        "exec-root": str(root / "exec"),
        "pidfile": str(root / "docker.pid"),
        "bridge": "none",
        "iptables": False,
        "ip-masq": False,
        "features": {"buildkit": True},
        "oom-score-adjust": 0,
        "log-level": "warn",
    }
    (root / "daemon.json").write_text(json.dumps(config))
    log = (root / "dockerd.log").open("w")
    process = subprocess.Popen(
        [DOCKERD, "--config-file", str(root / "daemon.json"), "-H", host],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + start_timeout
        while docker(host, "version", check=False).returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (root / "dockerd.log").read_text()[-2000:]
                raise RuntimeError(f"a fresh dockerd did not answer on {host}:\n{tail}")
            time.sleep(0.3)
        yield host
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
        shutil.rmtree(root, ignore_errors=True)
