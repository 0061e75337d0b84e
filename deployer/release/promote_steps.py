"""The `deployer promote` workflow: the digest tested in A, copied by digest into B and shipped there.

    source → copy → deploy → watch → smoke        (then: report, JUnit, exit code; as `deployer ship`)

- source: read the release in A's namespace (helm status, the Deployment, the pass records) and decide
  what may be promoted (`deployer.release.promote.decide`: deployed, healthy, smoke-passed, or --force);
- copy: B's deploy policy first (nothing lands in B that B refuses), then the image and the chart A runs
  into B's registry by digest (`deployer.tools.registry_api.copy_image`: blobs mounted on the same
  registry, streamed between registries; never a pull, never a rebuild), and B's values;
- deploy, watch, smoke: the ship's own steps (`deployer.ship.cluster`), with B's target, namespace,
  release lock, pull Secret, rollback on failure; a pass is recorded in B as after a ship.

Never prints: all output goes through the display the caller passes in.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deployer.errors import DeployFailed, PushFailed
from deployer.release.promote import Decision, SourceRelease, decide, values_overlay
from deployer.ship.cluster import step_deploy, step_smoke, step_watch
from deployer.ship.context import Ctx, ShipConfig, ShipState, make_helm
from deployer.workflow import Step, StepContext, WorkflowRun

__all__ = ["STAGES", "PromoteConfig", "Promotion", "build_steps", "run"]

STAGES = ("source", "copy", "deploy", "watch", "smoke")
TITLES = {
    "source": "find the digest deployed, healthy and smoke-passed in the source environment",
    "copy": "copy image and chart by digest into the target environment",
    "deploy": "helm upgrade --install",
    "watch": "watch the rollout",
    "smoke": "smoke checks",
}


@dataclass(frozen=True)
class PromoteConfig:
    """Everything `promote` was asked to do, decided once from the command line."""

    service: str  # the service directory (or example name): its deploy.yaml names the release
    source: Any  # deployer.target.Target of --from
    target: Any  # deployer.target.Target of --to
    release: str | None = None  # --release: both environments' release name
    namespace: str | None = None  # --namespace: where the release runs in the source environment
    force: bool = False
    timeout: float = 600.0
    ci: bool = False
    color: bool = False
    report_path: Path | None = None
    junit_path: Path | None = None

    def ship_config(self) -> ShipConfig:
        """The config the ship's cluster steps read: the target environment, smoke checks on."""
        return ShipConfig(
            service=self.service,
            environment=self.target.name,
            kubeconfig=self.target.kubeconfig,
            target=self.target,
            timeout=self.timeout,
            ci=self.ci,
            color=self.color,
        )


@dataclass
class Promotion:
    """What the source step found, for the copy step and the report."""

    source: SourceRelease | None = None
    decision: Decision | None = None
    chart_version: str = ""
    tag: str = ""  # the image's human tag in A (its chart's appVersion), reused in B
    uid: int | None = None  # the runtime user the pods run as (B's policy checks it)


# --- source ----------------------------------------------------------------------------------------------


def step_source(ctx: Ctx, promote: PromoteConfig, found: Promotion) -> dict[str, Any]:
    from deployer.release import passed, ref
    from deployer.release.status import status
    from deployer.target.deploy import service_deploy

    a, b = promote.source, promote.target
    # the release as A resolves it (A's namespace rule and deploy defaults, as a ship to A did)
    tgt = ref.release_ref(promote.service, where=a, namespace=promote.namespace, release=promote.release)
    svc, release, namespace = tgt.service, tgt.release, tgt.namespace
    ctx.state.service = svc
    # the service as B deploys it: B's deploy policy and defaults, B's namespace rule, the same release
    deploy_b = service_deploy(b, svc.directory, release=release)
    _not_the_same_release(a, b, namespace, deploy_b.namespace, release)
    ctx.progress(f"reading release {release} in {namespace} ({a.name})")
    cluster = ref.connect(tgt)
    current = status(tgt, cluster)
    deployment = ref.read_deployment(tgt, cluster)
    src = SourceRelease(
        environment=a.name,
        namespace=namespace,
        release=release,
        helm_status=current.status,
        image=current.image,
        healthy=current.healthy,
        ready=f"{current.ready}/{current.desired}",
        passes=tuple(passed.parse(deployment.metadata.annotations)) if deployment is not None else (),
    )
    decision = decide(src, force=promote.force, service=promote.service)
    found.source, found.decision = src, decision
    found.chart_version = current.chart.removeprefix(f"{release}-") if current.chart else ""
    if not found.chart_version or found.chart_version == current.chart:
        raise DeployFailed(
            f"cannot tell which chart release {release} in {namespace} runs (helm says {current.chart!r})",
            hint=f"ship it with deployer first: deployer ship {promote.service} --env {a.name}",
        )
    found.tag = current.app_version
    ctx.state.config = _blubber_config(svc, b)
    found.uid = _run_as_user(deployment)
    ctx.state.deploy = deploy_b
    why = (
        f"passed its smoke checks in {a.name} at revision {decision.passed.revision}"
        if decision.passed is not None
        else "forced: " + "; ".join(decision.forced)
    )
    ctx.progress(f"{decision.pinned}: {why}")
    return {
        "source": {
            "environment": a.name,
            "namespace": namespace,
            "release": release,
            "revision": current.revision,
            "image": decision.pinned,
            "chart": current.chart,
            "passed": decision.passed.to_json() if decision.passed else None,
            "forced": list(decision.forced),
        },
        "summary": f"{decision.digest} from {a.name} ({why})",
    }


def _not_the_same_release(a: Any, b: Any, namespace_a: str, namespace_b: str, release: str) -> None:
    """Two environments that resolve to one release (same cluster, same namespace) would have the promote
    replace what it promotes: a deployer.yaml mistake, said before anything is read or copied."""
    from deployer.errors import ConfigError

    if (str(a.kubeconfig), a.context, namespace_a) != (str(b.kubeconfig), b.context, namespace_b):
        return
    raise ConfigError(
        f"{a.name} and {b.name} resolve to the same release: {release} in namespace {namespace_a} of the "
        "same cluster; a promote would replace what it promotes",
        file=b.environment.file,
        line=b.environment.line,
        path=f"environments.{b.name}.cluster.namespace",
        hint='give the environments different namespace rules (e.g. namespace: "{release}-production")',
    )


def _blubber_config(svc: Any, target: Any) -> Any:
    """The service's blubber config, for what the ship's steps read of it beside the chart (the
    configuration line a failed rollout is traced to); None when it no longer loads: the promote deploys
    the chart A ran, not today's blubber.yaml."""
    import blubber
    from deployer.errors import UserError

    try:
        return blubber.load(svc.config, policy=target.environment.policies.blubber_file())
    except UserError:
        return None


def _run_as_user(deployment: Any) -> int | None:
    """The uid the release's pods run as (the chart sets it on the pod's securityContext)."""
    if deployment is None:
        return None
    spec = deployment.spec.template.spec
    uid = spec.security_context.run_as_user if spec.security_context else None
    return int(uid) if uid is not None else None


# --- copy ------------------------------------------------------------------------------------------------


def _client(registry: Any) -> Any:
    from deployer.tools import credentials
    from deployer.tools.registry_api import RegistryClient

    return RegistryClient(registry, credentials.read(registry.credentials, registry.host))


def _chart_registry(target: Any) -> Any:
    """The registry that holds the environment's charts (its chart repository's host)."""
    return replace(target.registry, host=target.chart_host)


def _chart_path(target: Any, name: str) -> str:
    """`staging/charts/node-hello`: the chart's repository path inside its registry."""
    return f"{target.chart_repository.removeprefix(f'oci://{target.chart_host}/').rstrip('/')}/{name}"


def _copy(what: str, fn: Callable[[], tuple[str, dict[str, int]]], digest: str) -> dict[str, int]:
    """Run one copy; a registry that refuses the target's credentials is a failed push (exit 14), and the
    copy must arrive with the digest it left with (a registry that rewrote the manifest is no promotion)."""
    from deployer.tools.registry_api import RegistryAuthFailed

    try:
        copied, counts = fn()
    except RegistryAuthFailed as err:
        raise PushFailed(f"copying {what} failed: {err.message}", hint=err.hint) from err
    if copied != digest:
        raise PushFailed(f"copying {what} gave digest {copied}, not {digest}: the registry changed it")
    return counts


def step_copy(ctx: Ctx, promote: PromoteConfig, found: Promotion) -> dict[str, Any]:
    from deployer import deploy_config, pullsecret
    from deployer.chart import ImageRef, PublishedChart, dump_yaml
    from deployer.errors import EnvironmentMissing
    from deployer.tools.registry_api import copy_image

    a, b, state = promote.source, promote.target, ctx.state
    decision, release = found.decision, state.release
    assert decision is not None and state.deploy is not None
    _may_ship_in(ctx)
    image_a = _client(a.registry)
    image_b = _client(b.registry)
    src_repo = decision.repository.removeprefix(f"{a.registry.host}/")
    if src_repo == decision.repository:
        raise DeployFailed(
            f"{decision.pinned} is not in {a.name}'s registry {a.registry.host}: not shipped by deployer",
            hint=f"ship it there first: deployer ship {promote.service} --env {a.name}",
        )
    name = src_repo.removeprefix(f"{a.registry.namespace}/")
    dst_repo = f"{b.registry.namespace}/{name}"
    repository_b = f"{b.registry.host}/{dst_repo}"
    # B's policy before anything lands in B. The runtime checks that need blubber.yaml (runs.insecurely)
    # were made when the image was built; what the release runs shows the uid.
    deploy_config.enforce(
        state.deploy,
        deploy_config.load_policy(b.environment.policies.deploy),
        uid=found.uid if found.uid is not None else -1,  # unknown: only uid 0 is refused
        insecure=False,
        image_repository=repository_b,
    )
    tag = _tag(repository_b, decision.digest, found.tag)
    ctx.progress(f"copy {decision.pinned} → {repository_b}:{tag}")
    image_counts = _copy(
        f"{decision.pinned} to {repository_b}",
        lambda: copy_image(image_a, src_repo, decision.digest, image_b, dst_repo, tag),
        decision.digest,
    )
    chart_a, chart_b = _client(_chart_registry(a)), _client(_chart_registry(b))
    chart_src, chart_dst = _chart_path(a, release), _chart_path(b, release)
    chart_digest = chart_a.digest(chart_src, found.chart_version)
    if chart_digest is None:
        raise EnvironmentMissing(
            f"chart {a.chart_host}/{chart_src}:{found.chart_version}, which {release} runs in {a.name}, is "
            "no longer in the registry",
            hint=f"was it pruned? ship it to {a.name} again: deployer ship {promote.service} --env {a.name}",
        )
    ctx.progress(f"copy chart {release} {found.chart_version} → {b.chart_repository}")
    chart_counts = _copy(
        f"chart {release} {found.chart_version}",
        lambda: copy_image(chart_a, chart_src, chart_digest, chart_b, chart_dst, found.chart_version),
        chart_digest,
    )
    pull_secrets = list(state.deploy.image_pull_secrets)
    if not b.builtin and image_b.creds is not None and image_b.creds.user:
        pull_secrets.append(pullsecret.NAME)  # the deploy step applies it from B's credentials
    overlay = values_overlay(
        repository_b, decision.digest, tag, pull_secrets=pull_secrets, deploy=state.deploy
    )
    values_file = state.workdir / f"values-{b.name}.yaml"
    values_file.write_text(dump_yaml(overlay), encoding="utf-8")
    helm = make_helm(ctx.config, state.deploy)
    if chart_b.creds is not None and chart_b.creds.user:  # helm pulls the chart from B's registry
        tls = b.registry.tls
        helm.registry_login(
            b.chart_host, chart_b.creds.user, chart_b.creds.password, insecure=tls.is_plain_http,
            ca_file=tls.ca_file,
        )  # fmt: skip
    described = f"deployer promote {repository_b}@{decision.digest} from {a.name}"
    state.helm = _WithValues(helm, values_file, described)
    state.image = ImageRef(repository_b, decision.digest, tag)
    state.chart = PublishedChart(
        release, found.chart_version, values_file, f"{b.chart_repository.rstrip('/')}/{release}", chart_digest
    )
    return {
        "images": [
            {"variant": state.deploy.variant, "repository": repository_b, "tags": [tag],
             "digest": decision.digest, "pushed": True},
        ],
        "chart": {"name": release, "version": found.chart_version, "ref": state.chart.reference,
                  "digest": chart_digest},
        "blobs": {"image": image_counts, "chart": chart_counts},
        "values": overlay,
        "summary": f"{repository_b}@{decision.digest} ({_counts(image_counts)}); chart {found.chart_version}",
    }  # fmt: skip


def _may_ship_in(ctx: Ctx) -> None:
    """Stop before anything lands in B when B's cluster identity lacks a verb the deploy, watch or smoke
    checks need in the namespace (deployer.permissions, one SelfSubjectAccessReview each, as a ship asks)."""
    from deployer.errors import EnvironmentMissing
    from deployer.permissions import SHIP_RULES
    from deployer.tools import access, apiserver

    config, namespace = ctx.config, ctx.state.namespace
    kubeconfig = apiserver.kubeconfig_path(config.kubeconfig)
    refused = access.denied(kubeconfig, config.context, str(namespace), SHIP_RULES)
    if refused:
        what = ", ".join(f"{verb} {group + '/' if group else ''}{res}" for verb, group, res in refused)
        raise EnvironmentMissing(
            f"the cluster identity of {config.environment} may not {what} in namespace {namespace!r}; "
            "nothing was copied",
            hint=f"grant it in the Role bound to this identity in {namespace!r} (docs/least-privilege.md)",
        )


def _tag(repository: str, digest: str, tag: str) -> str:
    """The tag the image gets in B: the one it had in A (its chart's appVersion), else one from its digest."""
    from deployer.chart import ImageRef

    try:
        return ImageRef(repository, digest, tag).tag or _digest_tag(digest)
    except ValueError:
        return _digest_tag(digest)


def _digest_tag(digest: str) -> str:
    return f"promoted-{digest.removeprefix('sha256:')[:12]}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {how}" for how, n in sorted(counts.items())) or "no blobs"


class _WithValues:
    """The target environment's helm, whose `upgrade --install` applies B's values file over the copied
    chart's own values. A ship renders its values into the chart; a promote must deploy the chart it
    copied by digest unchanged, so B's values travel beside it (the ship's deploy step passes none).
    The revision's description says it was promoted, and from where (`deployer status` reads it)."""

    def __init__(self, helm: Any, values_file: Path, description: str) -> None:
        self._helm = helm
        self.values_file = values_file
        self.description = description

    def __getattr__(self, name: str) -> Any:
        return getattr(self._helm, name)

    def upgrade_install(self, *args: Any, **kwargs: Any) -> Any:
        kwargs |= {"values_file": self.values_file, "description": self.description}
        return self._helm.upgrade_install(*args, **kwargs)


# --- the run ---------------------------------------------------------------------------------------------


def build_steps(promote: PromoteConfig, found: Promotion) -> list[Step]:
    """The promote's steps in order; deploy, watch and smoke are the ship's own."""

    def bound(fn: Callable[[Ctx, PromoteConfig, Promotion], Any]) -> Callable[[Ctx], Any]:
        return lambda ctx: fn(ctx, promote, found)

    bodies: dict[str, Callable[[Ctx], Any]] = {
        "source": bound(step_source),
        "copy": bound(step_copy),
        "deploy": step_deploy,
        "watch": step_watch,
        "smoke": step_smoke,
    }
    return [Step(name, bodies[name], TITLES[name]) for name in STAGES]


def _with_next_commands(run: WorkflowRun, promote: PromoteConfig) -> WorkflowRun:
    failed = run.failed
    if failed is None or failed.next_command:
        return run
    env = promote.source.name if failed.name == "source" else promote.target.name
    command = "deployer doctor" if failed.name == "copy" else f"deployer status {promote.service} --env {env}"
    fixed = replace(failed, next_command=command)
    return replace(run, results=tuple(fixed if r is failed else r for r in run.results))


def run(promote: PromoteConfig, *, display: Any = None, clock: Callable[[], float] | None = None) -> int:
    """Promote `promote.service` from `promote.source` to `promote.target`; write the reports asked for;
    the exit code."""
    from deployer import workflow
    from deployer.reporting import junit, report
    from deployer.reporting.display import make_display
    from deployer.tools import command

    display = display or make_display(ci=promote.ci, color=promote.color, command="promote")
    started_at = datetime.now(UTC)
    found = Promotion()
    with tempfile.TemporaryDirectory(prefix="deployer-promote-") as tmp:
        state = ShipState(workdir=Path(tmp))
        ctx: Ctx = StepContext(promote.ship_config(), state, deadline=time.monotonic() + promote.timeout)
        display.header(f"promote {promote.service} from {promote.source.name} to {promote.target.name}")

        def sink(event: workflow.Event) -> None:
            if isinstance(event, workflow.WorkflowFinished):
                event = workflow.WorkflowFinished(_with_next_commands(event.run, promote))
            display(event)

        try:
            outcome = workflow.run(build_steps(promote, found), ctx, sink, clock=clock or time.monotonic)
        finally:
            for cleanup in reversed(state.cleanups):
                cleanup()
            command.stop_running()
        outcome = _with_next_commands(outcome, promote)
    svc, b = state.service, promote.target
    info = report.RunInfo(
        service=svc.name if svc else Path(promote.service).name,
        service_dir=str(svc.directory if svc else promote.service),
        environment=promote.target.name,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        namespace=state.namespace,
        release=state.release,
        kube_context=promote.target.context,
        reproduce=[f"deployer promote {promote.service} --from {promote.source.name} --to {b.name}"],
        command="promote",
    )
    if promote.report_path is not None:
        report.write_report(promote.report_path, report.build_report(outcome, info))
    if promote.junit_path is not None:
        junit.write_junit(promote.junit_path, outcome, info.service, command="promote")
    return outcome.exit_code
