"""One `Target` per command: `--env NAME` (and `--kubeconfig`, `--config`) resolved once, here.

Every command (ship, build, push, status, diff, rollback, prune, doctor, env) gets the same value: the
environment from deployer.yaml (or the built-in local stack), the registry it pushes to and the chart
repository in it, the kubeconfig and context, the namespace rule and the policies. Nothing else in
deployer decides where a ship goes.

Reads files and the process environment only (no process, no network, no credential value).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from .builtin import LOCAL, LOCAL_NAME
from .loader import Environments, find, load
from .model import Environment, Registry

__all__ = ["Target", "builtin_registry", "environments", "resolve"]


@dataclass(frozen=True)
class Target:
    """Where a command acts: one environment, with the kubeconfig and registry it resolved to."""

    environment: Environment
    kubeconfig: Path
    context: str | None
    registry: Registry
    config_file: str | None = None  # the deployer.yaml it came from (None: none found)

    @property
    def name(self) -> str:
        return self.environment.name

    @property
    def builtin(self) -> bool:
        return self.environment.file is None

    def namespace(self, release: str, service: str, chosen: str | None = None) -> str:
        return self.environment.cluster.namespace.namespace(release, service, chosen)

    @property
    def chart_repository(self) -> str:
        return self.registry.charts

    @property
    def chart_host(self) -> str:
        return self.registry.charts.removeprefix("oci://").split("/", 1)[0]


def environments(config: Path | None = None, start: Path | None = None) -> Environments:
    """The environments of `config` (else the nearest deployer.yaml from `start` or the working
    directory; else only the built-in one). A bad file is a ConfigError (exit 10, file:line)."""
    path = config or find(start or Path.cwd())
    return load(path)


def resolve(
    name: str | None = None,
    *,
    kubeconfig: Path | None = None,
    config: Path | None = None,
    start: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Target:
    """The `Target` for `--env name` (None: the file's default). Unknown name: exit 2 listing the known.

    The kubeconfig: `--kubeconfig`, else the environment's, else `$KUBECONFIG`, else the local
    cluster's. For the built-in environment `$KUBECONFIG` comes before its own (the local cluster), and
    `$DEPLOYER_REGISTRY` moves its registry, images and charts together.
    """
    environ = os.environ if environ is None else environ
    envs = environments(config, start)
    env = envs.get(name)
    registry = env.registry
    path = kubeconfig or env.cluster.kubeconfig
    if env.file is None:
        path = kubeconfig or _environ_path(environ, "KUBECONFIG") or env.cluster.kubeconfig
        if env.name == LOCAL_NAME:
            registry = builtin_registry(environ)
    path = path or _environ_path(environ, "KUBECONFIG") or LOCAL.cluster.kubeconfig
    return Target(env, Path(str(path)), env.cluster.context, registry, envs.file)


def builtin_registry(environ: Mapping[str, str] | None = None) -> Registry:
    """The built-in local stack's registry, which `$DEPLOYER_REGISTRY` moves (images and charts together).

    For library callers given no target (tests, benchmarks); commands use their resolved `Target`'s.
    """
    environ = os.environ if environ is None else environ
    registry = LOCAL.registry
    moved = environ.get("DEPLOYER_REGISTRY")
    if moved and moved != registry.host:
        registry = replace(registry, host=moved, charts=f"oci://{moved}/{registry.namespace}/charts")
    return registry


def _environ_path(environ: Mapping[str, str], key: str) -> Path | None:
    value = environ.get(key)
    return Path(value) if value else None
