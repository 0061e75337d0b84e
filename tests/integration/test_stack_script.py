"""scripts/stack on the real machine: idempotent `up`, `status`, and credentials kept private."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import CREDENTIALS

pytestmark = [pytest.mark.docker, pytest.mark.registry]

STACK = Path(__file__).resolve().parents[2] / "scripts" / "stack"
BASES = ("bookworm", "nodejs", "python3", "nodejs-runtime", "python3-runtime")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(STACK), *args], capture_output=True, text=True, timeout=1800)


def test_up_again_changes_nothing_and_status_reports_every_part(stack):
    up = run("up")
    assert up.returncode == 0, up.stderr
    assert "building" not in up.stdout and "starting" not in up.stdout, up.stdout
    assert up.stdout.splitlines()[-1].startswith("stack: up in ")
    status = run("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "stack: docker: running" in status.stdout
    assert "stack: registry: running on 127.0.0.1:5000" in status.stdout
    for base in BASES:
        assert f"stack: image: 127.0.0.1:5000/base/{base}:12 present" in status.stdout


def test_credentials_are_private_and_never_printed(stack):
    assert stat.S_IMODE(CREDENTIALS.stat().st_mode) == 0o600
    assert stat.S_IMODE((CREDENTIALS.parent / "htpasswd").stat().st_mode) == 0o600
    password = next(
        line.split("=", 1)[1]
        for line in CREDENTIALS.read_text().splitlines()
        if line.startswith("REGISTRY_PASSWORD=")
    )
    assert len(password) >= 24
    for args in (("up",), ("status",)):
        result = run(*args)
        assert password not in result.stdout + result.stderr


def test_usage():
    result = run("sideways")
    assert result.returncode == 2
    assert result.stderr == "usage: scripts/stack up|down|status\n"
