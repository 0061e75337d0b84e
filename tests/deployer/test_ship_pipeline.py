"""What a ship overlaps beyond the production build: the production build tags the image for its push (the
push stage starts no `docker tag`; a ship that stops before its push removes those local tags:
deployer.ship.image).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from deployer import ship
from deployer.chart import ImageRef
from deployer.workflow import StepContext


class Session:
    def login(self, host):
        return None


def _ctx(tmp_path: Path, **state) -> StepContext:
    return StepContext(ship.ShipConfig(service="hello"), ship.ShipState(workdir=tmp_path, **state))


@pytest.mark.parametrize("pushed", [False, True])
def test_the_push_tags_made_by_the_build_are_removed_when_the_ship_stops_before_its_push(
    tmp_path, monkeypatch, pushed
):
    from deployer import build
    from deployer.build import BuildResult
    from deployer.tools import docker

    built = BuildResult("hello", "production", "sha256:" + "i" * 64, 1, "deployer/hello:production", 1,
                        "127.0.0.1:5000/staging/hello", ("t1", "git-abc"), push_tagged=True)  # fmt: skip
    removed: list[list[str]] = []
    monkeypatch.setattr(build, "build", lambda *a, push_tagged, **kw: built if push_tagged else None)
    monkeypatch.setattr(docker, "untag", lambda refs: removed.append(refs))
    deploy = SimpleNamespace(variant="production")
    ctx = _ctx(tmp_path, variants=("production",), deploy=deploy, docker=Session())
    ship.step_build(ctx)  # no test variant: the build stage builds
    assert ctx.state.built is built
    if pushed:  # the push stage removes them (a chore, off the critical path)
        ctx.state.image = ImageRef("127.0.0.1:5000/staging/hello", "sha256:" + "d" * 64, "t1")
    for cleanup in ctx.state.cleanups:  # what run() does at the end of every ship
        cleanup()
    assert removed == ([] if pushed else [list(built.references)])
