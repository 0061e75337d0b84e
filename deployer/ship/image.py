"""The image half of a ship: compile, test, build, push (deployer.build does the work).

The production image is built while the test variant builds and runs, but nothing is pushed before the
tests pass, so a failing test pushes nothing (and stops that build). Before anything is built, the target
cluster's API server must answer (asked in the background during compile).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from deployer import errors
from deployer.ship import chores
from deployer.ship.context import (
    Ctx,
    docker_session,
    overall_deadline,
    preload_cluster_modules,
    registry_host,
)
from deployer.workflow import StepResult


def step_compile(ctx: Ctx) -> dict[str, Any]:
    import blubber
    from blubber.errors import UserError
    from deployer import service
    from deployer.background import Background
    from deployer.target.deploy import service_deploy
    from deployer.tools import git

    config, state = ctx.config, ctx.state
    svc = state.service = service.resolve(config.service)
    # git runs while the configs load (a process, 20-90 ms here, against their 40-100 ms of CPU); what
    # it says is taken first, as if it had run first: a dirty tree in CI is refused before a config error
    asked = Background(lambda: git.source(svc.directory), name="git")
    try:
        state.config = blubber.load(svc.config, policy=config.where().environment.policies.blubber_file())
        # the environment's deploy defaults and namespace rule (deployer/target/deploy.py)
        deploy = state.deploy = service_deploy(
            config.where(), svc.directory, namespace=config.namespace, release=config.release
        )
    except UserError:
        _take_source(ctx, asked.result())
        raise
    _take_source(ctx, asked.result())
    has_tests = config.test_variant in state.config.names
    if not has_tests:
        ctx.progress(f"no {config.test_variant!r} variant in {svc.config.name}: the test stage is skipped")
    variants = [config.test_variant, deploy.variant] if has_tests else [deploy.variant]
    for variant in variants:  # compile them all now: a config or policy error fails before any build
        blubber.compile_dockerfile(state.config, variant)
    state.variants = tuple(variants)
    return {"summary": f"variants {', '.join(variants)}; release {deploy.release} in {deploy.namespace}"}


def _take_source(ctx: Ctx, source: Any) -> None:
    """What git said about the service's directory (`deployer.tools.git.Source`): into the state, and
    said (or refused, in CI mode) when the tree is not a commit."""
    from deployer.committed import require_committed

    config, state = ctx.config, ctx.state
    state.source = source
    state.git_sha, state.git_dirty = source.sha, (source.is_dirty if source.is_repo else None)
    if config.strict_ci:
        require_committed(source, state.service.directory, doing="ship")
    if not source.is_repo:
        ctx.progress(f"{state.service.directory} is not in a git work tree; the report will have no git sha")
    elif source.is_dirty:
        changed = len(source.dirty_files)
        ctx.progress(f"{changed} uncommitted paths; the image will not match {source.short_sha}")


# --- output of the tools -------------------------------------------------------------------------------


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


# --- work started early, for later stages (build_steps says when) -----------------------------------------


def start_docker_session(ctx: Ctx) -> None:
    """Check the engine and log in to the registry in the background: they overlap the compile."""
    docker_session(ctx.state).start(registry_host(ctx.config))


def start_cluster_import(ctx: Ctx) -> None:
    """Import the Kubernetes client in the background (context.preload_cluster_modules says when not)."""
    preload_cluster_modules(ctx.state)


def start_cluster_import_without_tests(ctx: Ctx) -> None:
    """With no test run to wait for (whose output starts the import), start it once compiled."""
    if ctx.config.test_variant not in ctx.state.variants:
        preload_cluster_modules(ctx.state)


def start_cluster_check(ctx: Ctx) -> None:
    """Ask (in the background, during compile) whether the target cluster's API server answers at all."""
    from deployer.background import Background
    from deployer.tools import apiserver

    config, state = ctx.config, ctx.state
    if state.cluster_check is None:
        state.cluster_check = Background(
            lambda: apiserver.unreachable(config.kubeconfig, config.context), name="cluster-check"
        )


def start_access_check(ctx: Ctx) -> None:
    """Once the namespace is known (after compile): ask, in the background, whether the cluster identity
    may do each thing a ship needs there (deployer.permissions, one SelfSubjectAccessReview each)."""
    from deployer.background import Background
    from deployer.permissions import SHIP_RULES
    from deployer.tools import access, apiserver

    config, state = ctx.config, ctx.state
    if state.access_check is not None or state.deploy is None:
        return
    namespace, reachable = state.deploy.namespace, state.cluster_check

    def ask() -> list[tuple[str, str, str]] | None:
        if reachable is not None and reachable.result() is not None:
            return None  # said by the reachability check
        return access.denied(
            apiserver.kubeconfig_path(config.kubeconfig), config.context, namespace, SHIP_RULES
        )

    state.access_check = Background(ask, name="access-check")


def _cluster_answers(ctx: Ctx, before: str) -> None:
    """Stop before `before` (building, pushing) when the cluster the ship deploys to cannot be reached, or
    refuses the identity something a ship needs: it would only fail at the deploy stage, after the builds
    and pushes, maybe with half a release."""
    check = ctx.state.cluster_check
    reason = check.result() if check is not None else None
    if reason is not None:
        raise errors.EnvironmentMissing(
            f"{reason}; stopped before {before}",
            hint="start the local cluster with `e2e/cluster up`, or pick another with --env/--kubeconfig; "
            "`deployer doctor` checks everything a ship needs",
        )
    access = ctx.state.access_check
    refused = access.result() if access is not None else None
    if refused:
        namespace = ctx.state.namespace
        what = ", ".join(
            f"{verb} {(group + '/') if group else ''}{resource}" for verb, group, resource in refused
        )
        raise errors.EnvironmentMissing(
            f"the cluster identity may not {what} in namespace {namespace!r}; stopped before {before}",
            hint=f"grant it in the Role bound to this identity in {namespace!r} (README 'Your own registry "
            "and cluster': the Role to give CI), or ship with another --kubeconfig/--env",
        )


# --- test, build, push ---------------------------------------------------------------------------------


def step_test(ctx: Ctx) -> StepResult | dict[str, Any]:
    from deployer import build

    config, state = ctx.config, ctx.state
    if config.test_variant not in state.variants:
        return StepResult.skipped("test", f"the config has no {config.test_variant!r} variant")
    output: list[str] = []  # what the test run printed (BuildKit lines are the build, not the tests)
    show = _tool_stream(ctx)

    def take(line: str) -> None:
        if not _BUILDKIT_LINE.match(line) and not line.startswith("build cache: "):
            output.append(line)
            # The builds are done and the tests run: the CPU the import needs is now mostly free.
            preload_cluster_modules(state)
        show(line)

    try:
        with overall_deadline(ctx, "the test variant's build and run"):
            result = build.test(
                state.service,
                state.config,
                config.test_variant,
                progress=take,
                session=docker_session(state),
                source=state.source,
                deadline=ctx.deadline,
                push_cache=False,  # pushed off the critical path, once the tests passed (ship.chores)
            )
    except errors.TestVariantFailed as e:
        # deployer.build gives the output tail as evidence, the command that reproduces the run as
        # next_command, and details["tests"] for the reports; the evidence shown is the failing tests.
        e.evidence = _failure_excerpt(output, list(e.evidence))
        e.message = e.message.splitlines()[0].split("; last ")[0]
        raise
    # the tests passed: a fresh runner's next test build may reuse this one's layers
    chores.queue_cache_push(ctx, "test", result.variant, result.cache_images)
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


def _build_production(ctx: Ctx, progress: Callable[[str], None]) -> Any:
    from deployer import build

    state, where = ctx.state, ctx.config.where()
    # the built-in environment keeps build's own defaults ($DEPLOYER_REGISTRY, $DEPLOYER_NAMESPACE)
    elsewhere = (
        {} if where.builtin else {"registry_host": where.registry.host, "namespace": where.registry.namespace}
    )
    built = build.build(
        state.service,
        state.config,
        state.deploy.variant,
        source=state.source,
        progress=progress,
        **elsewhere,
        session=docker_session(state),
        deadline=ctx.deadline,
        # tagged for the push by the build itself (these tags stay local until the tests passed), so the
        # push stage starts no `docker tag`; a ship that stops before its push removes them
        push_tagged=True,
    )
    state.cleanups.append(lambda: _untag_unless_pushed(ctx, built))
    return built


def _untag_unless_pushed(ctx: Ctx, built: Any) -> None:
    from deployer.tools import docker
    from deployer.tools.command import ToolFailed

    if ctx.state.image is None:  # the push removes them (or queues their removal) itself
        try:
            docker.untag(list(built.references))
        except (ToolFailed, errors.EnvironmentMissing):
            return  # local tags only: the next ship's build moves them


def start_production_build(ctx: Ctx) -> None:
    """Build the production image while the test variant builds and runs: nothing is pushed before the
    tests pass (push waits for them), but the build no longer waits for the test run. Its output is
    shown under the build stage; a failed test stops it (run() stops every tool still running). Without
    a test run the build stage builds it; either way not before the cluster is known to answer."""
    from deployer.background import Background, Relay

    config, state = ctx.config, ctx.state
    if state.production_build is not None or config.test_variant not in state.variants:
        return
    _cluster_answers(ctx, "building anything")
    docker_session(state)  # made here, not in the thread: the test build uses the same session
    relay = Relay()
    state.production_build = (Background(lambda: _build_production(ctx, relay), name="build"), relay)


def step_build(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    _cluster_answers(ctx, "building the production image")  # when there was no test stage
    with overall_deadline(ctx, "the production build"):
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
    details: dict[str, Any] = {"images": [image]}
    summary = f"{built.references[0]} ({built.size_mb:.0f} MB)"
    if state.production_build is not None:
        # built while the test stage ran: this stage's own time is only the wait for it
        details["background"] = [
            {
                "name": "production build",
                "status": "ok",
                "seconds": round(built.duration, 3),
                "overlapped": ["test"],
                "lines": [],
            }
        ]
        summary += f", built in {built.duration:.1f}s beside the test stage"
    return details | {"summary": summary}


def step_push(ctx: Ctx) -> dict[str, Any]:
    from deployer import build
    from deployer.chart import ImageRef

    state = ctx.state
    with overall_deadline(ctx, "the push"):
        pushed = build.push(
            state.built,
            progress=_tool_stream(ctx),
            session=docker_session(state),
            deadline=ctx.deadline,
            push_cache=False,  # off the critical path (ship.chores), as the local tags' removal
            untag=False,
        )
    state.image = ImageRef(repository=pushed.repository, digest=pushed.digest, tag=pushed.tags[0])
    chores.queue_cache_push(ctx, "push", pushed.image.variant, pushed.image.cache_images)
    chores.queue_untag(ctx, "push", pushed.image.references)
    chores.queue_engine_tidy(ctx, "push", pushed.service)
    state.chores.release()  # the image is in the registry: the engine and the network are free
    image = {
        "variant": pushed.image.variant,
        "repository": pushed.repository,
        "tags": list(pushed.tags),
        "digest": pushed.digest,
        "pushed": True,
    }
    return {"images": [image], "summary": pushed.reference}
