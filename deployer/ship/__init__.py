"""`deployer ship <service>`: the ship workflow, as a list of small steps over one shared state.

    compile → test → build → push → chart → deploy → watch → smoke        (then: report, JUnit, exit code)

Each step is a short adapter: it takes what earlier steps left in `ShipState`, calls the module that owns
the work (blubber, deployer.build, deployer.chart, deployer.tools.helm, deployer.rollout, deployer.smoke),
puts what later steps and the report need back into the state and its `details`, and reports progress through
`ctx.progress`. Failures are the owning module's `UserError`s; the runner (deployer.workflow) turns them
into results, and the report, the JUnit file, the summary and the exit code are all read from those.

Ordering that matters:
- the production image is built while the test variant builds and runs, but nothing is pushed before
  the tests pass, so a failing test pushes nothing (and stops that build);
- the chart is rendered with a stand-in image and linted beside the test stage; the chart stage renders
  it with the pushed digest, packages it in-process and pushes it (nothing deployable before the tests
  passed and the image is pushed), so only what needs the digest sits between push and deploy;
- the release lock (deployer.release.lock) is taken (in the background, during the push and chart
  stages) before `helm upgrade` and held through watch and smoke, and only while holding it is a
  release stuck in pending-* (an interrupted run) repaired;
- a failed rollout is rolled back (or a first install uninstalled) inside the watch step, and the old
  version is watched back to healthy, so "rolled back" in the report means "serves again";
- what no stage waits for (the registry build cache, the engine clean-up) is queued as it becomes
  possible, held until the image is pushed, runs beside the later stages and is joined after the last
  one (`deployer.ship.chores`); the report records it under the stage that queued it.

The steps live in `deployer.ship.image` (compile, test, build, push) and `deployer.ship.cluster` (chart,
deploy, watch, smoke); `deployer.ship.context` holds what they share (config, state, the tools made once
per ship, the deadline). This module puts them in order and runs them.

Never prints: all output goes through the display (deployer.reporting.display) the caller passes in.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deployer.errors import ExitCode
from deployer.ship import chores
from deployer.ship.cluster import (
    start_chart_lint,
    start_release_lock,
    step_chart,
    step_deploy,
    step_smoke,
    step_watch,
)
from deployer.ship.context import STAGES, TITLES, Ctx, ShipConfig, ShipState
from deployer.ship.image import (
    start_access_check,
    start_cluster_check,
    start_cluster_import,
    start_cluster_import_without_tests,
    start_docker_session,
    start_production_build,
    step_build,
    step_compile,
    step_push,
    step_test,
)
from deployer.workflow import Status, Step, StepContext, WorkflowRun

__all__ = [
    "STAGES",
    "ShipConfig",
    "ShipState",
    "build_steps",
    "run",
    "step_build",
    "step_chart",
    "step_compile",
    "step_deploy",
    "step_push",
    "step_smoke",
    "step_test",
    "step_watch",
]


def build_steps() -> list[Step]:
    """The ship's steps in order, each with the work it starts in the background for later steps, so the
    order read here is the order things happen (the seam tests replace)."""
    steps = [
        # the engine check and registry login, and whether the cluster answers, overlap the compile
        _step("compile", step_compile, before=(start_docker_session, start_cluster_check),
              after=(start_cluster_import_without_tests, start_access_check)),
        # the production image builds beside the test run, and the chart is rendered (with a stand-in
        # image) and linted; the Kubernetes client's import starts once the test run prints (its builds
        # are done: the CPU is free), see step_test
        _step("test", step_test, before=(start_production_build, start_chart_lint)),
        _step("build", step_build),
        # the release lock (and the release's status) is taken while the image and then the chart are
        # pushed (the tests passed and the image is built: only a push can still stop the ship); the
        # Kubernetes client's import starts here if the test run printed nothing
        _step("push", step_push, before=(start_cluster_import, start_release_lock)),
        _step("chart", step_chart, before=(start_release_lock,)),  # started already, unless no push step
        _step("deploy", step_deploy),
        _step("watch", step_watch),
        _step("smoke", step_smoke),
    ]  # fmt: skip
    return steps


def _step(
    name: str,
    body: Callable[[Ctx], Any],
    *,
    before: Sequence[Callable[[Ctx], None]] = (),
    after: Sequence[Callable[[Ctx], None]] = (),
) -> Step:
    """Step `name`: what it starts in the background first (`before`), its own work, then what it starts
    once that succeeded (`after`)."""

    def run_step(ctx: Ctx) -> Any:
        for start in before:
            start(ctx)
        result = body(ctx)
        for start in after:
            start(ctx)
        return result

    return Step(name, run_step, TITLES[name])


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
            f"--namespace {state.namespace}{_helm_tls(config)}"
        )
    return commands


def _helm_tls(config: ShipConfig) -> str:
    tls = config.where().registry.tls
    if tls.is_plain_http:
        return " --plain-http"
    return f" --ca-file {tls.ca_file}" if tls.ca_file else ""


def run(
    config: ShipConfig,
    *,
    steps: Sequence[Step] | None = None,
    display: Any = None,
    clock: Callable[[], float] | None = None,
) -> int:
    """Ship `config.service`: run the steps, write the reports asked for, return the exit code."""

    from deployer import workflow
    from deployer.reporting import junit, report
    from deployer.reporting.display import make_display
    from deployer.tools import command

    display = display or make_display(ci=config.ci, color=config.color)
    started_at = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="deployer-ship-") as tmp:
        state = ShipState(workdir=Path(tmp))
        ctx: Ctx = StepContext(config, state, deadline=time.monotonic() + config.timeout)
        display.header(f"ship {config.service} to {config.environment}" + (" [ci]" if config.ci else ""))

        windows = state.windows  # each stage's (start, end), for what ran beside which stage
        finished: list[WorkflowRun] = []

        def sink(event: workflow.Event) -> None:
            if isinstance(event, workflow.StepStarted):
                windows[event.name] = (time.monotonic(), math.inf)  # running
            elif isinstance(event, workflow.StepFinished) and event.result.name in windows:
                windows[event.result.name] = (windows[event.result.name][0], time.monotonic())
            elif isinstance(event, workflow.WorkflowFinished):
                # The summary the display prints and the reports must agree: join the background work
                # and fill in next commands first.
                def say(stage: str, line: str) -> None:
                    display(workflow.StepProgress(stage, line, 0.0))

                joined = chores.finish(event.run, state, windows, ctx.deadline, say)
                finished.append(_with_next_commands(joined, config, state))
                event = workflow.WorkflowFinished(finished[0])
            display(event)

        try:
            outcome = workflow.run(steps or build_steps(), ctx, sink, clock=clock or time.monotonic)
        finally:
            state.chores.abandon()  # a no-op after chores.finish; otherwise nothing starts any more
            for cleanup in reversed(state.cleanups):
                cleanup()
            command.stop_running()  # work started early that the run no longer waits for
        outcome = finished[0] if finished else _with_next_commands(outcome, config, state)
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
