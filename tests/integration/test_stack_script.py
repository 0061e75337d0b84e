"""scripts/stack on the real machine: idempotent `up`, `status`, and credentials kept private."""

from __future__ import annotations

import os
import re
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
    assert result.stderr == "usage: scripts/stack up|down|status|gc [--dry-run]\n"


REG_PID = Path("/var/lib/deployer/registry/registry.pid")


# The real `gc` stops the registry for its duration; other test runs on this machine may be pushing at
# that moment, so the test suite only runs `gc --dry-run`, which never stops it (README: scripts/README.md).
def test_gc_dry_run_reports_and_leaves_the_registry_running(stack):
    pid = REG_PID.read_text().strip()
    result = run("gc", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"stack: gc: registry data \d+\.\d MiB \(/var/lib/deployer/registry/data\)", lines[0])
    assert re.fullmatch(
        r"stack: gc: dry run, nothing removed: \d+ blobs marked, \d+ blobs and \d+ manifests eligible "
        r"for deletion",
        lines[1],
    ), result.stdout
    assert "stopping" not in result.stdout
    assert REG_PID.read_text().strip() == pid  # the same registry process, never restarted
    # A registry started by a real `gc` must not have inherited gc's lock (it would hold it for good and
    # refuse every later gc, as this dry run would show).
    held = [Path(f"/proc/{pid}/fd/{fd}").resolve() for fd in os.listdir(f"/proc/{pid}/fd")]
    assert not [f for f in held if f.name == "gc.lock"], held
    assert run("status").returncode == 0


def test_gc_refuses_an_unknown_argument(stack):
    result = run("gc", "--now")
    assert result.returncode == 1
    assert result.stderr == "stack: error: gc: unknown argument --now (usage: scripts/stack gc [--dry-run])\n"
