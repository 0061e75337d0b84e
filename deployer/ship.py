"""`deployer ship <service>`: the ship workflow, as a list of small steps over one shared state.

    compile → test → build → push → chart → deploy → watch → smoke        (then: report, JUnit, exit code)

Each step is a short adapter: it takes what earlier steps left in `ShipState`, calls the module that owns
the work (blubber, deployer.build, deployer.chart, deployer.helm, deployer.rollout, deployer.smoke), puts
what later steps and the report need back into the state and its `details`, and reports progress through
`ctx.progress`. Failures are the owning module's `UserError`s; the runner (deployer.workflow) turns them
into results, and the report, the JUnit file, the summary and the exit code are all read from those.

Ordering that matters:
- the production image is built while the test variant builds and runs, but nothing is pushed before
  the tests pass, so a failing test pushes nothing (and stops that build);
- the release lock (deployer.lock) is taken (in the background, during the chart stage) before `helm upgrade`
  and held through watch and smoke, and
  only while holding it is a release stuck in pending-* (an interrupted run) repaired;
- a failed rollout is rolled back (or a first install uninstalled) inside the watch step, and the old
  version is watched back to healthy, so "rolled back" in the report means "serves again".

Never prints: all output goes through the display (deployer.output) the caller passes in.
"""

from __future__ import annotations

import importlib
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from blubber.errors import ExitCode, PolicyViolation, UserError
from deployer import errors
from deployer.workflow import Status, Step, StepContext, StepResult, WorkflowRun

__all__ = ["STAGES", "ShipConfig", "ShipState", "build_steps", "run"]

STAGES = ("compile", "test", "build", "push", "chart", "deploy", "watch", "smoke")
TITLES = {
    "compile": "load blubber.yaml and deploy.yaml, apply policy",
    "test": "build and run the test variant",
    "build": "build the production image",
    "push": "push the image to the registry",
    "chart": "render, lint and push the service chart",
    "deploy": "helm upgrade --install",
    "watch": "watch the rollout",
    "smoke": "smoke checks",
}


@dataclass(frozen=True)
class ShipConfig:
    """Everything `ship` was asked to do, decided once from the command line (the steps never see click)."""

    service: str  # a directory with .pipeline/blubber.yaml, or a bundled example's name
    environment: str = "staging"
    kubeconfig: Path | None = None
    namespace: str | None = None
    release: str | None = None
    timeout: float = 600.0
    smoke: bool = True
    ci: bool = False
    strict_ci: bool = False
    color: bool = False
    report_path: Path | None = None
    junit_path: Path | None = None
    test_variant: str = "test"

    @property
    def context(self) -> str | None:
        """`staging` is the local cluster's kubeconfig as it is; any other name is a context in it."""
        return None if self.environment == "staging" else self.environment


@dataclass
class ShipState:
    """What the steps hand on to each other (filled in as the run goes)."""

    workdir: Path
    service: Any = None  # deployer.service.Service
    git_sha: str | None = None
    git_dirty: bool | None = None
    source: Any = None  # deployer.git.Source: asked once, in compile; the builds use it too
    config: Any = None  # blubber Config
    deploy: Any = None  # deployer.deploy_config.DeployConfig
    variants: tuple[str, ...] = ()
    image: Any = None  # deployer.chart.ImageRef of the pushed production image
    built: Any = None  # what deployer.build returned for the production image
    docker: Any = None  # deployer.build.Session: one engine check and one registry login per ship
    chart: Any = None  # deployer.chart.PublishedChart
    helm: Any = None
    api: Any = None
    lock: Any = None
    lock_early: Any = None  # deployer.background.Background: (lock, release status) taken during chart
    production_build: Any = None  # (Background of deployer.build.build, its output relay), from test on
    cluster_check: Any = None  # Background of deployer.apiserver.unreachable, started by compile
    preload: threading.Thread | None = None  # imports the Kubernetes client while docker works
    previous_revision: int | None = None
    revision: int | None = None
    generation: int | None = None  # the Deployment's metadata.generation right after helm applied it
    deploy_started: datetime | None = None
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    @property
    def namespace(self) -> str | None:
        return self.deploy.namespace if self.deploy is not None else None

    @property
    def release(self) -> str | None:
        return self.deploy.release if self.deploy is not None else None


Ctx = StepContext[ShipConfig, ShipState]


# --- compile ----------------------------------------------------------------------------------------


def step_compile(ctx: Ctx) -> dict[str, Any]:
    import blubber
    from deployer import deploy_config, git, service

    config, state = ctx.config, ctx.state
    svc = state.service = service.resolve(config.service)
    _docker(state).start(_registry_host())  # the engine check and login overlap the compile
    _check_cluster_early(ctx)
    source = git.source(svc.directory)
    state.source = source
    state.git_sha, state.git_dirty = source.sha, (source.is_dirty if source.is_repo else None)
    changed = list(source.dirty_files)
    if source.is_dirty and config.strict_ci:
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        err = PolicyViolation(
            f"refusing to ship uncommitted changes in CI mode: {', '.join(changed[:5])}{more}",
            hint="commit them (CI ships what git has, so the report's git sha reproduces the image)",
        )
        err.next_command = f"git -C {svc.directory} status -- ."  # type: ignore[attr-defined]
        raise err
    if not source.is_repo:
        ctx.progress(f"{svc.directory} is not in a git work tree; the report will have no git sha")
    elif source.is_dirty:
        ctx.progress(f"{len(changed)} uncommitted paths; the image will not match {source.short_sha}")
    state.config = blubber.load(svc.config)
    deploy = deploy_config.load(svc.directory)
    if config.namespace or config.release:
        deploy = replace(
            deploy, namespace=config.namespace or deploy.namespace, release=config.release or deploy.release
        )
    state.deploy = deploy
    has_tests = config.test_variant in state.config.names
    if not has_tests:
        ctx.progress(f"no {config.test_variant!r} variant in {svc.config.name}: the test stage is skipped")
    variants = [config.test_variant, deploy.variant] if has_tests else [deploy.variant]
    for variant in variants:  # compile them all now: a config or policy error fails before any build
        blubber.compile_dockerfile(state.config, variant)
    state.variants = tuple(variants)
    if not has_tests:
        _preload_cluster_modules(state)  # else when the test run starts (step_test)
    return {"summary": f"variants {', '.join(variants)}; release {deploy.release} in {deploy.namespace}"}


# Importing the Kubernetes client costs about 1 s of CPU (0.4 s for the package, then each API class and
# model on first use, e.g. CoreV1Api 0.4 s), paid by every `deployer ship` process in the deploy stage.
# It is done in the background from the moment the test run starts (not earlier: during the two image
# builds the CPU is busy, and the import then slowed the test stage by 0.2-0.4 s, measured A/B), while
# the tests, build and push mostly wait for docker. The cluster steps wait for it (`_cluster_modules`)
# before importing anything themselves, so no module is ever imported by two threads at once.
_CLUSTER_MODULES = ("deployer.kube", "deployer.lock", "deployer.rollout.watcher")
# what the deploy and watch steps use of kubernetes.client (it imports each name on first access)
_CLUSTER_NAMES = ("CoreV1Api", "AppsV1Api", "CoordinationV1Api", "V1Lease", "V1LeaseSpec", "V1ObjectMeta")


def _preload_cluster_modules(state: ShipState) -> None:
    if state.preload is not None:
        return

    def load() -> None:
        try:
            for module in _CLUSTER_MODULES:
                importlib.import_module(module)
            kube_client = importlib.import_module("kubernetes.client")
            for name in _CLUSTER_NAMES:
                getattr(kube_client, name)
        except Exception:  # noqa: BLE001 - the step that needs it imports it again and reports it
            return

    state.preload = threading.Thread(target=load, name="deployer-preload-kubernetes", daemon=True)
    state.preload.start()


def _cluster_modules(state: ShipState) -> None:
    """Wait for the background import of the Kubernetes client (if one was started)."""
    if state.preload is not None:
        state.preload.join()


# --- test, build, push (deployer.build) ----------------------------------------------------------------


_BUILDKIT_LINE = re.compile(r"^#\d+ ")
_BUILDKIT_STEP = re.compile(r"^#\d+ \[[^\]]+\] ")
_LAYER_LINE = re.compile(r"^[0-9a-f]{12}: ")


def _tool_stream(ctx: Ctx) -> Callable[[str], None]:
    """Pass a tool's output on as progress: BuildKit's step headers only (not each line of every
    step, which `--report` and a failure's evidence keep), and every line a test run prints."""

    def take(line: str) -> None:
        if _BUILDKIT_LINE.match(line) and not _BUILDKIT_STEP.match(line):
            return
        if _LAYER_LINE.match(line):  # docker push: one line per layer and state
            return
        if line.strip():
            ctx.progress(line)

    return take


# Lines that say which test failed, in the output of common runners: TAP (node --test, prove),
# pytest/unittest, mocha/jest, and a traceback's last line.
_TEST_FAILURE = re.compile(
    r"^\s*(not ok\b|FAIL(ED)?\b|ERROR\b|E\s{2,}\S|Traceback \(most recent call last\)|\d+\) |✕|✗)"
    r"|\b(Assertion)?Error\b:"
)
_EXCERPT_AFTER = 14  # lines shown after each failure line: TAP's YAML block, an assertion's diff
_EXCERPT_MAX = 40


def _failure_excerpt(lines: Sequence[str], tail: Sequence[str]) -> list[str]:
    """The test output that explains a failure: each failing test's lines, then the run's last lines.

    A plain tail often shows only the runner's totals ("# fail 1"), the failing test is further up.
    """
    picked: list[int] = []
    for i, line in enumerate(lines):
        if _TEST_FAILURE.search(line):
            picked += range(i, min(i + _EXCERPT_AFTER + 1, len(lines)))
    chosen = sorted(set(picked))[:_EXCERPT_MAX]
    excerpt: list[str] = []
    for n, i in enumerate(chosen):
        if n and i != chosen[n - 1] + 1:
            excerpt.append("…")
        excerpt.append(lines[i])
    ending = [line for line in tail[-6:] if line not in excerpt[-6:]]
    return excerpt + (["…", *ending] if excerpt and ending else ending) if excerpt else list(tail)


@contextmanager
def _overall_deadline(ctx: Ctx, doing: str) -> Iterator[None]:
    """A tool stopped because the ship's own deadline (--timeout) came is the ship's timeout (exit 18,
    saying which --timeout ran out and during what), not a failure of that tool."""
    try:
        yield
    except UserError as e:
        if ctx.deadline is None or time.monotonic() < ctx.deadline or isinstance(e, errors.Timeout):
            raise
        # the tool's own one-line account, without the output tail that `evidence` carries
        first = (e.message.splitlines() or [type(e).__name__])[0].split("; last ")[0]
        err = errors.Timeout(
            f"the ship's --timeout of {ctx.config.timeout:.0f}s ran out during {doing} ({first})",
            hint="raise it with --timeout, or look at what was still running in the output above",
        )
        for name in ("evidence", "details"):
            if getattr(e, name, None):
                setattr(err, name, getattr(e, name))
        raise err from e


def _seconds_left(ctx: Ctx, timeout: float) -> int:
    """A helm --timeout: `timeout`, or the whole seconds left before the ship's deadline if fewer."""
    left = ctx.deadline - time.monotonic() if ctx.deadline is not None else timeout
    return max(1, int(min(float(timeout), left)))


def _check_cluster_early(ctx: Ctx) -> None:
    """Ask (in the background, during compile) whether the target cluster's API server answers at all."""
    from deployer import apiserver
    from deployer.background import Background

    config, state = ctx.config, ctx.state
    if state.cluster_check is None:
        state.cluster_check = Background(
            lambda: apiserver.unreachable(config.kubeconfig, config.context), name="cluster-check"
        )


def _cluster_answers(ctx: Ctx, before: str) -> None:
    """Stop before `before` (building, pushing) when the cluster the ship deploys to cannot be reached:
    it would only fail at the deploy stage, after the builds and pushes."""
    check = ctx.state.cluster_check
    reason = check.result() if check is not None else None
    if reason is not None:
        raise errors.EnvironmentMissing(
            f"{reason}; stopped before {before}",
            hint="start the local cluster with `e2e/cluster up`, or pick another with --env/--kubeconfig; "
            "`deployer doctor` checks everything a ship needs",
        )


def _registry_host() -> str:
    from deployer import registry

    return registry.REGISTRY


def _docker(state: ShipState) -> Any:
    """The docker session test, build and push share: the engine is checked and docker logged in to the
    registry once per ship, not once per build or push."""
    if state.docker is None:
        from deployer import build

        state.docker = build.Session()
    return state.docker


def step_test(ctx: Ctx) -> StepResult | dict[str, Any]:
    from deployer import build

    config, state = ctx.config, ctx.state
    if config.test_variant not in state.variants:
        return StepResult.skipped("test", f"the config has no {config.test_variant!r} variant")
    output: list[str] = []  # what the test run printed (BuildKit lines are the build, not the tests)
    show = _tool_stream(ctx)

    def take(line: str) -> None:
        if not _BUILDKIT_LINE.match(line):
            output.append(line)
            # The builds are done and the tests run: the CPU the import needs is now mostly free.
            _preload_cluster_modules(state)
        show(line)

    _cluster_answers(ctx, "building anything")
    _start_production_build(ctx)
    try:
        with _overall_deadline(ctx, "the test variant's build and run"):
            result = build.test(
                state.service,
                state.config,
                config.test_variant,
                progress=take,
                session=_docker(state),
                source=state.source,
                deadline=ctx.deadline,
            )
    except errors.TestVariantFailed as e:
        # deployer.build gives the output tail as evidence, the command that reproduces the run as
        # next_command, and details["tests"] for the reports; the evidence shown is the failing tests.
        e.evidence = _failure_excerpt(output, list(getattr(e, "evidence", None) or ()))  # type: ignore[attr-defined]
        e.message = e.message.splitlines()[0].split("; last ")[0]
        raise
    tests = {
        "variant": result.variant,
        "image": result.image,
        "passed": True,
        "exit_code": result.exit_code,
        "duration_seconds": round(result.duration, 3),
        "output_tail": list(result.tail),
    }
    repository, _, tag = result.image.rpartition(":")
    image = {
        "variant": result.variant,
        "repository": repository,
        "tags": [tag],
        "digest": None,  # the test image stays local: it is never pushed
        "pushed": False,
        "image_id": result.image_id,
    }
    return {"tests": tests, "images": [image], "summary": f"tests passed in {result.image}"}


class _Relay:
    """Output of work started before its stage: kept until the stage starts, then passed on live."""

    def __init__(self) -> None:
        self._kept: list[str] = []
        self._to: Callable[[str], None] | None = None
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            if self._to is None:
                self._kept.append(line)
            else:
                self._to(line)

    def attach(self, to: Callable[[str], None]) -> None:
        with self._lock:
            for line in self._kept:
                to(line)
            self._kept, self._to = [], to


def _build_production(ctx: Ctx, progress: Callable[[str], None]) -> Any:
    from deployer import build

    state = ctx.state
    return build.build(
        state.service,
        state.config,
        state.deploy.variant,
        source=state.source,
        progress=progress,
        session=_docker(state),
        deadline=ctx.deadline,
    )


def _start_production_build(ctx: Ctx) -> None:
    """Build the production image while the test variant builds and runs: nothing is pushed before the
    tests pass (push waits for them), but the build no longer waits for the test run. Its output is
    shown under the build stage; a failed test stops it (run() stops every tool still running)."""
    from deployer.background import Background

    state = ctx.state
    if state.production_build is not None:
        return
    _docker(state)  # made here, not in the thread: the test build uses the same session
    relay = _Relay()
    state.production_build = (Background(lambda: _build_production(ctx, relay), name="build"), relay)


def step_build(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    _cluster_answers(ctx, "building the production image")  # when there was no test stage
    with _overall_deadline(ctx, "the production build"):
        if state.production_build is not None:
            early, relay = state.production_build
            if not early.done:
                ctx.progress("the production build started with the test stage; waiting for it")
            relay.attach(_tool_stream(ctx))
            built = early.result()
        else:
            built = _build_production(ctx, _tool_stream(ctx))
    state.built = built
    image = {
        "variant": built.variant,
        "repository": built.repository,
        "tags": list(built.tags),
        "digest": None,
        "pushed": False,
        "image_id": built.image_id,
    }
    return {"images": [image], "summary": f"{built.references[0]} ({built.size_mb:.0f} MB)"}


def step_push(ctx: Ctx) -> dict[str, Any]:
    from deployer import build
    from deployer.chart import ImageRef

    state = ctx.state
    _preload_cluster_modules(state)  # if the test run printed nothing (or there was none)
    with _overall_deadline(ctx, "the push"):
        pushed = build.push(
            state.built, progress=_tool_stream(ctx), session=_docker(state), deadline=ctx.deadline
        )
    state.image = ImageRef(repository=pushed.repository, digest=pushed.digest, tag=pushed.tags[0])
    image = {
        "variant": pushed.image.variant,
        "repository": pushed.repository,
        "tags": list(pushed.tags),
        "digest": pushed.digest,
        "pushed": True,
    }
    return {"images": [image], "summary": pushed.reference}


# --- chart, deploy, watch, smoke ----------------------------------------------------------------------


def _helm(config: ShipConfig, state: ShipState) -> Any:
    if state.helm is None:
        from deployer import apiserver, docker
        from deployer.helm import Helm

        # The same kubeconfig deployer.kube.load_api picks, so helm and the watcher see one cluster.
        kubeconfig = apiserver.kubeconfig_path(config.kubeconfig)
        state.helm = Helm(
            kubeconfig=kubeconfig,
            context=config.context,
            # docker's own config (the same format): the ship's docker login is helm's too, so no
            # `helm registry login` per ship
            registry_config=docker.DOCKER_CONFIG / "config.json",
            timeout=int(state.deploy.timeouts.helm),
        )
    return state.helm


def _api(config: ShipConfig, state: ShipState) -> Any:
    if state.api is None:
        _cluster_modules(state)
        from deployer.kube import load_api

        state.api = load_api(config.kubeconfig, config.context)
    return state.api


def step_chart(ctx: Ctx) -> dict[str, Any]:
    import blubber
    from deployer import chart as chart_mod
    from deployer import deploy_config

    config, state = ctx.config, ctx.state
    _take_lock_early(ctx)
    deploy = state.deploy
    runtime = blubber.runtime(state.config, deploy.variant)
    values = chart_mod.render_values(
        deploy,
        runtime,
        state.image,
        policy=deploy_config.load_policy(),
        blubber_file=str(state.service.config),
    )
    version = chart_mod.chart_version(values=values)
    rendered = chart_mod.write_chart(
        state.workdir / "chart", deploy.release, version, values, app_version=state.image.tag
    )
    ctx.progress(f"rendered {rendered.name} {version}; helm lint, package, push")
    _docker(state).login(_registry_host())  # helm pushes with docker's login (see _helm)
    published = chart_mod.publish(rendered, _helm(config, state), destination=state.workdir)
    state.chart = published
    return {
        "chart": {
            "name": published.name,
            "version": published.version,
            "ref": published.reference,
            "digest": published.digest,
        },
        "summary": published.pinned,
    }


def _take_lock_early(ctx: Ctx) -> None:
    """Take the release lock and read the release's status in the background while the chart is rendered
    and pushed; the deploy step waits for both (and reports a refused lock). Released by run() whatever
    happens, also when the chart stage fails."""
    from deployer.background import Background

    config, state = ctx.config, ctx.state
    if state.lock_early is not None:
        return

    def take() -> tuple[Any, Any]:
        _cluster_modules(state)
        from deployer.lock import ReleaseLock

        api = _api(config, state)
        lock = ReleaseLock(api, state.namespace, state.release, command=f"deployer ship {config.service}")
        lock.__enter__()  # held through watch and smoke
        state.lock = lock
        return lock, _helm(config, state).status(state.release, state.namespace)

    _helm(config, state)  # made here, not in the thread: the chart stage uses it at the same time
    early = state.lock_early = Background(take, name="release-lock")

    def release() -> None:
        try:
            lock, _ = early.result()
        except BaseException:  # noqa: BLE001 - not taken; the deploy step (if it ran) reported why
            return
        lock.__exit__(None, None, None)

    state.cleanups.append(release)


def step_deploy(ctx: Ctx) -> dict[str, Any]:
    config, state = ctx.config, ctx.state
    _take_lock_early(ctx)  # normally started by the chart stage
    _, status = state.lock_early.result()
    _still_holding_the_lock(ctx, "before helm upgrade")
    helm = _helm(config, state)
    release, namespace = state.release, state.namespace
    recovery, current = None, status
    if status is not None and status.pending:  # an interrupted run's release: repair it first
        recovery = helm.recover_pending(release, namespace)
        current = recovery.release
        if recovery.action != "none":
            ctx.progress(recovery.describe())
            current = helm.status(release, namespace)  # what the repair left
    state.previous_revision = current.revision if current is not None and not current.pending else None
    state.deploy_started = datetime.now(UTC)
    ctx.progress(f"helm upgrade --install {release} {state.chart.reference} --version {state.chart.version}")
    with _overall_deadline(ctx, "helm upgrade"):
        deployed = helm.upgrade_install(
            release,
            namespace,
            state.chart.reference,
            version=state.chart.version,
            plain_http=True,
            timeout=_seconds_left(ctx, state.deploy.timeouts.helm),
            description=f"deployer ship {state.image.pinned}",
        )
    state.revision = deployed.revision
    state.generation = _deployment_generation(ctx)
    details: dict[str, Any] = {"revision": deployed.revision, "summary": f"revision {deployed.revision}"}
    if recovery is not None and recovery.action != "none":
        details["recovered"] = recovery.describe()
    return details


def _deployment_generation(ctx: Ctx) -> int | None:
    """The generation helm's apply gave the Deployment, so the watch never judges an older spec."""
    from kubernetes import client

    from deployer.kube import KubeNotFound, call

    config, state = ctx.config, ctx.state
    apps = client.AppsV1Api(_api(config, state))
    try:
        deployment = call(
            "read the deployment", apps.read_namespaced_deployment, state.release, state.namespace
        )
    except KubeNotFound:
        return None  # the watch reports the missing Deployment itself
    return deployment.metadata.generation


def _watch_timeout(ctx: Ctx) -> tuple[float, bool]:
    """(seconds to watch, whether the overall --timeout is what limits it)."""
    rollout = float(ctx.state.deploy.timeouts.rollout)
    left = ctx.remaining()
    if left is not None and left < rollout:
        return left, True
    return rollout, False


def step_watch(ctx: Ctx) -> dict[str, Any]:
    _cluster_modules(ctx.state)
    from deployer.rollout.watcher import watch_rollout

    config, state = ctx.config, ctx.state
    timeout, overall = _watch_timeout(ctx)
    verdict = watch_rollout(
        _api(config, state),
        state.namespace,
        state.release,
        timeout=timeout,
        since=state.deploy_started,
        on_event=lambda event: ctx.progress(event.text()),
        generation=state.generation,
        # Another image running means something else changed the release (a concurrent deploy).
        images={"app": state.image.pinned},
        abort=lambda: _lost_lock(ctx, "during the rollout watch"),
    )
    _still_holding_the_lock(ctx, "after the rollout watch")
    if verdict.healthy:
        return {
            "rollout": {"verdict": "healthy", "reason": None, "rolled_back": False, "rollback": None},
            "summary": f"{verdict.replicaset or state.release} available after {verdict.duration:.1f}s",
        }
    message = verdict.message or ""
    # The API's message often starts with the reason already ("Error (exit code 3)").
    diagnosis = message if message.startswith(verdict.reason) else f"{verdict.reason}: {message}".rstrip(": ")
    where = verdict.object or f"deployment/{state.release}"
    if verdict.container:
        where += f" container {verdict.container}"
    evidence = [f"log {verdict.pod}/{verdict.container}: {line}" for line in verdict.log_tail]
    evidence += [f"event {line}" for line in verdict.warning_events]
    ctx.progress(f"rollout failed: {where}: {diagnosis}; rolling back")
    rollback = _roll_back(ctx)
    timed_out = verdict.reason == "Timeout"
    err_type = errors.Timeout if timed_out and overall else errors.RolloutFailed
    err = err_type(
        f"{where}: {diagnosis}; {rollback['detail']}",
        hint=verdict.hint or None,
    )
    err.evidence = evidence  # type: ignore[attr-defined]
    err.next_command = f"deployer status {config.service}"  # type: ignore[attr-defined]
    err.details = {  # type: ignore[attr-defined]
        "rollout": {
            "verdict": "timeout" if timed_out else "failed",
            "reason": diagnosis,
            "rolled_back": rollback["action"] != "none",
            "rollback": rollback,
            "evidence": evidence,
        }
    }
    raise err


def _lost_lock(ctx: Ctx, where: str) -> errors.DeployFailed | None:
    """The error to stop with if another run took the release lock over (this one stalled past the Lease
    duration): the release is that run's now, so this one must not roll it back or judge it."""
    lock = ctx.state.lock
    lost = lock.lost if lock is not None else None
    if lost is None:
        return None
    return errors.DeployFailed(
        f"{lost.message}; this ship stopped {where} and changed nothing more (no rollback)",
        hint="see what the other run deployed: deployer status; ship again once it has finished",
    )


def _still_holding_the_lock(ctx: Ctx, where: str) -> None:
    error = _lost_lock(ctx, where)
    if error is not None:
        raise error


def _roll_back(ctx: Ctx) -> dict[str, Any]:
    """Return the release to what served before (or remove a first install); verify the old version."""
    from deployer.rollout.watcher import watch_rollout

    config, state = ctx.config, ctx.state
    helm = _helm(config, state)
    release, namespace = state.release, state.namespace
    try:
        if state.previous_revision is None:
            helm.uninstall(release, namespace, wait=True)
            return {
                "action": "uninstall",
                "to_revision": None,
                "verified": None,
                "detail": "first install removed",
            }
        helm.rollback(release, namespace, state.previous_revision)
        ctx.progress(f"rolled back to revision {state.previous_revision}; watching the old version")
        verdict = watch_rollout(
            _api(config, state),
            namespace,
            release,
            timeout=float(state.deploy.timeouts.rollout),
            on_event=lambda event: ctx.progress(f"rollback: {event.text()}"),
        )
    except UserError as e:
        return {
            "action": "none",
            "to_revision": None,
            "verified": False,
            "detail": f"rollback failed: {e.message}",
        }
    verified = bool(verdict.healthy)
    detail = f"rolled back to revision {state.previous_revision}" + (
        ", which serves again" if verified else f", which is not healthy either: {verdict.reason}"
    )
    return {
        "action": "rollback",
        "to_revision": state.previous_revision,
        "verified": verified,
        "detail": detail,
    }


def _smoke_entries(results: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": r.name,
            "kind": r.kind,
            "status": "passed" if r.passed else "failed",
            "detail": r.message,
            "duration_seconds": round(float(r.seconds), 3),
        }
        for r in results
    ]


def step_smoke(ctx: Ctx) -> StepResult | dict[str, Any]:
    _cluster_modules(ctx.state)
    from deployer import portforward, smoke

    config, state = ctx.config, ctx.state
    if not config.smoke:
        return StepResult.skipped("smoke", "skipped (--skip-smoke)")
    deploy = state.deploy
    if not deploy.helm_test and not deploy.smoke_checks:
        return StepResult.skipped("smoke", "no smoke checks configured (deploy.yaml smoke:)")
    _still_holding_the_lock(ctx, "before the smoke checks")
    helm, api = _helm(config, state), _api(config, state)
    selector = f"app.kubernetes.io/instance={deploy.release}"

    def helm_test(release: str, namespace: str, timeout: int) -> str:
        ctx.progress("helm test --logs")
        with _overall_deadline(ctx, "helm test"):
            return helm.test(release, namespace, timeout=_seconds_left(ctx, timeout))

    def http_get(path: str, timeout: float) -> tuple[int, bytes]:
        pod = portforward.ready_pod(api, deploy.namespace, selector)
        ctx.progress(f"GET {path} on pod {pod}:{deploy.port}")
        response = portforward.http_get(api, deploy.namespace, pod, deploy.port, path, timeout=timeout)
        return response.status, response.body

    try:
        results = smoke.run_checks(
            deploy,
            helm_test=helm_test,
            http_get=http_get,
            # a failed test pod's own status says why it failed (helm test prints only "pod failed")
            test_pods=lambda release, namespace: smoke.read_test_pods(api, namespace, release),
        )
    except smoke.SmokeReport as e:
        e.details = {"smoke": _smoke_entries(e.results)}
        raise
    return {"smoke": _smoke_entries(results), "summary": f"{len(results)} of {len(results)} checks passed"}


def build_steps() -> list[Step]:
    """The ship's steps in order (the seam tests replace)."""
    fns: dict[str, Callable[[Ctx], Any]] = {
        "compile": step_compile,
        "test": step_test,
        "build": step_build,
        "push": step_push,
        "chart": step_chart,
        "deploy": step_deploy,
        "watch": step_watch,
        "smoke": step_smoke,
    }
    return [Step(name, fns[name], TITLES[name]) for name in STAGES]


# --- the run -------------------------------------------------------------------------------------------

_NEXT: dict[str, str] = {
    "compile": "blubber lint {blubber}",
    "test": "deployer test {dir}",
    "build": "deployer build {dir}",
    "push": "deployer doctor",
    "chart": "deployer diff {dir}",
    "deploy": "deployer status {dir}",
    "watch": "deployer status {dir}",
    "smoke": "deployer status {dir}",
}


def _with_next_commands(run: WorkflowRun, config: ShipConfig, state: ShipState) -> WorkflowRun:
    """Give the failed step a next command when it named none, and say where an interrupt left things."""
    failed = run.failed
    if failed is None:
        return run
    fixed = failed
    if failed.exit_code == ExitCode.ENVIRONMENT:
        fixed = replace(fixed, next_command=fixed.next_command or "deployer doctor")
    elif not fixed.next_command and failed.name in _NEXT:
        blubber = state.service.config if state.service else Path(config.service, ".pipeline", "blubber.yaml")
        command = _NEXT[failed.name].format(dir=config.service, blubber=blubber)
        fixed = replace(fixed, next_command=command)
    if failed.status is Status.INTERRUPTED and failed.name in ("deploy", "watch", "smoke"):
        fixed = replace(
            fixed,
            hint=(
                f"release {state.release} in {state.namespace} may be left mid-upgrade "
                f"(revision {state.revision or '?'}); the next ship recovers a pending release, or run "
                f"`deployer rollback {config.service}`"
            ),
        )
    return replace(run, results=tuple(fixed if r is failed else r for r in run.results))


def _reproduce(config: ShipConfig, state: ShipState) -> list[str]:
    ship = f"deployer ship {config.service} --env {config.environment}"
    ship += f" --namespace {config.namespace}" if config.namespace else ""
    ship += f" --release {config.release}" if config.release else ""
    commands = [ship]
    if state.git_sha:
        commands.insert(0, f"git checkout {state.git_sha}")
    if state.image is not None:
        commands.append(f"docker pull {state.image.pinned}")
    if state.chart is not None and state.deploy is not None:
        commands.append(
            f"helm upgrade --install {state.release} {state.chart.reference} --version {state.chart.version} "
            f"--namespace {state.namespace} --plain-http"
        )
    return commands


def run(
    config: ShipConfig,
    *,
    steps: Sequence[Step] | None = None,
    display: Any = None,
    clock: Callable[[], float] | None = None,
) -> int:
    """Ship `config.service`: run the steps, write the reports asked for, return the exit code."""

    from deployer import command, junit, output, report, workflow

    display = display or output.make_display(ci=config.ci, color=config.color)
    started_at = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="deployer-ship-") as tmp:
        state = ShipState(workdir=Path(tmp))
        ctx: Ctx = StepContext(config, state, deadline=time.monotonic() + config.timeout)
        display.header(f"ship {config.service} to {config.environment}" + (" [ci]" if config.ci else ""))

        def sink(event: workflow.Event) -> None:
            # The summary the display prints and the reports must agree: fill in next commands first.
            if isinstance(event, workflow.WorkflowFinished):
                event = workflow.WorkflowFinished(_with_next_commands(event.run, config, state))
            display(event)

        try:
            outcome = workflow.run(steps or build_steps(), ctx, sink, clock=clock or time.monotonic)
        finally:
            for cleanup in reversed(state.cleanups):
                cleanup()
            command.stop_running()  # work started early that the run no longer waits for
        outcome = _with_next_commands(outcome, config, state)
    info = report.RunInfo(
        service=state.service.name if state.service else Path(config.service).name,
        service_dir=str(state.service.directory if state.service else config.service),
        environment=config.environment,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        git_sha=state.git_sha,
        git_dirty=state.git_dirty,
        namespace=state.namespace,
        release=state.release,
        kube_context=config.context,
        reproduce=_reproduce(config, state),
    )
    if config.report_path is not None:
        report.write_report(config.report_path, report.build_report(outcome, info))
    if config.junit_path is not None:
        junit.write_junit(config.junit_path, outcome, info.service)
    return outcome.exit_code
