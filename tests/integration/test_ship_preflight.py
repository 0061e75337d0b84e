"""`deployer ship` to a cluster that does not answer stops before it builds or pushes anything (exit 19),
instead of failing at the deploy stage after the builds and pushes. Real CLI, engine and registry; the
"cluster" is a kubeconfig whose API server is a closed loopback port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import DOCKER

pytestmark = [pytest.mark.docker, pytest.mark.registry]

DEPLOYER = str(Path(sys.executable).parent / "deployer")

KUBECONFIG = """apiVersion: v1
kind: Config
current-context: down
contexts: [{{name: down, context: {{cluster: down, user: u}}}}]
clusters: [{{name: down, cluster: {{server: "https://127.0.0.1:{port}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
"""


def test_a_ship_to_a_cluster_that_does_not_answer_builds_and_pushes_nothing(stack, service_copy, tmp_path):
    svc = service_copy("node-hello")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG.format(port=port))
    report = tmp_path / "report.json"
    done = subprocess.run(
        [DEPLOYER, "ship", str(svc), "--kubeconfig", str(kubeconfig), "--report", str(report)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 19, done.stdout + done.stderr
    stages = {s["name"]: s for s in json.loads(report.read_text())["stages"]}
    assert stages["test"]["status"] == "failed"
    assert stages["test"]["reason"] == (
        f"the Kubernetes API server https://127.0.0.1:{port} does not answer: Connection refused; "
        "stopped before building anything"
    )
    assert all(stages[name]["status"] == "not-run" for name in ("build", "push", "chart", "deploy"))
    images = subprocess.run(
        [DOCKER, "image", "ls", "--quiet", f"deployer/{svc.name}"], capture_output=True, text=True, check=True
    )
    assert images.stdout.strip() == "", "an image was built for a ship that could not deploy"
