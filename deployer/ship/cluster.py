"""The cluster half of a ship: chart, deploy, watch, smoke (deployer.chart, helm, lock, rollout, smoke).

The chart is rendered with a stand-in image and linted beside the test stage (`start_chart_lint`); the
chart stage renders it again with the pushed digest, packages it in-process and pushes it, so only what
needs the digest is between the image push and `helm upgrade`.

The release lock (deployer.release.lock) is taken in the background during the chart stage, before
`helm upgrade`, and held through watch and smoke; only while holding it is a release stuck in pending-*
(an interrupted run) repaired, and a run that lost it changes nothing more. A failed rollout is rolled
back (or a first install uninstalled) inside the watch step, and the old version is watched back to
healthy, so "rolled back" in the report means "serves again".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from blubber.errors import UserError
from deployer import errors
from deployer.ship.context import (
    Ctx,
    cluster_modules,
    docker_session,
    make_api,
    make_helm,
    overall_deadline,
    seconds_left,
    time_left,
)
from deployer.workflow import StepResult


@dataclass(frozen=True)
class LintedChart:
    """The chart as `helm lint --strict` passed it beside the tests, rendered with a stand-in image."""

    values: Mapping[str, Any]
    started: float  # time.monotonic()
    finished: float


def _name_the_pull_secret(ctx: Ctx) -> None:
    """When the pods pull with the environment's credentials, name their Secret in the deploy config
    (once: the chart stage and the lint beside the tests both render from it)."""
    from deployer import pullsecret

    state = ctx.state
    if pullsecret.NAME in state.deploy.image_pull_secrets or _pull_credentials(ctx) is None:
        return
    named = (*state.deploy.image_pull_secrets, pullsecret.NAME)
    state.deploy = replace(state.deploy, image_pull_secrets=named)


def _render(ctx: Ctx, image: Any) -> dict[str, Any]:
    """The chart's values for `image`, the environment's deploy policy checked first."""
    import blubber
    from deployer import chart as chart_mod
    from deployer import deploy_config

    state = ctx.state
    policy = deploy_config.load_policy(ctx.config.where().environment.policies.deploy)
    return chart_mod.render_values(
        state.deploy,
        blubber.runtime(state.config, state.deploy.variant),
        image,
        policy=policy,
        blubber_file=str(state.service.config),
    )


def start_chart_lint(ctx: Ctx) -> None:
    """Render the service chart with a stand-in image and `helm lint --strict` it in the background, beside
    the test stage (which mostly waits on docker), so the chart stage is left only what needs the image
    digest: the final render, the in-process package and the push. What the render or the lint finds is
    the chart stage's error, as before; nothing is pushed before that stage, so a failing test still
    leaves no chart."""
    from deployer import chart as chart_mod
    from deployer.background import Background

    config, state = ctx.config, ctx.state
    if state.chart_lint is not None or state.deploy is None:
        return

    def lint() -> LintedChart:  # everything in here fails the chart stage, not the one it runs beside
        started = time.monotonic()
        _name_the_pull_secret(ctx)
        deploy = state.deploy
        helm = make_helm(config, deploy)  # lint runs no cluster command: not the cluster steps' helm
        stand_in = chart_mod.stand_in_image(
            config.where().registry.repository(state.service.name), deploy.variant
        )
        values = _render(ctx, stand_in)
        version = chart_mod.chart_version(values=values)
        rendered = chart_mod.write_chart(
            state.workdir / "linted", deploy.release, version, values, app_version=stand_in.tag
        )
        helm.lint(rendered.path, timeout=seconds_left(ctx, deploy.timeouts.helm))
        return LintedChart(values, started, time.monotonic())

    state.chart_lint = Background(lint, name="chart-lint")


def step_chart(ctx: Ctx) -> dict[str, Any]:
    from deployer import chart as chart_mod
    from deployer.background import beside

    state = ctx.state
    start_chart_lint(ctx)  # normally started with the test stage
    if not state.chart_lint.done:
        ctx.progress("waiting for helm lint (started with the test stage)")
    if not state.chart_lint.wait(ctx.remaining()):  # its helm is stopped when the ship ends
        raise errors.Timeout(
            f"the ship's --timeout of {ctx.config.timeout:.0f}s ran out during helm lint",
            hint="raise it with --timeout, or look at what was still running in the output above",
        )
    with overall_deadline(ctx, "helm lint"):
        linted = state.chart_lint.result()  # the render's and the lint's errors, raised here
    values = _render(ctx, state.image)
    version = chart_mod.chart_version(values=values)
    rendered = chart_mod.write_chart(
        state.workdir / "chart", state.deploy.release, version, values, app_version=state.image.tag
    )
    if not chart_mod.lint_covers(linted.values, values):  # only if the config changed in between
        ctx.progress("the values differ from the linted ones beyond the image; helm lint again")
        with overall_deadline(ctx, "helm lint"):
            state.helm.lint(rendered.path, timeout=seconds_left(ctx, state.deploy.timeouts.helm))
    ctx.progress(f"rendered {rendered.name} {version} for {state.image.digest[:19]}; package, push")
    archive = chart_mod.package(rendered, state.workdir)
    registry = ctx.config.where().registry
    # The push stays in this stage: pushed beside helm upgrade (which then installed the local package),
    # it made helm upgrade slower by more than it took off this stage on 2 busy cores (README, benchmarks).
    published = chart_mod.push_package(
        rendered, archive, registry=registry, credentials=_chart_credentials(ctx)
    )
    state.chart, state.chart_archive = published, archive
    stages = beside(linted.started, linted.finished, state.windows)
    return {
        "chart": {
            "name": published.name,
            "version": published.version,
            "ref": published.reference,
            "digest": published.digest,
        },
        # rendered with a stand-in image and linted while earlier stages ran (see start_chart_lint)
        "background": [
            {
                "name": "chart render and helm lint",
                "status": "ok",
                "seconds": round(linted.finished - linted.started, 3),
                "overlapped": stages,
                "lines": [],
            }
        ],
        "summary": f"{published.pinned}; linted in {linted.finished - linted.started:.1f}s beside "
        + (", ".join(stages) or "no stage"),
    }


def _chart_credentials(ctx: Ctx) -> Any:
    """What the chart is pushed with: docker's login of this ship when the charts live on the image
    registry (as they do unless deployer.yaml says otherwise), else the environment's credentials."""
    from deployer.tools import registry as registry_tool

    registry = ctx.config.where().registry
    host = registry.charts.removeprefix("oci://").split("/", 1)[0]
    if host == registry.host:
        return docker_session(ctx.state).login(host)
    return registry_tool.credentials(host=host)


def start_release_lock(ctx: Ctx) -> None:
    """Make the cluster tools (helm now, the API client in the background), then take the release lock and
    read the release's status in the background while the chart is rendered and pushed; the deploy step
    waits for both (and reports a refused lock). Released by run() whatever happens, also when the chart
    stage fails. The later steps use `state.helm` and `state.api` as made here."""
    from deployer.background import Background

    config, state = ctx.config, ctx.state
    if state.lock_early is not None:
        return
    if state.helm is None:  # made here, not in the thread: the chart stage uses it at the same time
        state.helm = make_helm(config, state.deploy)
    helm = state.helm

    def take() -> tuple[Any, Any]:
        cluster_modules(state)
        from deployer.release.lock import ReleaseLock

        if state.api is None:
            state.api = make_api(config, state)
        lock = ReleaseLock(
            state.api, state.namespace, state.release, command=f"deployer ship {config.service}"
        )
        lock.__enter__()  # held through watch and smoke
        state.lock = lock
        return lock, helm.status(state.release, state.namespace)

    early = state.lock_early = Background(take, name="release-lock")

    def release() -> None:
        try:
            lock, _ = early.result()
        except BaseException:  # noqa: BLE001 - not taken; the deploy step (if it ran) reported why
            return
        lock.__exit__(None, None, None)

    state.cleanups.append(release)


def _pull_credentials(ctx: Ctx) -> Any:
    """What the pods pull with (deployer.pullsecret.credentials); None for the built-in local stack."""
    from deployer import pullsecret

    return pullsecret.credentials(ctx.config.where())


def step_deploy(ctx: Ctx) -> dict[str, Any]:
    state = ctx.state
    start_release_lock(ctx)  # normally started with the chart stage
    _, status = state.lock_early.result()
    _still_holding_the_lock(ctx, "before helm upgrade")
    creds = _pull_credentials(ctx)
    if creds is not None:
        from deployer import pullsecret

        pullsecret.ensure(state.api, state.namespace, ctx.config.where().registry.host, creds)
    helm = state.helm
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
    chart = state.chart
    # The chart stage's archive is the pushed chart's layer, byte for byte: installed from it, helm does
    # not pull back what was pushed a moment ago (0.13 s median of helm template, oci vs file, here)
    local = state.chart_archive
    how = " (from the archive just pushed there)" if local else ""
    ctx.progress(f"helm upgrade --install {release} {chart.reference} --version {chart.version}{how}")
    tls = ctx.config.where().registry.tls
    with overall_deadline(ctx, "helm upgrade"):
        deployed = helm.upgrade_install(
            release,
            namespace,
            local or chart.reference,
            version=None if local else chart.version,
            plain_http=tls.is_plain_http and not local,
            ca_file=None if local else tls.ca_file,
            timeout=seconds_left(ctx, state.deploy.timeouts.helm),
            description=f"deployer ship {state.image.pinned}",
            # the release lock made sure the namespace exists (created it, or may not read namespaces)
            create_namespace=False,
        )
    state.revision = deployed.revision
    start_test_pods(ctx)  # they start beside the watch; the smoke step tells them to go
    state.generation = _deployment_generation(ctx)
    details: dict[str, Any] = {"revision": deployed.revision, "summary": f"revision {deployed.revision}"}
    if recovery is not None and recovery.action != "none":
        details["recovered"] = recovery.describe()
    return details


def _deployment_generation(ctx: Ctx) -> int | None:
    """The generation helm's apply gave the Deployment, so the watch never judges an older spec."""
    from kubernetes import client

    from deployer.release.ref import deployment_generation

    state = ctx.state
    return deployment_generation(client.AppsV1Api(state.api), state.namespace, state.release)


def _watch_timeout(ctx: Ctx) -> tuple[float, bool]:
    """(seconds to watch, whether the overall --timeout is what limits it)."""
    rollout = float(ctx.state.deploy.timeouts.rollout)
    left = ctx.remaining()
    if left is not None and left < rollout:
        return left, True
    return rollout, False


def step_watch(ctx: Ctx) -> dict[str, Any]:
    # the background import of the Kubernetes client finished before the deploy step (make_api waits)
    from deployer.rollout.watcher import watch_rollout

    config, state = ctx.config, ctx.state
    timeout, overall = _watch_timeout(ctx)
    verdict = watch_rollout(
        state.api,
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
    diagnosis, where, evidence = verdict.diagnosis, verdict.where(state.release), verdict.evidence()
    ctx.progress(f"rollout failed: {where}: {diagnosis}; rolling back")
    rollback = _roll_back(ctx)
    timed_out = verdict.reason == "Timeout"
    err_type = errors.Timeout if timed_out and overall else errors.RolloutFailed
    raise err_type(
        f"{where}: {diagnosis}; {rollback['detail']}",
        hint=verdict.hint or None,
        evidence=evidence,
        next_command=f"deployer status {config.service}",
        details={
            "rollout": {
                "verdict": "timeout" if timed_out else "failed",
                "reason": diagnosis,
                "rolled_back": rollback["action"] != "none",
                "rollback": rollback,
                "evidence": evidence,
            },
            **_traced(ctx, lambda origin, configs: origin.for_rollout(verdict, configs)),
        },
    )


def _traced(ctx: Ctx, find: Any) -> dict[str, Any]:
    """`{"origin": …}`: the configuration line most likely behind a failure (deployer/origin.py), for the
    report, JUnit and summary; `{}` when none fits. Tracing never hides the failure it explains."""
    from deployer import origin

    state = ctx.state
    try:
        found = find(origin, origin.Configs(state.deploy, state.config, ctx.config.where()))
    except Exception:  # noqa: BLE001 - an explanation is a bonus: never let it replace the failure itself
        return {}
    return {"origin": found.as_dict()} if found is not None else {}


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
    """Return the release to what served before (or remove a first install); verify the old version, with
    the same rollback as `deployer rollback`."""
    from deployer.release.rollback import roll_back_and_watch
    from deployer.rollout.watcher import watch_rollout

    state = ctx.state
    helm = state.helm
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
        ctx.progress(f"helm rollback {release} {state.previous_revision}; then watching the old version")
        verdict = roll_back_and_watch(
            helm,
            namespace,
            release,
            state.previous_revision,
            watch=lambda namespace, name, **kwargs: watch_rollout(state.api, namespace, name, **kwargs),
            generation=lambda: _deployment_generation(ctx),
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


def _after_failed_smoke(ctx: Ctx) -> dict[str, Any]:
    """Staging is shared: a revision that fails its smoke checks is rolled back to the last good one
    (checked to serve again, as after a failed watch) unless deploy.yaml says `smoke.onFailure: keep`.
    The report's `rollout` says which happened."""
    if ctx.state.deploy.smoke_on_failure == "keep":
        kept = {"action": "none", "to_revision": None, "verified": None}
        rollback = kept | {"detail": "the failing revision was kept (smoke.onFailure: keep)"}
    else:
        _still_holding_the_lock(ctx, "before rolling back the failed smoke checks")
        ctx.progress("smoke checks failed; rolling back (smoke.onFailure: keep would keep this revision)")
        rollback = _roll_back(ctx)
    return {
        "verdict": "healthy",
        "reason": None,
        "rolled_back": rollback["action"] != "none",
        "rollback": rollback,
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


def start_test_pods(ctx: Ctx) -> None:
    """Create the chart's helm test pods in the background, right after `helm upgrade`, so their sandbox
    and bash start while the rollout is watched; each waits for the go step_smoke gives once the rollout
    is healthy (deployer.tools.testpod). Those never told to go are deleted when the ship ends."""
    from deployer.background import Background

    config, state = ctx.config, ctx.state
    if not (config.smoke and config.early_test_pods and state.deploy.helm_test):
        return
    helm, api, release, namespace = state.helm, state.api, state.release, state.namespace
    left = ctx.remaining()
    # How long a pod waits for its go: the rest of the ship (a pod of a ship that died fails by itself).
    wait = int(left) + 1 if left is not None else state.deploy.timeouts.rollout + state.deploy.timeouts.smoke

    def prepare() -> Any:
        from deployer.smoke import stuck_before_start
        from deployer.tools import testpod

        hooks = helm.get_hooks(release, namespace)
        return testpod.prepare(api, namespace, hooks, wait_seconds=wait, cannot_start=stuck_before_start)

    early = state.test_pods = Background(prepare, name="smoke-test-pods")

    def discard() -> None:
        if not early.done:  # never wait on the API at the end of a ship (Ctrl-C): the pod times out
            return
        try:
            pods = early.result()
        except Exception:  # noqa: BLE001 - not created; the smoke step (if it ran) said why
            return
        if not isinstance(pods, str):
            pods.discard()

    state.cleanups.append(discard)


def _early_test_pods(ctx: Ctx, say: Any) -> Any:
    """The test pods start_test_pods created, or None (said why) when `helm test` runs them."""
    if ctx.state.test_pods is None:
        return None
    try:
        pods = ctx.state.test_pods.result()
    except UserError as e:  # `helm test` creates them again, and says so if it cannot either
        say(f"the test pods were not created early ({e.message}); helm test instead")
        return None
    if isinstance(pods, str):
        say(f"{pods}: helm test instead")
        return None
    return pods


def step_smoke(ctx: Ctx) -> StepResult | dict[str, Any]:
    from deployer import smoke
    from deployer.tools import portforward

    config, state = ctx.config, ctx.state
    if not config.smoke:
        return StepResult.skipped("smoke", "skipped (--skip-smoke)")
    deploy = state.deploy
    if not deploy.helm_test and not deploy.smoke_checks:
        return StepResult.skipped("smoke", "no smoke checks configured (deploy.yaml smoke:)")
    _still_holding_the_lock(ctx, "before the smoke checks")
    helm, api = state.helm, state.api
    # the service's pods, not the test pods (they carry the same instance label)
    selector = f"app.kubernetes.io/instance={deploy.release},app.kubernetes.io/component!=test"
    said = threading.Lock()  # helm test runs on its own thread beside the HTTP checks (smoke.run_checks)

    def say(line: str) -> None:
        with said:
            ctx.progress(line)

    def helm_test(release: str, namespace: str, timeout: int) -> str:
        from deployer.tools.kube import KubeForbidden

        early = _early_test_pods(ctx, say)
        if early is not None:
            say(f"go: test pod {', '.join(early.names)} (created during the watch)")
            try:
                with overall_deadline(ctx, "the helm test pod"):
                    return early.run(time_left(ctx, timeout))
            except KubeForbidden as e:
                say(f"{e.message}; helm test instead")
            finally:
                for line in early.timings:
                    say(line)
        say("helm test --logs")
        with overall_deadline(ctx, "helm test"):
            return helm.test(release, namespace, timeout=seconds_left(ctx, timeout))

    def http_get(path: str, timeout: float) -> tuple[int, bytes]:
        pod = portforward.ready_pod(api, deploy.namespace, selector)
        say(f"GET {path} on pod {pod}:{deploy.port}")
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
        failed = e.results
        e.details = {
            "smoke": _smoke_entries(failed),
            "rollout": _after_failed_smoke(ctx),
            **_traced(ctx, lambda origin, configs: origin.for_smoke(failed, configs)),
        }
        e.message = f"{e.message}; {e.details['rollout']['rollback']['detail']}"
        raise
    # promote (deployer.release.promote) takes only a digest recorded as passed in its source environment
    from deployer.release.passed import record

    recorded = record(state.api, deploy.namespace, deploy.release, state.image.digest, config.environment,
                      revision=state.revision)  # fmt: skip
    return {
        "smoke": _smoke_entries(results),
        "passed": recorded,
        "summary": f"{len(results)} of {len(results)} checks passed",
    }
