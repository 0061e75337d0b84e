"""The ship workflow's own logic: compile/dirty-tree rules, watch → rollback, smoke mapping, run().

Real blubber and real git (cheap local processes); helm, the watcher and the cluster are faked at the
module seams the steps call.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from deployer import errors, retention, ship
from deployer.chart import ImageRef
from deployer.errors import ExitCode
from deployer.reporting.report import report_schema
from deployer.rollout.diagnosis import RolloutVerdict
from deployer.ship import cluster as ship_cluster
from deployer.ship import context as ship_context
from deployer.ship import image as ship_image
from deployer.tools import git
from deployer.workflow import Status, StepContext, StepResult, WorkflowRun
from tests.deployer import shipfakes

BLUBBER = """\
version: v4
base: 127.0.0.1:5000/base/python3:12
lives:
  in: /srv/app
runs:
  uid: 900
  gid: 900
variants:
  test:
    entrypoint: [python3, -c, "print('ok')"]
  production:
    entrypoint: [python3, -m, http.server, "8080"]
"""


def _service(root: Path, *, git: bool) -> Path:
    svc = root / "hello"
    (svc / ".pipeline").mkdir(parents=True)
    (svc / ".pipeline" / "blubber.yaml").write_text(BLUBBER)
    (svc / "app.py").write_text("print('hi')\n")
    if git:

        def g(*args):
            subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)

        g("init", "-q")
        g("-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
        g("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "init")
    return svc


class _Session:
    """deployer.build.Session's start, recorded (the compile step starts the docker session early)."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, host: str) -> None:
        self.started.append(host)


def _ctx(config: ship.ShipConfig, tmp_path: Path, **state) -> tuple[StepContext, list[str]]:
    state.setdefault("docker", _Session())
    ctx = StepContext(config, ship.ShipState(workdir=tmp_path, **state))
    seen: list[str] = []
    ctx._enter("step", lambda event: seen.append(event.message))
    return ctx, seen


def _run_step(name: str, ctx: StepContext):
    """Step `name` as the ship runs it: with the background work build_steps declares beside it."""
    return next(step for step in ship.build_steps() if step.name == name).fn(ctx)


def test_compile_loads_both_configs_and_records_git(tmp_path):
    svc = _service(tmp_path, git=True)
    ctx, _ = _ctx(ship.ShipConfig(service=str(svc), strict_ci=True), tmp_path)
    details = _run_step("compile", ctx)
    state = ctx.state
    assert len(state.git_sha) == 40 and state.git_dirty is False
    assert state.variants == ("test", "production")
    assert state.deploy.release == "hello"
    assert details["summary"] == f"variants test, production; release hello in {state.deploy.namespace}"
    assert state.docker.started == ["127.0.0.1:5000"]  # engine check and login overlap the compile


def test_compile_in_ci_refuses_a_dirty_service_dir(tmp_path):
    svc = _service(tmp_path, git=True)
    (svc / "app.py").write_text("print('changed')\n")
    ctx, _ = _ctx(ship.ShipConfig(service=str(svc), strict_ci=True), tmp_path)
    with pytest.raises(errors.PolicyViolation) as info:
        ship.step_compile(ctx)
    # paths as git prints them: relative to the repository root
    assert info.value.message == "refusing to ship uncommitted changes in CI mode: hello/app.py"
    assert info.value.exit_code == ExitCode.POLICY


def test_compile_outside_ci_allows_a_dirty_tree_and_says_so(tmp_path):
    svc = _service(tmp_path, git=True)
    (svc / "new.txt").write_text("x")
    ctx, seen = _ctx(ship.ShipConfig(service=str(svc), strict_ci=False), tmp_path)
    ship.step_compile(ctx)
    assert ctx.state.git_dirty is True
    assert seen == [f"1 uncommitted paths; the image will not match {ctx.state.git_sha[:12]}"]


def test_compile_outside_git_has_no_sha(tmp_path):
    svc = _service(tmp_path, git=False)
    ctx, seen = _ctx(ship.ShipConfig(service=str(svc), strict_ci=True), tmp_path)
    ship.step_compile(ctx)
    assert ctx.state.git_sha is None and ctx.state.git_dirty is None
    assert seen == [f"{svc.resolve()} is not in a git work tree; the report will have no git sha"]


def test_compile_overrides_namespace_and_release(tmp_path):
    svc = _service(tmp_path, git=False)
    ctx, _ = _ctx(ship.ShipConfig(service=str(svc), namespace="ns1", release="rel1"), tmp_path)
    ship.step_compile(ctx)
    assert (ctx.state.deploy.namespace, ctx.state.deploy.release) == ("ns1", "rel1")


def test_compile_missing_service_is_a_config_error(tmp_path):
    ctx, _ = _ctx(ship.ShipConfig(service=str(tmp_path / "nope")), tmp_path)
    with pytest.raises(errors.ConfigError):
        ship.step_compile(ctx)


# --- watch and rollback -------------------------------------------------------------------------------


class FakeHelm:
    def __init__(self):
        self.calls = []

    def rollback(self, release, namespace, revision=None, **kw):
        self.calls.append(("rollback", release, namespace, revision))

    def uninstall(self, release, namespace, **kw):
        self.calls.append(("uninstall", release, namespace))


def _verdict(healthy, **kw):
    base = dict(
        healthy=healthy,
        reason="Available" if healthy else "CrashLoopBackOff",
        hint="" if healthy else "the process exits at start",
        message="" if healthy else "back-off 10s restarting failed container",
        object=None if healthy else "pod/hello-abc",
        pod=None if healthy else "hello-abc",
        container=None if healthy else "app",
        log_tail=[] if healthy else ["Traceback: boom"],
        warning_events=[] if healthy else ["Warning BackOff pod/hello-abc: Back-off restarting"],
        duration=3.0,
        replicaset="hello-7d9",
        revision=2,
    )
    base.update(kw)
    return RolloutVerdict(**base)


@pytest.fixture
def watch_env(tmp_path, monkeypatch):
    from deployer.rollout import watcher

    verdicts = []
    calls = []
    passed = []

    def fake_watch(api, namespace, deployment, *, timeout, since=None, on_event=None, **kw):
        calls.append((namespace, deployment, timeout))
        passed.append(kw)
        return verdicts.pop(0)

    monkeypatch.setattr(watcher, "watch_rollout", fake_watch)
    # what the Deployment's generation is once a rollback applied (read from the API server in e2e)
    monkeypatch.setattr(ship_cluster, "_deployment_generation", lambda ctx: 4)
    deploy = SimpleNamespace(
        namespace="hello-ns", release="hello", timeouts=SimpleNamespace(rollout=300, helm=300)
    )
    helm = FakeHelm()
    image = ImageRef("127.0.0.1:5000/staging/hello", "sha256:" + "ab" * 32, "t1")
    ctx, seen = _ctx(
        ship.ShipConfig(service="hello"),
        tmp_path,
        deploy=deploy,
        helm=helm,
        api=object(),
        image=image,
        generation=3,
    )
    return SimpleNamespace(ctx=ctx, seen=seen, helm=helm, verdicts=verdicts, calls=calls, passed=passed)


def test_watch_healthy(watch_env):
    watch_env.verdicts.append(_verdict(True))
    details = ship.step_watch(watch_env.ctx)
    healthy = {"verdict": "healthy", "reason": None, "rolled_back": False, "rollback": None}
    assert details["rollout"] == healthy
    assert watch_env.helm.calls == []
    assert watch_env.calls == [("hello-ns", "hello", 300.0)]
    # The watch judges only the spec helm applied, running the image this ship pushed.
    assert watch_env.passed[0]["generation"] == 3
    assert watch_env.passed[0]["images"] == {"app": f"127.0.0.1:5000/staging/hello@sha256:{'ab' * 32}"}


def test_failed_rollout_rolls_back_to_the_previous_revision_and_verifies_it(watch_env):
    watch_env.ctx.state.previous_revision = 4
    watch_env.verdicts += [_verdict(False), _verdict(True)]
    with pytest.raises(errors.RolloutFailed) as info:
        ship.step_watch(watch_env.ctx)
    err = info.value
    assert watch_env.helm.calls == [("rollback", "hello", "hello-ns", 4)]
    # the old version is judged from the spec the rollback applied, as `deployer rollback` does
    assert watch_env.passed[1]["generation"] == 4
    assert err.message == (
        "pod/hello-abc container app: CrashLoopBackOff: back-off 10s restarting failed container; "
        "rolled back to revision 4, which serves again"
    )
    assert err.hint == "the process exits at start"
    assert err.evidence == [
        "log hello-abc/app: Traceback: boom",
        "event Warning BackOff pod/hello-abc: Back-off restarting",
    ]
    assert err.details["rollout"]["rollback"] == {
        "action": "rollback",
        "to_revision": 4,
        "verified": True,
        "detail": "rolled back to revision 4, which serves again",
    }
    assert err.details["rollout"]["rolled_back"] is True
    assert err.next_command == "deployer status hello"


def test_failed_first_install_is_uninstalled(watch_env):
    watch_env.verdicts.append(_verdict(False, reason="ImagePullBackOff", message=""))
    with pytest.raises(errors.RolloutFailed) as info:
        ship.step_watch(watch_env.ctx)
    assert watch_env.helm.calls == [("uninstall", "hello", "hello-ns")]
    assert info.value.details["rollout"]["rollback"]["action"] == "uninstall"
    assert info.value.message.endswith("ImagePullBackOff; first install removed")


def test_rollout_cut_short_by_the_overall_deadline_is_a_timeout(watch_env):
    import time

    watch_env.ctx.deadline = time.monotonic() + 30  # less than the 300 s rollout timeout
    watch_env.ctx.state.previous_revision = 1
    watch_env.verdicts += [_verdict(False, reason="Timeout", message="waited 30s"), _verdict(True)]
    with pytest.raises(errors.Timeout) as info:
        ship.step_watch(watch_env.ctx)
    assert info.value.exit_code == ExitCode.TIMEOUT
    assert info.value.details["rollout"]["verdict"] == "timeout"
    assert watch_env.calls[0][2] <= 30


@pytest.mark.parametrize("healthy", [True, False])
def test_a_ship_that_lost_its_lock_during_the_watch_stops_and_rolls_nothing_back(watch_env, healthy):
    """Another run took the release over while this one stalled: it is that run's release now."""
    from deployer.release.lock import ShipInProgress

    lost = ShipInProgress("lost the lock of release 'hello' to bob@ci pid=2")
    watch_env.ctx.state.lock = SimpleNamespace(lost=lost)
    watch_env.ctx.state.previous_revision = 4
    watch_env.verdicts.append(_verdict(healthy))
    with pytest.raises(errors.DeployFailed) as info:
        ship.step_watch(watch_env.ctx)
    assert info.value.exit_code == ExitCode.DEPLOY
    assert info.value.message == (
        "lost the lock of release 'hello' to bob@ci pid=2; this ship stopped after the rollout watch "
        "and changed nothing more (no rollback)"
    )
    assert watch_env.helm.calls == []  # no rollback of the other run's release


def test_the_watch_is_aborted_as_soon_as_the_lock_is_lost(watch_env):
    from deployer.release.lock import ShipInProgress

    lock = SimpleNamespace(lost=None)
    watch_env.ctx.state.lock = lock
    watch_env.verdicts.append(_verdict(True))
    ship.step_watch(watch_env.ctx)
    abort = watch_env.passed[0]["abort"]
    assert abort() is None  # still ours
    lock.lost = ShipInProgress("lost the lock of release 'hello' to bob")
    stop = abort()
    assert isinstance(stop, errors.DeployFailed) and stop.exit_code == ExitCode.DEPLOY
    assert stop.message == (
        "lost the lock of release 'hello' to bob; this ship stopped during the rollout watch "
        "and changed nothing more (no rollback)"
    )


def test_smoke_checks_do_not_run_against_a_release_another_run_took_over(tmp_path):
    from deployer.release.lock import ShipInProgress

    deploy = SimpleNamespace(helm_test=True, smoke_checks=[], namespace="hello-ns", release="hello")
    lock = SimpleNamespace(lost=ShipInProgress("lost the lock of release 'hello' to bob"))
    ctx, _ = _ctx(ship.ShipConfig(service="hello"), tmp_path, deploy=deploy, lock=lock, helm=None, api=None)
    with pytest.raises(errors.DeployFailed, match="stopped before the smoke checks"):
        ship.step_smoke(ctx)


# --- smoke --------------------------------------------------------------------------------------------


def test_smoke_skipped_on_request(tmp_path):
    ctx, _ = _ctx(ship.ShipConfig(service="hello", smoke=False), tmp_path)
    result = ship.step_smoke(ctx)
    assert isinstance(result, StepResult) and result.status is Status.SKIPPED


def test_smoke_failure_details_follow_the_report_shape(tmp_path, monkeypatch):
    from deployer import smoke
    from deployer.smoke import CheckResult, SmokeReport

    results = [
        CheckResult("helm-test", "helm-test", True, 1.0, "helm test passed"),
        CheckResult("root", "http", False, 0.1, "GET /: status 500, expected 200"),
    ]

    def fake_run_checks(deploy, *, helm_test, http_get, test_pods):
        assert callable(test_pods)  # the failed test pod is explained from its status
        raise SmokeReport(results, "hello", "hello-ns")

    monkeypatch.setattr(smoke, "run_checks", fake_run_checks)
    deploy = SimpleNamespace(
        helm_test=True,
        smoke_checks=(1,),
        release="hello",
        namespace="hello-ns",
        port=8080,
        smoke_on_failure="keep",
    )
    ctx, _ = _ctx(ship.ShipConfig(service="hello"), tmp_path, deploy=deploy, helm=object(), api=object())
    with pytest.raises(SmokeReport) as info:
        ship.step_smoke(ctx)
    # smoke.onFailure: keep: nothing is rolled back, and the report says so
    assert info.value.details["rollout"] == {
        "verdict": "healthy",
        "reason": None,
        "rolled_back": False,
        "rollback": {
            "action": "none",
            "to_revision": None,
            "verified": None,
            "detail": "the failing revision was kept (smoke.onFailure: keep)",
        },
    }
    assert info.value.message.endswith("; the failing revision was kept (smoke.onFailure: keep)")
    assert info.value.details["smoke"] == [
        {
            "name": "helm-test",
            "kind": "helm-test",
            "status": "passed",
            "detail": "helm test passed",
            "duration_seconds": 1.0,
        },
        {
            "name": "root",
            "kind": "http",
            "status": "failed",
            "detail": "GET /: status 500, expected 200",
            "duration_seconds": 0.1,
        },
    ]


class _EarlyPods:
    """deployer.tools.testpod.EarlyTestPods at its seam: told to go by the smoke step."""

    names = ("hello-test-http",)

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.log: list[str] = []
        self.timings = ["test pod hello-test-http: running 0.00s after the smoke step asked; …"]

    def run(self, timeout: float) -> str:
        from deployer.tools.kube import KubeForbidden

        self.log.append("go")
        if self.refuse:
            raise KubeForbidden("cannot attach to the test pod hello-test-http in hello-ns: forbidden")
        return "POD LOGS: hello-test-http\nattempt 1 (0s): GET http://hello:80/ -> HTTP/1.1 200 OK\n"

    def discard(self) -> None:
        self.log.append("discard")


@pytest.mark.parametrize("case", ["early", "left to helm test", "attach refused", "not created"])
def test_the_test_pods_start_at_deploy_and_go_in_the_smoke_step(tmp_path, monkeypatch, case):
    """Created beside the watch from the release's hooks, told to go by the smoke step; `helm test` when
    the chart's hooks cannot wait for go, attaching is refused, or they could not be created."""
    from deployer.release import passed
    from deployer.tools import testpod

    early = _EarlyPods(refuse=case == "attach refused")
    asked = []

    def prepare(api, namespace, hooks, *, wait_seconds, cannot_start):
        from deployer.smoke import stuck_before_start

        assert cannot_start is stuck_before_start  # a pod that cannot start fails the smoke stage at once
        asked.append((namespace, hooks, wait_seconds))
        if case == "not created":
            raise errors.DeployFailed("cannot create the test pod hello-test-http in hello-ns: quota (403)")
        return "the chart has no test hook" if case == "left to helm test" else early

    class Helm:
        tested: list[str] = []

        def get_hooks(self, release, namespace):
            return f"hooks of {release} in {namespace}"

        def test(self, release, namespace, *, timeout):
            self.tested.append(release)
            return "POD LOGS: hello-test-http\n"

    monkeypatch.setattr(testpod, "prepare", prepare)
    monkeypatch.setattr(passed, "record", lambda *args, **kwargs: {"recorded": True})
    deploy = SimpleNamespace(
        helm_test=True, smoke_checks=(), release="hello", namespace="hello-ns", port=8080,
        timeouts=SimpleNamespace(rollout=300, smoke=30),
    )  # fmt: skip
    image = SimpleNamespace(digest="sha256:" + "a" * 64)
    helm = Helm()
    state = dict(deploy=deploy, helm=helm, api=object(), image=image)
    ctx, seen = _ctx(ship.ShipConfig(service="hello"), tmp_path, **state)
    ship_cluster.start_test_pods(ctx)  # as step_deploy does after helm upgrade
    details = ship.step_smoke(ctx)

    assert details["smoke"][0]["status"] == "passed"
    assert asked == [("hello-ns", "hooks of hello in hello-ns", 330)]  # no --timeout: rollout + smoke
    if case == "early":
        assert (early.log, helm.tested) == (["go"], [])
        assert "go: test pod hello-test-http (created during the watch)" in seen
        assert seen[-1] == early.timings[0]  # where its time went
    else:
        assert helm.tested == ["hello"]
        assert seen[-1] == "helm test --logs"
    if case == "left to helm test":
        assert "the chart has no test hook: helm test instead" in seen
    if case == "attach refused":
        assert (
            "cannot attach to the test pod hello-test-http in hello-ns: forbidden; helm test instead" in seen
        )
    if case == "not created":
        assert seen[0] == (
            "the test pods were not created early (cannot create the test pod hello-test-http in hello-ns: "
            "quota (403)); helm test instead"
        )
    for cleanup in reversed(ctx.state.cleanups):  # as run() does when the ship ends
        cleanup()
    assert early.log.count("discard") == (1 if case in ("early", "attach refused") else 0)


def test_without_smoke_or_helm_test_no_test_pod_is_started(tmp_path):
    for config, deploy in [
        (ship.ShipConfig(service="hello"), SimpleNamespace(helm_test=False)),
        (ship.ShipConfig(service="hello", smoke=False), SimpleNamespace(helm_test=True)),
        (ship.ShipConfig(service="hello", early_test_pods=False), SimpleNamespace(helm_test=True)),
    ]:
        ctx, _ = _ctx(config, tmp_path, deploy=deploy, helm=None, api=None)
        ship_cluster.start_test_pods(ctx)
        assert (ctx.state.test_pods, ctx.state.cleanups) == (None, [])


def _failing_smoke(monkeypatch: pytest.MonkeyPatch) -> None:
    from deployer import smoke
    from deployer.smoke import CheckResult, SmokeReport

    failed = [CheckResult("root", "http", False, 0.1, "GET /: status 500, expected 200")]

    def fake_run_checks(deploy, *, helm_test, http_get, test_pods):
        raise SmokeReport(failed, "hello", "hello-ns")

    monkeypatch.setattr(smoke, "run_checks", fake_run_checks)


def test_failed_smoke_checks_roll_back_to_the_previous_revision_and_verify_it(watch_env, monkeypatch):
    from deployer.smoke import SmokeReport

    _failing_smoke(monkeypatch)
    deploy = watch_env.ctx.state.deploy
    deploy.helm_test, deploy.smoke_checks, deploy.port, deploy.smoke_on_failure = (
        False,
        (1,),
        8080,
        "rollback",
    )
    watch_env.ctx.state.previous_revision = 4
    watch_env.verdicts.append(_verdict(True))  # the old version, watched after the rollback
    with pytest.raises(SmokeReport) as info:
        ship.step_smoke(watch_env.ctx)
    assert info.value.exit_code == ExitCode.SMOKE
    assert watch_env.helm.calls == [("rollback", "hello", "hello-ns", 4)]
    assert watch_env.passed[0]["generation"] == 4
    assert info.value.message.endswith("; rolled back to revision 4, which serves again")
    rollout = info.value.details["rollout"]
    assert rollout["rolled_back"] is True and rollout["verdict"] == "healthy"
    assert rollout["rollback"] == {
        "action": "rollback",
        "to_revision": 4,
        "verified": True,
        "detail": "rolled back to revision 4, which serves again",
    }
    assert any("smoke checks failed; rolling back" in line for line in watch_env.seen)


def test_failed_smoke_checks_of_a_first_install_remove_it(watch_env, monkeypatch):
    from deployer.smoke import SmokeReport

    _failing_smoke(monkeypatch)
    deploy = watch_env.ctx.state.deploy
    deploy.helm_test, deploy.smoke_checks, deploy.port, deploy.smoke_on_failure = (
        False,
        (1,),
        8080,
        "rollback",
    )
    with pytest.raises(SmokeReport) as info:
        ship.step_smoke(watch_env.ctx)
    assert watch_env.helm.calls == [("uninstall", "hello", "hello-ns")]
    assert info.value.details["rollout"]["rollback"]["action"] == "uninstall"
    assert info.value.message.endswith("; first install removed")


# --- run() --------------------------------------------------------------------------------------------


class ListDisplay:
    def __init__(self):
        self.events = []
        self.headers = []

    def __call__(self, event):
        self.events.append(event)

    def header(self, text):
        self.headers.append(text)


def test_run_writes_reports_and_releases_what_steps_hold(tmp_path):
    released = []

    def hold(ctx):
        ctx.state.cleanups.append(lambda: released.append("lock"))

    steps = shipfakes.steps("rollout")
    steps[5] = type(steps[5])("deploy", hold)  # the deploy stage takes the lock
    display = ListDisplay()
    config = ship.ShipConfig(
        service="examples/node-hello", report_path=tmp_path / "r.json", junit_path=tmp_path / "j.xml"
    )
    code = ship.run(config, steps=steps, display=display)
    assert code == ExitCode.ROLLOUT
    assert released == ["lock"]
    assert display.headers == ["ship examples/node-hello to staging"]
    report = json.loads((tmp_path / "r.json").read_text())
    import jsonschema

    jsonschema.Draft202012Validator(report_schema()).validate(report)
    assert report["service"] == {"name": "node-hello", "dir": "examples/node-hello"}
    assert report["reproduce"] == ["deployer ship examples/node-hello --env staging"]
    finished = display.events[-1]
    assert finished.run.failed.next_command == "deployer status examples/node-hello"
    assert (tmp_path / "j.xml").read_text().startswith("<?xml")


def test_background_work_overlaps_later_stages_and_is_recorded_where_it_was_queued(tmp_path):
    """Chores queued by the push stage run beside the later stages (held until the push released them),
    a chore that fails is a warning in the output and the report, not a failed ship, and the report says
    how long each ran and beside which stages."""
    import threading

    import jsonschema

    from deployer import ship as ship_mod
    from deployer.ship import chores as ship_chores

    chart_running, cache_pushed = threading.Event(), threading.Event()
    steps = shipfakes.steps()

    def push(ctx):
        def cache(say):
            assert chart_running.wait(10), "the chore did not overlap the chart stage"
            say("build cache: pushed 127.0.0.1:5000/staging/node-hello/cache:production")
            cache_pushed.set()

        def tidy(say):
            raise ship_chores._Warning("local clean-up skipped: docker image rm: exit 1")

        ctx.state.chores.add("build cache of production", "push", cache)
        assert not cache_pushed.wait(0.2), "a held chore started before the push released it"
        ctx.state.chores.add("engine clean-up", "push", tidy)
        ctx.state.chores.release()
        return {}

    def chart(ctx):
        chart_running.set()
        assert cache_pushed.wait(10)
        return {}

    steps[3] = type(steps[3])("push", push)
    steps[4] = type(steps[4])("chart", chart)
    display = ListDisplay()
    config = ship_mod.ShipConfig(service="examples/node-hello", report_path=tmp_path / "r.json")
    assert ship_mod.run(config, steps=steps, display=display) == ExitCode.OK
    report = json.loads((tmp_path / "r.json").read_text())
    jsonschema.Draft202012Validator(report_schema()).validate(report)
    push_stage = next(s for s in report["stages"] if s["name"] == "push")
    cache, tidy = push_stage["details"]["background"]
    assert (cache["name"], cache["status"]) == ("build cache of production", "ok")
    assert "chart" in cache["overlapped"] and "push" not in cache["overlapped"]
    assert cache["seconds"] >= 0
    assert (tidy["name"], tidy["status"]) == ("engine clean-up", "warning")
    assert tidy["lines"] == ["failed: local clean-up skipped: docker image rm: exit 1"]
    said = [e.message for e in display.events if getattr(e, "name", None) == "push" and hasattr(e, "message")]
    assert "background: build cache: pushed 127.0.0.1:5000/staging/node-hello/cache:production" in said
    assert any(line.startswith("background: engine clean-up did not finish its work") for line in said)
    finished = display.events[-1]
    assert finished.run.duration >= sum(r.duration for r in finished.run.results)


def test_a_ship_that_stops_before_its_push_drops_the_held_cache_push(tmp_path):
    """With the registry gone (a failed push) the test cache push would only wait for it again."""
    from deployer import ship as ship_mod

    ran: list[str] = []
    steps = shipfakes.steps("push")

    def test(ctx):
        ctx.state.chores.add("build cache of test", "test", lambda say: ran.append("cache"))
        return {}

    steps[1] = type(steps[1])("test", test)
    config = ship_mod.ShipConfig(service="examples/node-hello", report_path=tmp_path / "r.json")
    assert ship_mod.run(config, steps=steps, display=ListDisplay()) == ExitCode.PUSH
    assert ran == []
    (entry,) = next(
        s for s in json.loads((tmp_path / "r.json").read_text())["stages"] if s["name"] == "test"
    )["details"]["background"]
    assert (entry["status"], entry["seconds"]) == ("not-run", None)
    assert entry["lines"] == ["not run: the ship stopped before its image was pushed"]


def test_a_failing_test_queues_no_cache_push(tmp_path, monkeypatch):
    from deployer import build

    def fake_test(service, config, variant, **kw):
        raise errors.TestVariantFailed("the test variant exited with 1", evidence=("not ok 1",))

    monkeypatch.setattr(build, "test", fake_test)
    state = dict(variants=("test", "production"), deploy=SimpleNamespace(variant="production"), docker=None)
    ctx, _ = _ctx(ship.ShipConfig(service="hello"), tmp_path, **state)
    with pytest.raises(errors.TestVariantFailed):
        ship.step_test(ctx)
    assert ctx.state.chores.finish(None) == []


def test_next_commands_do_not_override_the_steps_own(tmp_path):
    run = shipfakes.ship_run("push")  # the push failure names `deployer doctor` itself
    fixed = ship._with_next_commands(run, ship.ShipConfig(service="svc"), ship.ShipState(workdir=tmp_path))
    assert fixed.failed.next_command == "deployer doctor"
    run = shipfakes.ship_run("build")
    fixed = ship._with_next_commands(run, ship.ShipConfig(service="svc"), ship.ShipState(workdir=tmp_path))
    assert fixed.failed.next_command == "deployer build svc"
    ok = shipfakes.ship_run()
    state = ship.ShipState(workdir=tmp_path)
    assert ship._with_next_commands(ok, ship.ShipConfig(service="svc"), state) is ok
    assert isinstance(ok, WorkflowRun)


# --- the failing tests' lines as evidence -------------------------------------------------------------

TAP = """\
TAP version 13
# Subtest: GET / says hello
not ok 1 - GET / says hello
  ---
  expected: 200
  actual: 'broken'
  ...
# Subtest: GET /healthz
ok 2 - GET /healthz
1..2
# pass 1
# fail 1""".splitlines()

PYTEST = """\
============================= test session starts ==============================
collected 2 items

tests/test_app.py .F                                                     [100%]

=================================== FAILURES ===================================
___________________________________ test_root __________________________________

    def test_root():
>       assert app.greeting() == "hello"
E       AssertionError: assert 'hi' == 'hello'
E         - hello
E         + hi

tests/test_app.py:5: AssertionError
=========================== short test summary info ============================
FAILED tests/test_app.py::test_root - AssertionError: assert 'hi' == 'hello'
========================= 1 failed, 1 passed in 0.05s ==========================""".splitlines()


def test_failure_excerpt_of_tap_output_starts_at_the_failing_test():
    excerpt = ship_image._failure_excerpt(TAP, TAP[-4:])
    assert excerpt[0] == "not ok 1 - GET / says hello"
    assert "  actual: 'broken'" in excerpt
    assert excerpt[-1] == "# fail 1"


def test_failure_excerpt_of_pytest_output_has_the_assertion():
    excerpt = ship_image._failure_excerpt(PYTEST, PYTEST[-3:])
    assert excerpt[0] == "E       AssertionError: assert 'hi' == 'hello'"
    assert "FAILED tests/test_app.py::test_root - AssertionError: assert 'hi' == 'hello'" in excerpt
    assert excerpt[-1].startswith("========================= 1 failed, 1 passed")


def test_failure_excerpt_without_a_recognisable_failure_is_the_tail():
    lines = ["building", "running", "exit 1"]
    assert ship_image._failure_excerpt(lines, lines[-2:]) == ["running", "exit 1"]


# --- deploy: lock, recovery, previous revision ----------------------------------------------------------


class DeployHelm:
    """helm as the deploy step sees it; every call (and the lock's) goes into one shared `log`."""

    def __init__(self, log, status=None, recovery="none"):
        from deployer.tools.helm import Recovery, Release

        self.log = log
        self._status = status
        stuck = recovery != "none"
        self.recovery = (
            Recovery(recovery, "pending-upgrade", 5, 4) if stuck else Recovery("none", release=status)
        )
        # after a repair, status says what the repair left: revision 4 deployed
        self._repaired = Release("hello", "hello-ns", 4, "deployed") if stuck else status

    def recover_pending(self, release, namespace):
        self.log.append("recover")
        return self.recovery

    def status(self, release, namespace):
        self.log.append("status")
        repaired = "recover" in self.log
        return self._repaired if repaired else self._status

    def upgrade_install(self, release, namespace, chart, **kw):
        self.log.append(("upgrade", release, namespace, chart, kw["version"]))
        from deployer.tools.helm import Release

        return Release(release, namespace, 6, "deployed")


class FakeLock:
    log: list = []
    lost = None  # still ours

    def __init__(self, api, namespace, release, **kw):
        FakeLock.log.append(("lock", namespace, release))

    def __enter__(self):
        FakeLock.log.append("lock taken")
        return self

    def __exit__(self, *exc):
        FakeLock.log.append("lock released")


def _deploy_inputs() -> tuple[SimpleNamespace, SimpleNamespace, SimpleNamespace]:
    """What the deploy step reads of the deploy config, the chart and the image; helm_test=False: it
    starts no test pods here (deployer.tools.testpod)."""
    deploy = SimpleNamespace(
        namespace="hello-ns", release="hello", timeouts=SimpleNamespace(helm=300), helm_test=False
    )
    chart = SimpleNamespace(reference="oci://127.0.0.1:5000/staging/charts/hello", version="0.0.1")
    image = SimpleNamespace(pinned="127.0.0.1:5000/staging/hello@sha256:" + "a" * 64)
    return deploy, chart, image


@pytest.mark.parametrize(
    ("status", "recovery", "previous"),
    [
        (None, "none", None),  # first install
        ("deployed", "none", 3),
        ("pending-upgrade", "rolled-back", 4),  # an interrupted run's release, repaired to revision 4
    ],
)
def test_deploy_takes_the_lock_recovers_and_remembers_the_previous_revision(
    status, recovery, previous, tmp_path, monkeypatch
):
    from deployer.release import lock
    from deployer.tools.helm import Release

    log: list = []
    monkeypatch.setattr(lock, "ReleaseLock", FakeLock)
    monkeypatch.setattr(FakeLock, "log", log)
    monkeypatch.setattr(ship_cluster, "_deployment_generation", lambda ctx: 5)
    current = Release("hello", "hello-ns", 3, status) if status else None
    helm = DeployHelm(log, current, recovery)
    deploy, chart, image = _deploy_inputs()
    state = dict(deploy=deploy, helm=helm, api=object(), chart=chart, image=image)
    ctx, seen = _ctx(ship.ShipConfig(service="hello"), tmp_path, **state)
    details = ship.step_deploy(ctx)

    # the lock first; the release is read (and repaired, and read again) only while holding it
    reads = ["status", "recover", "status"] if recovery != "none" else ["status"]
    upgrade = ("upgrade", "hello", "hello-ns", chart.reference, "0.0.1")
    assert log == [("lock", "hello-ns", "hello"), "lock taken", *reads, upgrade]
    ctx.state.cleanups[-1]()  # held after the step, until run() ends
    assert log[-1] == "lock released"
    assert ctx.state.previous_revision == previous
    assert details["revision"] == 6 and ctx.state.revision == 6
    assert ctx.state.generation == 5  # read after helm applied, for the watch
    if recovery != "none":
        assert details["recovered"].startswith("release was stuck in pending-upgrade")
        assert seen[0] == details["recovered"]


def test_a_shipped_chart_is_installed_from_the_archive_it_pushed_a_promoted_one_from_the_registry(
    tmp_path, monkeypatch
):
    from deployer.release import lock

    monkeypatch.setattr(lock, "ReleaseLock", FakeLock)
    monkeypatch.setattr(ship_cluster, "_deployment_generation", lambda ctx: 5)
    deploy, chart, image = _deploy_inputs()
    archive = tmp_path / "hello-0.0.1.tgz"
    for pushed, installed in ((archive, (archive, None)), (None, (chart.reference, "0.0.1"))):
        log: list = []
        monkeypatch.setattr(FakeLock, "log", log)
        state = dict(deploy=deploy, helm=DeployHelm(log), api=object(), chart=chart, image=image)
        ctx, seen = _ctx(ship.ShipConfig(service="hello"), tmp_path, chart_archive=pushed, **state)
        ship.step_deploy(ctx)
        assert log[-1] == ("upgrade", "hello", "hello-ns", *installed)
        said = f"helm upgrade --install hello {chart.reference} --version 0.0.1"
        assert seen[-1] == said + (" (from the archive just pushed there)" if pushed else "")


def test_a_lock_refused_in_the_background_fails_the_deploy_step_and_nothing_is_released(
    tmp_path, monkeypatch
):
    """The chart stage starts taking the lock; a refusal is the deploy step's error, not the chart's."""
    from deployer.release import lock

    class Refused(FakeLock):
        def __enter__(self):
            raise lock.ShipInProgress("another ship of release 'hello' in namespace 'hello-ns' is running")

    log: list = []
    monkeypatch.setattr(lock, "ReleaseLock", Refused)
    monkeypatch.setattr(FakeLock, "log", log)
    # helm_test=False: the deploy step starts no test pods here (deployer.tools.testpod)
    deploy = SimpleNamespace(
        namespace="hello-ns", release="hello", timeouts=SimpleNamespace(helm=300), helm_test=False
    )
    state = dict(deploy=deploy, helm=DeployHelm(log), api=object())
    ctx, _ = _ctx(ship.ShipConfig(service="hello"), tmp_path, **state)
    ship_cluster.start_release_lock(ctx)  # what the chart step starts first
    with pytest.raises(lock.ShipInProgress) as info:
        ship.step_deploy(ctx)
    assert info.value.exit_code == ExitCode.DEPLOY
    for cleanup in ctx.state.cleanups:
        cleanup()
    assert log == [("lock", "hello-ns", "hello")]  # never taken, so never released, and no helm call


def test_the_release_lock_is_taken_while_the_image_is_pushed(tmp_path, monkeypatch):
    """Tests passed and the image is built: the lock and the release's status come in the background
    beside the image push and the chart stage, not in front of helm upgrade."""
    from deployer import build
    from deployer.build import BuildResult, PushResult
    from deployer.release import lock
    from deployer.tools import docker

    log: list = []
    monkeypatch.setattr(lock, "ReleaseLock", FakeLock)
    monkeypatch.setattr(FakeLock, "log", log)
    built = BuildResult("hello", "production", "sha256:" + "i" * 64, 1, "deployer/hello:production", 1,
                        "127.0.0.1:5000/staging/hello", ("t1",))  # fmt: skip

    def fake_push(b, **kw):
        assert ctx.state.lock_early is not None, "the lock waited for the push"
        ctx.state.lock_early.result()  # taken while the image is pushed
        log.append("image pushed")
        return PushResult("hello", b.repository, b.tags, "sha256:" + "d" * 64, b, 1, 0)

    monkeypatch.setattr(build, "push", fake_push)
    monkeypatch.setattr(retention, "tidy", lambda svc: retention.Tidied((), 0, "0B"))
    monkeypatch.setattr(docker, "untag", lambda refs: None)  # the push tags' removal (a chore)
    # helm_test=False: the deploy step starts no test pods here (deployer.tools.testpod)
    deploy = SimpleNamespace(
        namespace="hello-ns", release="hello", timeouts=SimpleNamespace(helm=300), helm_test=False
    )
    state = dict(deploy=deploy, helm=DeployHelm(log), api=object(), built=built)
    ctx, _ = _ctx(ship.ShipConfig(service="hello"), tmp_path, **state)
    _run_step("push", ctx)
    assert log == [("lock", "hello-ns", "hello"), "lock taken", "status", "image pushed"]
    for cleanup in ctx.state.cleanups:
        cleanup()
    assert log[-1] == "lock released"


# --- test, build, push: one docker session per ship -----------------------------------------------------


def test_test_build_and_push_share_one_docker_session(tmp_path, monkeypatch):
    """The engine check and the registry login happen once per ship (deployer.build.Session), not once
    per build and push: the three steps hand the same session to deployer.build."""
    from deployer import build, buildcache
    from deployer.build import BuildResult, PushResult, Session, TestResult
    from deployer.tools import docker

    sessions: list[object] = []
    sources: list[object] = []
    test_cache = (buildcache.CacheImage("127.0.0.1:5000/staging/hello/cache:test", "sha256:" + "t" * 64),)
    prod_cache = (
        buildcache.CacheImage("127.0.0.1:5000/staging/hello/cache:production", "sha256:" + "i" * 64),
    )
    built = BuildResult("hello", "production", "sha256:" + "i" * 64, 1, "deployer/hello:production", 1,
                        "127.0.0.1:5000/staging/hello", ("t1",), cache_images=prod_cache)  # fmt: skip

    def fake_test(service, config, variant, *, progress, session, source, deadline, push_cache):
        assert not push_cache  # the ship pushes the test build cache itself, off its critical path
        sessions.append(session)
        sources.append(source)
        return TestResult("hello", variant, "deployer/hello:test", "sha256:" + "t" * 64, 0, 0.1,
                          cache_images=test_cache)  # fmt: skip

    def fake_build(service, config, variant, *, source, progress, session, deadline, push_tagged):
        assert push_tagged  # the build tags for the push: the push stage starts no `docker tag`
        sessions.append(session)
        sources.append(source)
        return built

    def fake_push(b, *, progress, session, deadline, push_cache, untag):
        assert not push_cache and not untag  # both off the critical path (chores)
        sessions.append(session)
        return PushResult("hello", b.repository, b.tags, "sha256:" + "d" * 64, b, 1, 0)

    monkeypatch.setattr(build, "test", fake_test)
    monkeypatch.setattr(build, "build", fake_build)
    monkeypatch.setattr(build, "push", fake_push)
    background: list[object] = []  # cache pushes and the engine clean-up (deployer.retention, real in e2e)
    monkeypatch.setattr(buildcache, "push", lambda images, **kw: background.append(images) or [])
    monkeypatch.setattr(
        retention, "tidy", lambda svc: background.append(svc) or retention.Tidied((), 0, "0B")
    )
    monkeypatch.setattr(docker, "untag", lambda refs: background.append(refs))
    deploy = SimpleNamespace(variant="production")
    source = git.Source(sha="a" * 40)  # what compile asked git; the builds do not ask again
    state = dict(variants=("test", "production"), deploy=deploy, docker=None, source=source)
    ctx, _ = _ctx(ship.ShipConfig(service="hello"), tmp_path, **state)
    ship.step_test(ctx)
    ship.step_build(ctx)
    ship.step_push(ctx)
    assert len(sessions) == 3
    assert isinstance(sessions[0], Session)
    assert sessions[1] is sessions[0] and sessions[2] is sessions[0]
    assert sources == [source, source]
    assert ctx.state.image.digest == "sha256:" + "d" * 64
    done = ctx.state.chores.finish(None)
    assert [(c.name, c.stage, c.ok) for c in done] == [
        ("build cache of test", "test", True),
        ("build cache of production", "push", True),
        ("push tags", "push", True),
        ("engine clean-up", "push", True),
    ]
    assert background == [test_cache, prod_cache, ["127.0.0.1:5000/staging/hello:t1"], "hello"]


def test_the_test_run_starts_importing_the_cluster_client_and_deploy_waits_for_it(tmp_path, monkeypatch):
    import sys

    from deployer import build
    from deployer.build import TestResult

    def fake_test(service, config, variant, *, progress, **kw):
        progress("#7 [4/7] WORKDIR /srv/app")  # the builds: CPU is busy, no import yet
        assert ctx.state.preload is None
        progress("> node --test")  # the run has started
        return TestResult("hello", variant, "deployer/hello:test", "sha256:" + "t" * 64, 0, 0.1)

    monkeypatch.setattr(build, "test", fake_test)
    svc = _service(tmp_path, git=False)
    ctx, _ = _ctx(ship.ShipConfig(service=str(svc)), tmp_path)
    _run_step("compile", ctx)
    assert ctx.state.preload is None  # a config with tests: not while the images build
    ship.step_test(ctx)  # without the production build it starts beside it
    preload = ctx.state.preload
    assert preload is not None and preload.name == "deployer-preload-kubernetes"
    ship_context.cluster_modules(ctx.state)
    assert not preload.is_alive()
    assert {"deployer.tools.kube", "deployer.release.lock", "deployer.rollout.watcher"} <= set(sys.modules)
    assert {"CoreV1Api", "AppsV1Api", "CoordinationV1Api"} <= set(vars(sys.modules["kubernetes.client"]))

    # the deploy step joins the import before it imports or calls anything of the cluster's
    from deployer.release import lock

    order: list[str] = []

    class Joined:
        def join(self) -> None:
            order.append("join")

    class Lock(FakeLock):
        def __init__(self, *a, **kw):
            order.append("lock")
            super().__init__(*a, **kw)

    monkeypatch.setattr(lock, "ReleaseLock", Lock)
    monkeypatch.setattr(ship_cluster, "_deployment_generation", lambda ctx: 1)
    deploy, chart, image = _deploy_inputs()
    state = dict(deploy=deploy, helm=DeployHelm([]), api=object(), chart=chart, image=image, preload=Joined())
    ctx, _ = _ctx(ship.ShipConfig(service="hello"), tmp_path, **state)
    ship.step_deploy(ctx)
    assert order[:2] == ["join", "lock"]


# --- the overall deadline (--timeout) reaches into each tool ---------------------------------------------


def test_a_tool_stopped_by_the_ships_deadline_is_the_ships_timeout(tmp_path):
    import time

    ctx, _ = _ctx(ship.ShipConfig(service="hello", timeout=30), tmp_path)
    ctx.deadline = time.monotonic() - 0.1  # passed while the build ran
    failed = errors.BuildFailed("docker build timed out at [production 5/6] RUN npm ci: killed")
    failed.evidence = ("npm http fetch GET 200 ...",)
    with pytest.raises(errors.Timeout) as info, ship_context.overall_deadline(ctx, "the production build"):
        raise failed
    assert info.value.exit_code == ExitCode.TIMEOUT
    assert info.value.message == (
        "the ship's --timeout of 30s ran out during the production build "
        "(docker build timed out at [production 5/6] RUN npm ci: killed)"
    )
    assert info.value.evidence == ("npm http fetch GET 200 ...",)
    assert info.value.__cause__ is failed


def test_a_tool_failing_before_the_deadline_keeps_its_own_error(tmp_path):
    import time

    ctx, _ = _ctx(ship.ShipConfig(service="hello", timeout=30), tmp_path)
    ctx.deadline = time.monotonic() + 30
    with pytest.raises(errors.BuildFailed), ship_context.overall_deadline(ctx, "the production build"):
        raise errors.BuildFailed("docker build failed at [production 5/6] RUN npm ci: exit code: 1")


def test_helm_gets_the_seconds_left_when_fewer_than_its_own_timeout(tmp_path):
    import time

    ctx, _ = _ctx(ship.ShipConfig(service="hello"), tmp_path)
    ctx.deadline = time.monotonic() + 42.5
    assert ship_context.seconds_left(ctx, 300) == 42
    assert ship_context.seconds_left(ctx, 10) == 10
    ctx.deadline = time.monotonic() - 5
    assert ship_context.seconds_left(ctx, 300) == 1  # at least a second: helm takes whole seconds


# --- the production build runs beside the test stage --------------------------------------------------


def test_production_builds_during_the_test_run_and_its_output_shows_under_build(tmp_path, monkeypatch):
    import threading

    from deployer import build
    from deployer.build import BuildResult, TestResult

    test_running = threading.Event()
    order: list[str] = []
    built = BuildResult("hello", "production", "sha256:" + "i" * 64, 1, "deployer/hello:production", 1,
                        "127.0.0.1:5000/staging/hello", ("t1",))  # fmt: skip

    def fake_build(service, config, variant, *, source, progress, session, deadline, push_tagged):
        assert test_running.wait(10), "the production build waited for the test run"
        progress("#5 [production 2/6] RUN npm ci")
        order.append("production built")
        return built

    def fake_test(service, config, variant, *, progress, session, source, deadline, push_cache):
        test_running.set()
        order.append("tests ran")
        return TestResult("hello", variant, "deployer/hello:test", "sha256:" + "t" * 64, 0, 0.1)

    monkeypatch.setattr(build, "build", fake_build)
    monkeypatch.setattr(build, "test", fake_test)
    deploy = SimpleNamespace(variant="production")
    state = dict(variants=("test", "production"), deploy=deploy, docker=None)
    ctx, seen = _ctx(ship.ShipConfig(service="hello"), tmp_path, **state)
    _run_step("test", ctx)
    assert "#5 [production 2/6] RUN npm ci" not in seen  # not under the test stage
    details = _run_step("build", ctx)
    assert ctx.state.built is built and details["images"][0]["image_id"] == built.image_id
    # the stage's own time is the wait; the report says the build itself ran beside the test stage
    (beside,) = details["background"]
    assert (beside["name"], beside["overlapped"]) == ("production build", ["test"])
    assert details["summary"].endswith("beside the test stage")
    assert "#5 [production 2/6] RUN npm ci" in seen
    assert set(order) == {"tests ran", "production built"}


def test_a_production_build_failure_is_the_build_stages_error(tmp_path, monkeypatch):
    from deployer import build
    from deployer.build import TestResult

    def fake_build(service, config, variant, **kw):
        raise errors.BuildFailed("docker build failed at [production 5/6] RUN npm ci: exit code: 1")

    def fake_test(service, config, variant, **kw):
        return TestResult("hello", variant, "deployer/hello:test", "sha256:" + "t" * 64, 0, 0.1)

    monkeypatch.setattr(build, "build", fake_build)
    monkeypatch.setattr(build, "test", fake_test)
    state = dict(variants=("test", "production"), deploy=SimpleNamespace(variant="production"), docker=None)
    ctx, _ = _ctx(ship.ShipConfig(service="hello"), tmp_path, **state)
    _run_step("test", ctx)  # the tests pass; the build's failure waits for its own stage
    with pytest.raises(errors.BuildFailed, match=r"RUN npm ci: exit code: 1"):
        _run_step("build", ctx)


def test_without_a_test_variant_compile_starts_the_import_itself(tmp_path):
    svc = _service(tmp_path, git=False)
    config = svc / ".pipeline" / "blubber.yaml"
    config.write_text(
        config.read_text().replace("  test:\n    entrypoint: [python3, -c, \"print('ok')\"]\n", "")
    )
    ctx, _ = _ctx(ship.ShipConfig(service=str(svc)), tmp_path)
    _run_step("compile", ctx)
    assert ctx.state.variants == ("production",)
    assert ctx.state.preload is not None
    ship_context.cluster_modules(ctx.state)


def test_a_cluster_that_does_not_answer_stops_the_ship_before_anything_is_built(tmp_path, monkeypatch):
    from deployer import build
    from deployer.tools import apiserver

    built: list[str] = []
    monkeypatch.setattr(build, "test", lambda *a, **kw: built.append("test"))
    monkeypatch.setattr(build, "build", lambda *a, **kw: built.append("build"))
    reason = "the Kubernetes API server https://10.200.255.2:6443 does not answer: Connection refused"
    asked: list[tuple[object, object]] = []
    monkeypatch.setattr(apiserver, "unreachable", lambda k, c: asked.append((k, c)) or reason)
    svc = _service(tmp_path, git=False)
    config = ship.ShipConfig(service=str(svc), kubeconfig=tmp_path / "kc", environment="prod")
    ctx, _ = _ctx(config, tmp_path)
    _run_step("compile", ctx)  # starts the check
    with pytest.raises(errors.EnvironmentMissing) as info:
        _run_step("test", ctx)
    assert info.value.exit_code == ExitCode.ENVIRONMENT
    assert info.value.message == f"{reason}; stopped before building anything"
    assert "e2e/cluster up" in info.value.hint
    assert asked == [(tmp_path / "kc", "prod")] and built == []


# --- the chart: rendered and linted beside the tests, packaged and pushed once the digest is known ------

PUSHED = ImageRef("127.0.0.1:5000/staging/hello", "sha256:" + "d" * 64, "20261203T210000Z-production")


class ChartHelm:
    """helm's lint and push as the chart stage uses them: what each saw of the chart (no helm process)."""

    def __init__(self, lint_error: Exception | None = None, gate=None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.lint_error, self.gate = lint_error, gate

    def lint(self, chart_dir, *, timeout=None):
        if self.gate is not None:
            self.gate.wait(10)
        values = yaml.safe_load((Path(chart_dir) / "values.yaml").read_text())
        self.calls.append(("lint", values["image"]["digest"]))
        if self.lint_error is not None:
            raise self.lint_error
        return "1 chart(s) linted, 0 chart(s) failed"

    def push_package(self, chart, package, *, registry, credentials):
        """deployer.chart.push_package's seam: what the archive holds, and with which login."""
        import tarfile

        from deployer.chart import PublishedChart

        assert credentials == "docker's login of 127.0.0.1:5000"
        with tarfile.open(package) as tar:
            values = yaml.safe_load(tar.extractfile("hello/values.yaml").read())  # type: ignore[union-attr]
        self.calls.append(("push", values["image"]["digest"]))
        reference = f"{registry.charts}/{chart.name}"
        return PublishedChart(chart.name, chart.version, package, reference, "sha256:" + "c" * 64)


class _LoggedIn(_Session):
    def login(self, host: str) -> str:
        self.started.append(f"login {host}")
        return f"docker's login of {host}"


def _chart_ctx(tmp_path, monkeypatch, helm: ChartHelm, **config):
    svc = _service(tmp_path, git=False)
    ctx, seen = _ctx(ship.ShipConfig(service=str(svc), **config), tmp_path, docker=_LoggedIn())
    ship.step_compile(ctx)
    ctx.state.helm = helm
    monkeypatch.setattr(ship_cluster, "make_helm", lambda config, deploy: helm)
    monkeypatch.setattr("deployer.chart.push_package", helm.push_package)
    return ctx, seen


def test_the_chart_is_linted_beside_the_tests_and_its_stage_only_packages_and_pushes(tmp_path, monkeypatch):
    import math
    import time

    helm = ChartHelm()
    ctx, seen = _chart_ctx(tmp_path, monkeypatch, helm)
    state = ctx.state
    state.windows["test"] = (time.monotonic(), math.inf)
    ship_cluster.start_chart_lint(ctx)  # as the test stage starts it
    assert state.chart_lint.wait(10)
    state.windows["test"] = (state.windows["test"][0], time.monotonic())
    assert helm.calls == [("lint", "sha256:" + "0" * 64)]  # before any digest: the stand-in image
    state.image = PUSHED  # the push stage's
    state.windows["chart"] = (time.monotonic(), math.inf)
    details = ship_cluster.step_chart(ctx)
    assert helm.calls == [("lint", "sha256:" + "0" * 64), ("push", PUSHED.digest)]  # no second lint
    version = details["chart"]["version"]
    assert state.chart.version == version and state.chart.package.name == f"hello-{version}.tgz"
    (lint,) = details["background"]
    assert (lint["name"], lint["status"], lint["overlapped"]) == (
        "chart render and helm lint",
        "ok",
        ["test"],
    )
    assert details["summary"].endswith("beside test")
    assert not any("waiting for helm lint" in line for line in seen)


def test_a_lint_finding_is_the_chart_stages_error_and_nothing_is_pushed(tmp_path, monkeypatch):
    helm = ChartHelm(lint_error=errors.DeployFailed("helm lint failed: [ERROR] templates/: parse error"))
    ctx, _ = _chart_ctx(tmp_path, monkeypatch, helm)
    ship_cluster.start_chart_lint(ctx)
    ctx.state.image = PUSHED
    with pytest.raises(errors.DeployFailed, match="helm lint failed"):
        ship_cluster.step_chart(ctx)
    assert [call for call, _ in helm.calls] == ["lint"] and ctx.state.chart is None


def test_values_changed_beyond_the_image_since_the_lint_are_linted_again(tmp_path, monkeypatch):
    from dataclasses import replace

    helm = ChartHelm()
    ctx, seen = _chart_ctx(tmp_path, monkeypatch, helm)
    ship_cluster.start_chart_lint(ctx)
    assert ctx.state.chart_lint.wait(10)
    ctx.state.deploy = replace(ctx.state.deploy, replicas=ctx.state.deploy.replicas + 1)
    ctx.state.image = PUSHED
    ship_cluster.step_chart(ctx)
    assert helm.calls == [("lint", "sha256:" + "0" * 64), ("lint", PUSHED.digest), ("push", PUSHED.digest)]
    assert any("beyond the image; helm lint again" in line for line in seen)


def test_a_lint_still_running_at_the_ships_deadline_is_the_ships_timeout(tmp_path, monkeypatch):
    import threading
    import time

    gate = threading.Event()
    helm = ChartHelm(gate=gate)
    ctx, seen = _chart_ctx(tmp_path, monkeypatch, helm, timeout=30)
    ship_cluster.start_chart_lint(ctx)
    ctx.state.image = PUSHED
    ctx.deadline = time.monotonic() + 0.3
    try:
        with pytest.raises(errors.Timeout, match=r"--timeout of 30s ran out during helm lint"):
            ship_cluster.step_chart(ctx)
    finally:
        gate.set()
    assert "waiting for helm lint (started with the test stage)" in seen
    assert not [call for call, _ in helm.calls if call == "push"]


def test_a_failing_test_pushes_no_chart_though_it_was_linted_beside_it(tmp_path, monkeypatch):
    import threading

    linted = threading.Event()

    class Linted(ChartHelm):
        def lint(self, chart_dir, *, timeout=None):
            out = super().lint(chart_dir, timeout=timeout)
            linted.set()
            return out

    helm = Linted()
    monkeypatch.setattr(ship_cluster, "make_helm", lambda config, deploy: helm)
    monkeypatch.setattr("deployer.chart.push_package", helm.push_package)

    def failing_tests(ctx):
        assert linted.wait(10), "the lint did not run beside the test stage"
        raise errors.TestVariantFailed("the test variant exited 1")

    steps = ship.build_steps()
    steps[1] = ship._step("test", failing_tests, before=(ship_cluster.start_chart_lint,))
    steps[0] = ship._step("compile", ship.step_compile)  # no docker session, no cluster check
    display = ListDisplay()
    code = ship.run(ship.ShipConfig(service=str(_service(tmp_path, git=False))), steps=steps, display=display)
    assert code == ExitCode.TEST_FAILED
    assert helm.calls == [("lint", "sha256:" + "0" * 64)]  # linted, never pushed
    chart = display.events[-1].run.result("chart")
    assert chart.status is Status.NOT_RUN
