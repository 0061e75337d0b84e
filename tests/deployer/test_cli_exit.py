"""`deployer` exits with os._exit (fast) yet runs the atexit hooks: the Kubernetes client's removes the
certificate and key files it wrote from the kubeconfig (found leaking by bench/soak.py: 3 files a ship)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1", certificate-authority-data: aGVsbG8=}
users:
- name: u
  user: {client-certificate-data: aGVsbG8=, client-key-data: aGVsbG8=}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
"""

SCRIPT = """
import sys
from deployer import cli
from deployer.tools.kube import load_api

api = load_api(sys.argv[1])
assert api.configuration.key_file, "the client wrote no key file: nothing to test"
sys.argv = ["deployer", "--help"]
cli.entry()
"""


def test_the_kubeconfigs_key_and_certificates_are_not_left_in_tmpdir(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(kubeconfig)],
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: deployer" in done.stdout
    assert sorted(p.name for p in tmp.iterdir()) == []
