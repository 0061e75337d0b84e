"""What a ship overlaps beyond the production build: the chart stage hands its push to the deploy stage
(helm upgrade installs the local package while the chart goes to the registry beside it, and a push that
fails rolls the release back: deployer.ship.cluster), and the production build tags the image for its push
(the push stage starts no `docker tag`; a ship that stops before its push removes those local tags:
deployer.ship.image).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from deployer import errors, ship
from deployer.background import Background
from deployer.chart import ImageRef, PublishedChart
from deployer.errors import ExitCode
from deployer.ship import cluster as ship_cluster
from deployer.ship.context import ChartPush
from deployer.tools.helm import Release
from deployer.workflow import StepContext
from tests.deployer.test_ship import BLUBBER

DIGEST = "sha256:" + "c" * 64


class Helm:
    """helm as the chart and deploy stages call it, recorded; `upgraded` is set when helm upgrade runs."""

    def __init__(self, log: list, *, installed: Release | None = None) -> None:
        self.log = log
        self.installed = installed
        self.upgraded = threading.Event()

    def lint(self, chart_dir):
        self.log.append(("lint", Path(chart_dir).name))
        return ""

    def package(self, chart_dir, destination):
        package = Path(destination) / f"{Path(chart_dir).name}.tgz"
        package.write_bytes(b"chart")
        self.log.append(("package", package.name))
        return package

    def push(self, package, remote, **kw):
        self.log.append(("push", Path(package).name, remote))
        return DIGEST

    def status(self, release, namespace):
        return self.installed

    def upgrade_install(self, release, namespace, chart, **kw):
        self.log.append(("upgrade", chart, kw["version"]))
        self.upgraded.set()
        return Release(release, namespace, 2, "deployed")

    def uninstall(self, release, namespace, **kw):
        self.log.append(("uninstall", release))


class Lock:
    lost = None

    def __init__(self, *a, **kw):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


class Session:
    def login(self, host):
        return None


def _ctx(tmp_path: Path, **state) -> StepContext:
    return StepContext(ship.ShipConfig(service="hello"), ship.ShipState(workdir=tmp_path, **state))


def test_the_chart_stage_lints_and_packages_and_leaves_the_push_to_run_beside_the_deploy(tmp_path):
    svc = tmp_path / "hello"
    (svc / ".pipeline").mkdir(parents=True)
    (svc / ".pipeline" / "blubber.yaml").write_text(BLUBBER)
    ctx = _ctx(tmp_path, docker=Session())
    ctx.config = ship.ShipConfig(service=str(svc))
    ship.step_compile(ctx)
    log: list = []
    ctx.state.helm = Helm(log)
    ctx.state.image = ImageRef("127.0.0.1:5000/staging/hello", "sha256:" + "ab" * 32, "t1")
    details = ship.step_chart(ctx)

    pushing = ctx.state.chart_push
    assert pushing is not None and pushing.package.name == "hello.tgz"
    published, started, finished = pushing.push.result()
    assert published.digest == DIGEST and started <= finished
    assert published.reference == "oci://127.0.0.1:5000/staging/charts/hello"
    # nothing is pushed before lint passed and the package exists
    assert log[-1] == ("push", "hello.tgz", "oci://127.0.0.1:5000/staging/charts")
    assert {("lint", "hello"), ("package", "hello.tgz")} == set(log[:2])
    assert details["chart"] == {"name": "hello", "version": pushing.version}
    assert details["summary"].endswith("linted and packaged; pushed beside the deploy stage")
    assert ctx.state.chart is None  # in the registry only once the deploy stage has waited for it


def _deploy_ctx(tmp_path, monkeypatch, helm: Helm, push) -> StepContext:
    from deployer.release import lock

    monkeypatch.setattr(lock, "ReleaseLock", Lock)
    monkeypatch.setattr(ship_cluster, "_deployment_generation", lambda ctx: 1)
    deploy = SimpleNamespace(
        namespace="hello-ns",
        release="hello",
        timeouts=SimpleNamespace(helm=300, rollout=300),
        helm_test=False,
    )
    image = SimpleNamespace(pinned="127.0.0.1:5000/staging/hello@sha256:" + "a" * 64)
    package = tmp_path / "hello-0.0.1.tgz"
    pushing = ChartPush(package, "hello", "0.0.1", Background(push, name="chart-push"))
    return _ctx(tmp_path, deploy=deploy, helm=helm, api=object(), image=image, chart_push=pushing)


def test_helm_installs_the_package_while_the_chart_is_pushed_and_the_deploy_waits_for_the_push(
    tmp_path, monkeypatch
):
    log: list = []
    helm = Helm(log, installed=Release("hello", "hello-ns", 1, "deployed"))
    package = tmp_path / "hello-0.0.1.tgz"

    def push():
        started = time.monotonic()
        # the push ends only once helm upgrade has run: both were under way at once
        assert helm.upgraded.wait(10), "helm upgrade did not run while the chart was pushed"
        published = PublishedChart(
            "hello", "0.0.1", package, "oci://127.0.0.1:5000/staging/charts/hello", DIGEST
        )
        return published, started, time.monotonic()

    ctx = _deploy_ctx(tmp_path, monkeypatch, helm, push)
    details = ship.step_deploy(ctx)

    assert log == [("upgrade", str(package), None)]  # the local package: no --version
    assert ctx.state.chart.digest == DIGEST  # the reproduce line and promote read the registry's chart
    assert details["chart"] == {
        "name": "hello",
        "version": "0.0.1",
        "ref": "oci://127.0.0.1:5000/staging/charts/hello",
        "digest": DIGEST,
    }
    (pushed,) = details["background"]
    assert pushed["name"] == "chart push" and pushed["status"] == "ok"
    assert pushed["overlapped"] == ["deploy"] and pushed["seconds"] >= 0
    assert details["revision"] == 2


def test_a_chart_push_that_fails_removes_the_release_it_installed_and_fails_as_a_push(tmp_path, monkeypatch):
    log: list = []
    helm = Helm(log)  # a first install

    def push():
        raise errors.DeployFailed("helm push failed: connection refused")

    ctx = _deploy_ctx(tmp_path, monkeypatch, helm, push)
    with pytest.raises(errors.PushFailed) as info:
        ship.step_deploy(ctx)

    assert info.value.exit_code == ExitCode.PUSH
    assert log[-1] == ("uninstall", "hello")  # nothing runs that the registry does not hold
    assert info.value.message == (
        "chart hello 0.0.1 was not pushed to the registry (helm push failed: connection refused); "
        "helm installed it from its local package, so first install removed"
    )
    assert info.value.details["rollout"]["rolled_back"] is True
    assert ctx.state.chart is None


def test_a_chart_push_still_running_at_the_ships_deadline_is_not_waited_for(tmp_path, monkeypatch):
    log: list = []
    helm = Helm(log)
    never = threading.Event()

    def push():
        never.wait(30)
        raise AssertionError("not waited for")

    ctx = _deploy_ctx(tmp_path, monkeypatch, helm, push)
    ctx.deadline = time.monotonic() + 0.5
    started = time.monotonic()
    with pytest.raises(errors.PushFailed) as info:
        ship.step_deploy(ctx)
    never.set()
    assert time.monotonic() - started < 5
    assert "it did not finish before the ship's --timeout" in info.value.message
    assert log[-1] == ("uninstall", "hello")


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
