"""deployer.retention on the real engine: a service's old images go past the kept number, the build
cache is pruned to its bound."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from deployer import retention
from deployer.tools import docker
from tests.integration.conftest import DOCKER

pytestmark = pytest.mark.docker

_UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}


def _cli(*args: str, stdin: str | None = None, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"} | {"DOCKER_BUILDKIT": "1"}
    done = subprocess.run([DOCKER, *args], input=stdin, cwd=cwd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _build_cache_bytes() -> float:
    for line in _cli("system", "df", "--format", "{{.Type}}\t{{.Size}}").splitlines():
        kind, _, size = line.partition("\t")
        if kind == "Build Cache":
            number, unit = re.fullmatch(r"([\d.]+)\s*([a-zA-Z]+)", size.strip()).groups()
            return float(number) * _UNITS[unit]
    return 0.0


@pytest.mark.usefixtures("stack")
def test_a_services_old_images_go_past_the_kept_number_and_the_current_one_stays(tmp_path: Path) -> None:
    service = f"retention-{uuid.uuid4().hex[:8]}"
    tag = f"deployer/{service}:production"
    built = []
    try:
        for n in range(5):  # each build moves the tag: the one before stays behind, untagged
            (tmp_path / "f").write_text(f"build {n}\n")
            _cli(
                "build",
                "--quiet",
                "--label",
                f"{retention.SERVICE_LABEL}={service}",
                "--tag",
                tag,
                "-f",
                "-",
                ".",
                stdin="FROM scratch\nCOPY f /f\n",
                cwd=tmp_path,
            )
            built.append(_cli("image", "inspect", "--format", "{{.Id}}", tag).strip())
        assert len(set(built)) == 5
        done = retention.tidy(service, keep=2, cache_bytes=10**13)
        left = docker.images(f"{retention.SERVICE_LABEL}={service}")
        assert [i.id for i in left] == [built[4], built[3], built[2]]  # newest first
        assert left[0].tags == (tag,)
        assert set(done.removed) == {built[0], built[1]}
        assert done.kept == 2
        assert retention.tidy(service, keep=2, cache_bytes=10**13).removed == ()
    finally:
        subprocess.run([DOCKER, "image", "rm", "--force", *built], capture_output=True, check=False)


@pytest.mark.usefixtures("stack")
def test_the_build_cache_is_pruned_to_its_bound() -> None:
    before = _build_cache_bytes()
    if before < 20e6:
        pytest.fail(
            f"the engine's build cache holds {before / 1e6:.1f} MB; the stack's base images make more"
        )
    # A bound a little under what there is: the least recently used records go, not the others' recent ones.
    bound = int(before - 10e6)
    reclaimed = docker.prune_build_cache(bound)
    after = _build_cache_bytes()
    assert after <= bound + 1e6, (before, reclaimed, after)  # the size is shown with 4 digits
    assert re.fullmatch(r"[\d.]+[a-zA-Z]+", reclaimed)
