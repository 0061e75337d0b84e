"""`deployer ship --timeout` bounds the tools it runs, not only the gaps between stages: a test run that
hangs is stopped when the ship's deadline comes, its container removed, and the ship exits 18 saying
which deadline ran out and during what. Real engine and registry; no cluster is reached (the ship stops
in the test stage)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deployer import build as build_mod
from tests.integration.conftest import DOCKER

pytestmark = [pytest.mark.docker, pytest.mark.registry]

DEPLOYER = str(Path(sys.executable).parent / "deployer")


def test_a_hanging_test_run_is_stopped_by_the_ships_timeout(stack, service_copy, tmp_path):
    svc = service_copy("node-hello")
    blubber = svc / ".pipeline" / "blubber.yaml"
    blubber.write_text(blubber.read_text().replace("entrypoint: [npm, test]", 'entrypoint: [sleep, "600"]'))
    build_mod.build(svc, None, "test")  # built beforehand: the deadline is to stop the run, not the build
    report = tmp_path / "report.json"
    done = subprocess.run(
        [DEPLOYER, "ship", str(svc), "--timeout", "8", "--report", str(report)],
        capture_output=True,
        text=True,
        timeout=120,  # the 600 s sleep running to its end fails the test here
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 18, done.stdout + done.stderr
    data = json.loads(report.read_text())
    test_stage = next(s for s in data["stages"] if s["name"] == "test")
    assert test_stage["status"] == "failed"
    assert test_stage["exit_code"] == 18
    assert test_stage["reason"].startswith(
        "the ship's --timeout of 8s ran out during the test variant's build and run"
    ), test_stage
    assert [s["name"] for s in data["stages"] if s["status"] == "success"] == ["compile"]
    left = subprocess.run(
        [DOCKER, "ps", "--all", "--quiet", "--filter", f"name=deployer-test-{svc.name}-"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert left.stdout.strip() == "", "the test container outlived the ship"
