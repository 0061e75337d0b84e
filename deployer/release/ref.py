"""The release the commands of `deployer/release/` act on, and what they talk to.

`status`, `rollback`, `diff` and `prune` all start from a service directory (or example name): its
deploy.yaml names the helm release and the namespace (`--namespace`/`--release` override them, as for
`ship`), and `--env`/`--kubeconfig` pick the cluster the same way `ship` does, so helm and the Kubernetes
client see one cluster. `release_ref` resolves that into a `ReleaseRef`; everything the commands talk to
is bundled in `Cluster`, built by `connect` — the seam unit tests replace. (The environment a command
targets is `deployer.target`; this is the one release in it.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployer.errors import DeployFailed
from deployer.tools.helm import Helm, Release, Revision

if TYPE_CHECKING:  # imported where used: a command that fails early never loads them
    from deployer.deploy_config import DeployConfig
    from deployer.service import Service
    from deployer.target import Target

__all__ = [
    "Cluster",
    "ReleaseRef",
    "connect",
    "deployment_generation",
    "find_deployment",
    "no_release",
    "read_deployment",
    "release_ref",
    "with_chart",
]


@dataclass(frozen=True)
class ReleaseRef:
    """One release of one service on one cluster."""

    service: Service
    deploy: DeployConfig  # release/namespace overrides applied
    kubeconfig: str
    context: str | None = None
    where: Target | None = None  # the environment resolved (registry, chart repository); None: local

    @property
    def release(self) -> str:
        return str(self.deploy.release)

    @property
    def namespace(self) -> str:
        return str(self.deploy.namespace)


def release_ref(
    service: str,
    *,
    where: Target | None = None,
    kubeconfig: str | os.PathLike[str] | None = None,
    namespace: str | None = None,
    release: str | None = None,
) -> ReleaseRef:
    """Resolve SERVICE (directory or example name) and its deploy.yaml into a `ReleaseRef` on `where` (the
    `deployer.target.Target` the CLI resolved from --env; None: the default environment).

    Raises ConfigError for a missing service or a bad deploy.yaml, like `ship` does.
    """
    from deployer import service as service_mod
    from deployer.target import resolve
    from deployer.target.deploy import service_deploy

    svc = service_mod.resolve(service)
    where = where or resolve(None, kubeconfig=Path(kubeconfig) if kubeconfig else None)
    # the environment's deploy defaults and namespace rule, as `ship` applies them
    deploy = service_deploy(where, svc.directory, namespace=namespace, release=release)
    return ReleaseRef(svc, deploy, str(where.kubeconfig), where.context, where)


# A watcher: (namespace, deployment, *, timeout, since, on_event) -> deployer.rollout.RolloutVerdict
Watch = Callable[..., Any]
# A lock factory: (namespace, release, command) -> a context manager (deployer.release.lock.ReleaseLock)
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


def connect(tgt: ReleaseRef, *, helm_timeout: int | None = None) -> Cluster:
    """The real `Cluster` for `tgt`: the pinned helm and a kubernetes ApiClient from the same kubeconfig."""
    from kubernetes import client

    from deployer.release.lock import ReleaseLock
    from deployer.rollout.watcher import watch_rollout
    from deployer.tools.kube import load_api

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


def with_chart(cluster: Cluster, current: Release | None, history: Sequence[Revision] = ()) -> Release | None:
    """`current` with chart and app version filled in from the history (`helm status` JSON has neither)."""
    if current is None or current.chart:
        return current
    rows = history or cluster.helm.history(current.name, current.namespace)
    row = next((r for r in rows if r.revision == current.revision), None)
    return replace(current, chart=row.chart, app_version=row.app_version) if row else current


def no_release(tgt: ReleaseRef) -> DeployFailed:
    return DeployFailed(
        f"no release {tgt.release!r} in namespace {tgt.namespace!r}",
        hint=f"ship it first: deployer ship {tgt.service.directory}",
    )


def read_deployment(tgt: ReleaseRef, cluster: Cluster) -> Any:
    """The release's Deployment (a V1Deployment), or None when there is none."""
    return find_deployment(cluster.apps, tgt.namespace, tgt.release)


def find_deployment(apps: Any, namespace: str, name: str) -> Any:
    """The Deployment `name` (a V1Deployment) through `apps` (an AppsV1Api), or None when there is none."""
    from deployer.tools.kube import KubeNotFound, call

    try:
        return call(f"read deployment {name}", apps.read_namespaced_deployment, name, namespace)
    except KubeNotFound:
        return None


def deployment_generation(apps: Any, namespace: str, name: str) -> int | None:
    """The Deployment's metadata.generation, or None when there is no Deployment (the watch reports that
    itself). Read right after helm applied a change, it keeps the watch from judging an older spec."""
    deployment = find_deployment(apps, namespace, name)
    if deployment is None or not deployment.metadata.generation:
        return None
    return int(deployment.metadata.generation)
