"""`deployer status`: helm's view of a release (revision, status, chart, app version, recent history),
the Deployment's view (the image by digest that runs, ready/updated/available replicas, each pod), whether a
ship holds the release lock now, and what the last ship did, read from the helm history descriptions `ship`
leaves ("deployer ship <image>"; a failed rollout is followed by a "Rollback to N" revision).

Nothing here prints: the result is data with `lines()` for the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from deployer.release.ref import Cluster, ReleaseRef, no_release, read_deployment, with_chart
from deployer.release.rollback import ROLLBACK_DESCRIPTION
from deployer.tools.helm import Revision

__all__ = ["PodLine", "ReleaseStatus", "last_ship", "status"]

SHIP_DESCRIPTION = "deployer ship "  # the prefix of the helm --description every ship sets
PROMOTE_DESCRIPTION = "deployer promote "  # … and every promote ("deployer promote <image> from <env>")


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

    `ship` upgrades with the description "deployer ship <image>" (`promote` with "deployer promote <image>
    from <env>", said as "promoted"); when its rollout fails it rolls back at once, which helm records as
    the next revision "Rollback to N". A ship whose first install failed leaves no release at all.
    """
    ordered = sorted(history, key=lambda r: r.revision)
    for i in range(len(ordered) - 1, -1, -1):
        rev = ordered[i]
        shipped = "shipped" if rev.description.startswith(SHIP_DESCRIPTION) else None
        if rev.description.startswith(PROMOTE_DESCRIPTION):
            shipped = "promoted"
        if shipped is None:
            continue
        image = rev.description.split(" ", 2)[2]
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
        return f"revision {rev.revision} ({image}) {shipped}, now {rev.status}"
    return None


def _lock_holder(cluster: Cluster, tgt: ReleaseRef, now: datetime | None = None) -> str | None:
    from deployer.release.lock import LOCK_PREFIX
    from deployer.tools.kube import KubeNotFound, call

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


def status(tgt: ReleaseRef, cluster: Cluster) -> ReleaseStatus:
    """Helm's and the cluster's view of the release. Raises DeployFailed when there is no release."""
    from deployer.tools.kube import call

    current = cluster.helm.status(tgt.release, tgt.namespace)
    if current is None:
        raise no_release(tgt)
    history = cluster.helm.history(tgt.release, tgt.namespace)
    current = with_chart(cluster, current, history) or current
    deployment = read_deployment(tgt, cluster)
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
