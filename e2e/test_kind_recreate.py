"""`up` after an interrupted `up` recreates the kind cluster (issue 12, "Bad input and faults").

Not in `make test`: it costs a partial and a whole kind `up` (minutes) on a cluster of its own,
DEPLOYER_KIND_CLUSTER=deployer-e2e-repair, removed at the end. Run it with
    DEPLOYER_CLUSTER_PROVIDER=kind .venv/bin/pytest -q e2e/test_kind_recreate.py
The cheap repair (a lost kubeconfig) is in e2e/test_kind_repair.py, which `make test` runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from e2e.conftest import CLUSTER, DOCKER
from e2e.localcluster import kind
from tests.conftest import require

pytestmark = [pytest.mark.provider("kind"), pytest.mark.cluster, pytest.mark.docker, pytest.mark.slow]

NAME = "deployer-e2e-repair"
ENV = {
    **os.environ,
    "DEPLOYER_CLUSTER_PROVIDER": "kind",
    "DEPLOYER_KIND_CLUSTER": NAME,
    "DEPLOYER_KIND_NODES": "1",
}
KUBECONFIG = Path("/var/lib/deployer/kind") / NAME / "kubeconfig"


def _cluster(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLUSTER), *args], env=ENV, capture_output=True, text=True, timeout=1200)


def _nodes(*, running: bool = False) -> list[str]:
    args = ["ps", "-q", "--no-trunc", "--filter", f"label=io.x-k8s.kind.cluster={NAME}"]
    out = subprocess.run([DOCKER, *args, *([] if running else ["-a"])], capture_output=True, text=True)
    return sorted(out.stdout.split())


def test_up_after_an_interrupted_up_recreates_the_cluster() -> None:
    require("cluster (root)", os.geteuid() == 0, "run the e2e tests as root")
    _cluster("down")
    try:
        # Interrupted as Ctrl-C does it (SIGINT to the whole group, kind included) once the node
        # container runs: kind has created it and is provisioning it.
        first = subprocess.Popen(
            [str(CLUSTER), "up"], env=ENV, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        deadline = time.monotonic() + 900
        while not _nodes(running=True) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert first.poll() is None, f"up ended before its node container ran:\n{first.stderr.read()}"
        os.killpg(first.pid, signal.SIGINT)
        _, err = first.communicate(timeout=120)
        assert first.returncode != 0, err
        half = _nodes()
        assert len(half) == 1, f"the interrupted up left {half}"
        status = _cluster("status")
        assert status.returncode == 3, status.stdout
        assert "state:      Ready" not in status.stdout

        up = _cluster("up")
        assert up.returncode == 0, up.stderr
        assert f"kind cluster {NAME} is not healthy (" in up.stderr
        assert "recreating it" in up.stderr
        now = _nodes()
        assert len(now) == 1 and now != half  # a new node, not the half-made one
        assert kind.ready_nodes(KUBECONFIG) == [f"{NAME}-control-plane"]
    finally:
        down = _cluster("down")
    assert down.returncode == 0, down.stderr
    assert _nodes() == []
    assert not KUBECONFIG.exists()
