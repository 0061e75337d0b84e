"""Release management after a ship: `deployer status`, `deployer rollback`, `deployer diff`.

All three start from a service directory (or example name): its deploy.yaml names the helm release and the
namespace (`--namespace`/`--release` override them, as for `ship`), and `--env`/`--kubeconfig` pick the
cluster the same way `ship` does, so helm and the Kubernetes client see one cluster.

- `status`: helm's view (revision, status, chart, app version, recent history), the Deployment's view (the
  image by digest that runs, ready/updated/available replicas, each pod), whether a ship holds the release
  lock now, and what the last ship did, read from the helm history descriptions `ship` leaves ("deployer ship
  <image>"; a failed rollout is followed by a "Rollback to N" revision).
- `rollback`: under the release lock (a running ship is refused), repair a pending-* release, `helm rollback`
  to the chosen revision, and watch the rollout with the same watcher as `ship`. A rollout that does not
  become healthy is `RolloutFailed` (exit 16) with the diagnosis, log tail and events; helm failures are
  `DeployFailed` (exit 15).
- `diff`: render the chart a ship would install from the current blubber.yaml and deploy.yaml and compare
  it per resource with the live release's manifest (`Helm.diff`). The image of a ship is only known after
  it is built and pushed, so the diff uses the live release's image (or `--image`); it shows what the
  configuration would change.

Everything the commands talk to is bundled in `Cluster`, built by `connect` — the seam unit tests replace.
Nothing here prints: results are returned as data with `lines()` for the CLI.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deployer.errors import DeployFailed, RolloutFailed, UserError
from deployer.helm import GOOD, Helm, Release, ResourceDiff, Revision

__all__ = [
    "Cluster",
    "DiffResult",
    "PodLine",
    "ReleaseStatus",
    "RollbackResult",
    "Target",
    "connect",
    "diff",
    "last_ship",
    "pick_rollback_revision",
    "rollback",
    "status",
    "target",
]

SHIP_DESCRIPTION = "deployer ship "  # the prefix of the helm --description every ship sets
ROLLBACK_DESCRIPTION = "Rollback to "  # what helm writes for a rollback revision
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64


@dataclass(frozen=True)
class Target:
    """One release of one service on one cluster."""

    service: Any  # deployer.service.Service
    deploy: Any  # deployer.deploy_config.DeployConfig (release/namespace overrides applied)
    kubeconfig: str
    context: str | None = None

    @property
    def release(self) -> str:
        return str(self.deploy.release)

    @property
    def namespace(self) -> str:
        return str(self.deploy.namespace)


def target(
    service: str,
    *,
    environment: str = "staging",
    kubeconfig: str | os.PathLike[str] | None = None,
    namespace: str | None = None,
    release: str | None = None,
) -> Target:
    """Resolve SERVICE (directory or example name) and its deploy.yaml into a `Target`.

    Raises ConfigError for a missing service or a bad deploy.yaml, like `ship` does.
    """
    from deployer import deploy_config
    from deployer import service as service_mod
    from deployer.kube import DEFAULT_KUBECONFIG

    svc = service_mod.resolve(service)
    deploy = deploy_config.load(svc.directory)
    if namespace or release:
        deploy = replace(deploy, namespace=namespace or deploy.namespace, release=release or deploy.release)
    # The same choice as ship: --kubeconfig, else $KUBECONFIG, else the local staging cluster.
    path = str(kubeconfig or os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG)
    return Target(svc, deploy, path, None if environment == "staging" else environment)


# A watcher: (namespace, deployment, *, timeout, since, on_event) -> deployer.rollout.RolloutVerdict
Watch = Callable[..., Any]
# A lock factory: (namespace, release, command) -> a context manager (deployer.lock.ReleaseLock)
LockFactory = Callable[[str, str, str], Any]


@dataclass
class Cluster:
    """What the release commands talk to: helm and the Kubernetes API (apps, core, coordination),
    a rollout watcher and the release lock. `connect` makes the real one; tests pass fakes."""

    helm: Helm
    apps: Any
    core: Any
    coordination: Any
    watch: Watch
    lock: LockFactory


def connect(tgt: Target, *, helm_timeout: int | None = None) -> Cluster:
    """The real `Cluster` for `tgt`: the pinned helm and a kubernetes ApiClient from the same kubeconfig."""
    from kubernetes import client

    from deployer.kube import load_api
    from deployer.lock import ReleaseLock
    from deployer.rollout.watcher import watch_rollout

    api = load_api(tgt.kubeconfig, tgt.context)
    helm = Helm(
        kubeconfig=tgt.kubeconfig,
        context=tgt.context,
        timeout=helm_timeout or int(tgt.deploy.timeouts.helm),
    )

    def watch(namespace: str, deployment: str, **kwargs: Any) -> Any:
        return watch_rollout(api, namespace, deployment, **kwargs)

    def lock(namespace: str, release: str, command: str) -> Any:
        return ReleaseLock(api, namespace, release, command=command)

    return Cluster(
        helm=helm,
        apps=client.AppsV1Api(api),
        core=client.CoreV1Api(api),
        coordination=client.CoordinationV1Api(api),
        watch=watch,
        lock=lock,
    )


def _with_chart(
    cluster: Cluster, current: Release | None, history: Sequence[Revision] = ()
) -> Release | None:
    """`current` with chart and app version filled in from the history (`helm status` JSON has neither)."""
    if current is None or current.chart:
        return current
    rows = history or cluster.helm.history(current.name, current.namespace)
    row = next((r for r in rows if r.revision == current.revision), None)
    return replace(current, chart=row.chart, app_version=row.app_version) if row else current


def _no_release(tgt: Target) -> DeployFailed:
    return DeployFailed(
        f"no release {tgt.release!r} in namespace {tgt.namespace!r}",
        hint=f"ship it first: deployer ship {tgt.service.directory}",
    )


# --- status --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodLine:
    """One pod of the release's Deployment."""

    name: str
    phase: str  # Running, Pending, ... or the waiting reason of a container (CrashLoopBackOff, ...)
    ready: bool
    restarts: int
    image: str


@dataclass(frozen=True)
class ReleaseStatus:
    """What `deployer status` shows."""

    release: str
    namespace: str
    revision: int
    status: str  # helm's: deployed, failed, pending-upgrade, ...
    chart: str
    app_version: str
    image: str | None  # what the Deployment's pods run (repository@sha256:…)
    desired: int
    ready: int
    updated: int
    available: int
    pods: list[PodLine] = field(default_factory=list)
    history: list[Revision] = field(default_factory=list)
    last_ship: str | None = None
    lock: str | None = None  # who holds the release lock now, if anyone

    @property
    def healthy(self) -> bool:
        """Deployed, and every desired replica updated and ready."""
        return (
            self.status == "deployed"
            and self.image is not None
            and self.desired == self.ready == self.updated == self.available
        )

    def lines(self) -> list[str]:
        """The human-readable status, one fact per line."""
        out = [
            f"release:   {self.release} in namespace {self.namespace}",
            f"revision:  {self.revision} ({self.status}), chart {self.chart}, app version {self.app_version}",
            f"image:     {self.image or 'no Deployment found'}",
            f"pods:      {self.ready}/{self.desired} ready, {self.updated} updated, "
            f"{self.available} available" + ("" if self.healthy else "  (not healthy)"),
        ]
        for pod in self.pods:
            ready = "ready" if pod.ready else "not ready"
            out.append(f"  {pod.name}  {pod.phase}  {ready}  restarts {pod.restarts}")
        out.append(f"last ship: {self.last_ship or 'unknown (no deployer ship in the helm history)'}")
        out.append(f"lock:      {self.lock or 'free (no ship running)'}")
        if self.history:
            out.append("history:")
            for rev in self.history[-5:]:
                out.append(f"  {rev.revision:>3}  {rev.status:<16} {rev.chart}  {rev.description}")
        return out

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["healthy"] = self.healthy
        return data


def last_ship(history: Sequence[Revision]) -> str | None:
    """What the newest `deployer ship` did, from helm's revision descriptions (None if no ship is there).

    `ship` upgrades with the description "deployer ship <image>"; when its rollout fails it rolls back at
    once, which helm records as the next revision "Rollback to N". A ship whose first install failed leaves
    no release at all.
    """
    ordered = sorted(history, key=lambda r: r.revision)
    for i in range(len(ordered) - 1, -1, -1):
        rev = ordered[i]
        if not rev.description.startswith(SHIP_DESCRIPTION):
            continue
        image = rev.description.removeprefix(SHIP_DESCRIPTION)
        after = ordered[i + 1] if i + 1 < len(ordered) else None
        if after is not None and after.description.startswith(ROLLBACK_DESCRIPTION):
            return (
                f"revision {rev.revision} ({image}) did not roll out and was rolled back: "
                f"revision {after.revision} is a {after.description.lower()}"
            )
        if rev.status.startswith("pending"):
            return f"revision {rev.revision} ({image}) is {rev.status}: that ship was interrupted"
        if rev.status == "failed":
            return f"revision {rev.revision} ({image}) failed in helm"
        return f"revision {rev.revision} ({image}) shipped, now {rev.status}"
    return None


def _lock_holder(cluster: Cluster, tgt: Target, now: datetime | None = None) -> str | None:
    from deployer.kube import KubeNotFound, call
    from deployer.lock import LOCK_PREFIX

    name = (LOCK_PREFIX + tgt.release)[:63].rstrip("-")
    try:
        lease = call(f"read lease {name}", cluster.coordination.read_namespaced_lease, name, tgt.namespace)
    except KubeNotFound:
        return None
    spec = lease.spec
    stamp = spec.renew_time or spec.acquire_time
    now = now or datetime.now(UTC)
    age = (now - stamp).total_seconds() if stamp else None
    command = (lease.metadata.annotations or {}).get("deployer/command", "?")
    if age is not None and age < (spec.lease_duration_seconds or 60):
        return f"held by {spec.holder_identity} ({command}), renewed {age:.0f}s ago: a ship is running"
    return f"expired lock of {spec.holder_identity} ({command}): that run died; the next ship takes it over"


def _pod_line(pod: Any) -> PodLine:
    statuses = pod.status.container_statuses or []
    phase = str(pod.status.phase or "Unknown")
    for cs in statuses:
        waiting = cs.state.waiting if cs.state else None
        if waiting is not None and waiting.reason:
            phase = str(waiting.reason)
            break
    if pod.metadata.deletion_timestamp is not None:
        phase = "Terminating"
    return PodLine(
        name=str(pod.metadata.name),
        phase=phase,
        ready=any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []),
        restarts=sum(int(cs.restart_count or 0) for cs in statuses),
        image=str(pod.spec.containers[0].image) if pod.spec.containers else "",
    )


def status(tgt: Target, cluster: Cluster) -> ReleaseStatus:
    """Helm's and the cluster's view of the release. Raises DeployFailed when there is no release."""
    from deployer.kube import call

    current = cluster.helm.status(tgt.release, tgt.namespace)
    if current is None:
        raise _no_release(tgt)
    history = cluster.helm.history(tgt.release, tgt.namespace)
    current = _with_chart(cluster, current, history) or current
    deployment = _deployment(tgt, cluster)
    image, desired, ready, updated, available, pods = None, 0, 0, 0, 0, []
    if deployment is not None:
        containers = deployment.spec.template.spec.containers or []
        image = str(containers[0].image) if containers else None
        desired = int(deployment.spec.replicas or 0)
        st = deployment.status
        ready, updated = int(st.ready_replicas or 0), int(st.updated_replicas or 0)
        available = int(st.available_replicas or 0)
        labels = deployment.spec.selector.match_labels or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        listed = call(
            f"list pods {selector}", cluster.core.list_namespaced_pod, tgt.namespace, label_selector=selector
        )
        pods = [_pod_line(p) for p in sorted(listed.items, key=lambda p: p.metadata.name)]
    return ReleaseStatus(
        release=tgt.release,
        namespace=tgt.namespace,
        revision=current.revision,
        status=current.status,
        chart=current.chart,
        app_version=current.app_version,
        image=image,
        desired=desired,
        ready=ready,
        updated=updated,
        available=available,
        pods=pods,
        history=history,
        last_ship=last_ship(history),
        lock=_lock_holder(cluster, tgt),
    )


# --- rollback ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RollbackResult:
    """A rollback that rolled out healthy."""

    release: str
    namespace: str
    from_revision: int
    to_revision: int
    new_revision: int
    duration: float
    recovered: str | None = None

    def lines(self) -> list[str]:
        out = [f"recovered: {self.recovered}"] if self.recovered else []
        out.append(
            f"rolled back {self.release} in {self.namespace} from revision {self.from_revision} to "
            f"{self.to_revision} (now revision {self.new_revision}); healthy after {self.duration:.1f}s"
        )
        return out


def _rollback_source(rev: Revision) -> int | None:
    text = rev.description.removeprefix(ROLLBACK_DESCRIPTION)
    return int(text) if rev.description.startswith(ROLLBACK_DESCRIPTION) and text.isdigit() else None


def pick_rollback_revision(history: Sequence[Revision], current: int) -> int | None:
    """The revision `deployer rollback` goes back to when none is given (None: there is none).

    Helm's own default is simply `current - 1`, which after a failed ship is the broken revision (its
    upgrade "succeeded"; only the rollout failed). Instead: the newest revision before the current one that
    helm deployed successfully, that was not itself rolled back away from (the next revision is a
    "Rollback to …"), and that is not what the current revision already is a copy of.
    """
    ordered = sorted(history, key=lambda r: r.revision)
    by_number = {r.revision: r for r in ordered}
    copy_of = _rollback_source(by_number[current]) if current in by_number else None
    for rev in reversed(ordered):
        if rev.revision >= current or rev.status not in GOOD or rev.revision == copy_of:
            continue
        after = by_number.get(rev.revision + 1)
        if after is not None and _rollback_source(after) is not None:
            continue
        return rev.revision
    return None


def rollback(
    tgt: Target,
    cluster: Cluster,
    *,
    revision: int | None = None,
    timeout: float = 300.0,
    progress: Callable[[str], None] = lambda _line: None,
    command: str = "deployer rollback",
) -> RollbackResult:
    """Roll the release back to `revision` (default: `pick_rollback_revision`) and watch it roll out.

    Holds the release lock throughout (another ship or rollback is refused with exit 15); a release stuck
    in pending-* from an interrupted run is repaired first. Raises DeployFailed (15) when there is no
    release, no revision to go to, or helm fails; RolloutFailed (16) when the rolled-back version does not
    become healthy within `timeout` seconds.
    """
    if cluster.helm.status(tgt.release, tgt.namespace) is None:
        raise _no_release(tgt)  # checked before the lock, which would create the namespace
    with cluster.lock(tgt.namespace, tgt.release, command):
        recovery = cluster.helm.recover_pending(tgt.release, tgt.namespace)
        recovered = recovery.describe() if recovery.action != "none" else None
        if recovered:
            progress(recovered)
        current = cluster.helm.status(tgt.release, tgt.namespace)
        if current is None:
            raise DeployFailed(
                f"release {tgt.release!r} was stuck in {recovery.stuck_status} with nothing to roll back to "
                "and has been uninstalled",
                hint=f"ship it again: deployer ship {tgt.service.directory}",
            )
        history = cluster.helm.history(tgt.release, tgt.namespace)
        known = {r.revision for r in history}
        if revision is None:
            revision = pick_rollback_revision(history, current.revision)
            if revision is None:
                raise DeployFailed(
                    f"release {tgt.release!r} has no earlier good revision than {current.revision}",
                    hint=f"see `deployer status {tgt.service.directory}`; pass --revision N to choose one",
                )
        elif revision not in known:
            raise DeployFailed(
                f"release {tgt.release!r} has no revision {revision} (helm keeps: "
                f"{', '.join(str(r) for r in sorted(known)) or 'none'})",
                hint=f"see `deployer status {tgt.service.directory}`",
            )
        started = datetime.now(UTC)
        progress(f"helm rollback {tgt.release} {revision} (from revision {current.revision})")
        cluster.helm.rollback(tgt.release, tgt.namespace, revision)
        verdict = cluster.watch(
            tgt.namespace,
            tgt.release,
            timeout=timeout,
            since=started,
            on_event=lambda event: progress(f"watch: {event.text()}"),
            generation=_generation(tgt, cluster),
        )
        after = cluster.helm.status(tgt.release, tgt.namespace)
        new_revision = after.revision if after is not None else 0
        if not verdict.healthy:
            raise _rollback_failed(tgt, verdict, revision, new_revision)
    return RollbackResult(
        release=tgt.release,
        namespace=tgt.namespace,
        from_revision=current.revision,
        to_revision=revision,
        new_revision=new_revision,
        duration=float(verdict.duration),
        recovered=recovered,
    )


def _generation(tgt: Target, cluster: Cluster) -> int | None:
    """The Deployment's generation right after the rollback applied it, so the watch never judges the
    spec from before (whose complete status would read as a healthy rollback)."""
    deployment = _deployment(tgt, cluster)
    if deployment is None:
        return None  # the watch reports the missing Deployment itself
    return int(deployment.metadata.generation) if deployment.metadata.generation else None


def _deployment(tgt: Target, cluster: Cluster) -> Any:
    """The release's Deployment (a V1Deployment), or None when there is none."""
    from deployer.kube import KubeNotFound, call

    try:
        return call(
            f"read deployment {tgt.release}",
            cluster.apps.read_namespaced_deployment,
            tgt.release,
            tgt.namespace,
        )
    except KubeNotFound:
        return None


def _rollback_failed(tgt: Target, verdict: Any, revision: int, new_revision: int) -> RolloutFailed:
    diagnosis, where, evidence = verdict.diagnosis, verdict.where(tgt.release), verdict.evidence()
    # The CLI prints the message: the evidence goes under the first line, as `ship`'s summary shows it.
    err = RolloutFailed(
        f"rollback to revision {revision} (now revision {new_revision}) did not become healthy: "
        f"{where}: {diagnosis}" + "".join(f"\n  | {line}" for line in evidence),
        hint=(verdict.hint or "")
        + f"; choose another revision: deployer rollback {tgt.service.directory} --revision N",
    )
    err.evidence = evidence  # type: ignore[attr-defined]
    return err


# --- diff ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffResult:
    """The per-resource differences between the live release and what a ship would install."""

    release: str
    namespace: str
    image: str  # the image the rendering used
    image_note: str  # where that image came from
    live_revision: int | None
    diffs: list[ResourceDiff]

    def lines(self) -> list[str]:
        live = f"revision {self.live_revision}" if self.live_revision else "no live release"
        out = [
            f"release {self.release} in {self.namespace} ({live}) vs the chart rendered from the service now",
            f"image: {self.image} ({self.image_note})",
        ]
        if not self.diffs:
            out.append("no changes")
            return out
        for d in self.diffs:
            out.append(f"{d.change}: {d.kind} {d.name}")
            out.extend(d.diff.rstrip("\n").splitlines())
        counts = {c: sum(1 for d in self.diffs if d.change == c) for c in ("changed", "added", "removed")}
        out.append(", ".join(f"{n} {c}" for c, n in counts.items() if n) + " resource(s)")
        return out


def _live_image(manifest: str) -> str | None:
    import yaml

    from deployer.helm import split_manifest

    for (kind, _name), text in split_manifest(manifest).items():
        if kind != "Deployment":
            continue
        doc = yaml.safe_load(text)
        containers = (((doc.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
        if containers:
            return str(containers[0].get("image", "")) or None
    return None


def diff(tgt: Target, cluster: Cluster, *, image: str | None = None) -> DiffResult:
    """Render the chart a ship would install now and compare it with the live release, per resource.

    The image: `image` when given (`repo@sha256:…`), else the one the live release runs (so only
    configuration changes show), else a placeholder digest for a release that does not exist yet. The live
    chart version and app version are reused, so labels that only carry them do not show as changes.
    """
    import blubber
    from deployer import chart as chart_mod
    from deployer import deploy_config
    from deployer.build import NAMESPACE
    from deployer.chart import ImageRef
    from deployer.registry import REGISTRY

    current = _with_chart(cluster, cluster.helm.status(tgt.release, tgt.namespace))
    manifest = cluster.helm.get_manifest(tgt.release, tgt.namespace) if current is not None else ""
    live = _live_image(manifest) if manifest else None
    if image:
        chosen, note = image, "given with --image"
    elif live:
        chosen, note = live, "the live one; a ship builds and pushes a new image, known after the push"
    else:
        chosen = f"{REGISTRY}/{NAMESPACE}/{tgt.service.name}@{PLACEHOLDER_DIGEST}"
        note = "placeholder: a ship builds and pushes the image, its digest is known after the push"
    try:
        ref = ImageRef.parse(chosen)
    except ValueError as e:
        raise UserError(str(e), hint="give the image as repository@sha256:<64 hex digits>") from e
    if current is not None and not ref.tag and current.app_version:
        ref = replace(ref, tag=current.app_version)  # the version label shows the pushed tag
    version = chart_mod.chart_version()
    if current is not None and current.chart.startswith(f"{tgt.release}-"):
        version = current.chart.removeprefix(f"{tgt.release}-")
    config = blubber.load(tgt.service.config)
    runtime = blubber.runtime(config, tgt.deploy.variant)
    values = chart_mod.render_values(
        tgt.deploy,
        runtime,
        ref,
        policy=deploy_config.load_policy(),
        blubber_file=str(tgt.service.config),
    )
    with tempfile.TemporaryDirectory(prefix="deployer-diff-") as tmp:
        rendered = chart_mod.write_chart(
            Path(tmp), tgt.release, version, values, app_version=ref.tag or version
        )
        diffs = cluster.helm.diff(tgt.release, tgt.namespace, rendered.path)
    return DiffResult(
        release=tgt.release,
        namespace=tgt.namespace,
        image=ref.pinned,
        image_note=note,
        live_revision=current.revision if current is not None else None,
        diffs=diffs,
    )
