"""A service's deploy.yaml as it applies in one environment: the one place every command reads it.

ship, status, diff, rollback, prune and doctor all call `service_deploy`, so they agree on the release, the
namespace and the settings a ship would use there. The layers, lowest first: deployer's built-in defaults,
the environment's deploy policy's `deploy.defaults` (`policies.deploy`; else the one deployer ships), the
environment's own `deploy:` defaults in deployer.yaml, then the service's deploy.yaml. The namespace is the
command line's `--namespace`, else the environment's rule (`cluster.namespace`), in which deploy.yaml's
`namespace:` wins only where the rule lets the service choose (`serviceMayChooseNamespace`).

Reads the policy and deploy.yaml files; never a process, the network or a credential.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blubber.source import YamlPath, format_path
from deployer.deploy_config import DeployConfig, DeployPolicy, load, load_policy

if TYPE_CHECKING:
    from .resolve import Target

__all__ = ["service_deploy"]


def service_deploy(
    target: Target,
    service_dir: str | Path,
    *,
    namespace: str | None = None,
    release: str | None = None,
) -> DeployConfig:
    """The deploy settings of the service in `service_dir` for `target`'s environment, with the command
    line's `--namespace`/`--release` (None: not given). A bad file is a ConfigError (exit 10, file:line)."""
    env = target.environment
    policy = load_policy(env.policies.deploy)
    if env.deploy_defaults:
        policy = _EnvironmentPolicy(
            defaults=_merge(policy.defaults, env.deploy_defaults),
            enforcements=policy.enforcements,
            file=policy.file,
            source=policy.source,
            env_defaults=env.deploy_defaults,
            env_name=env.name,
            env_file=env.file,
            env_line=env.line,
            env_lines=env.deploy_lines,
        )
    deploy = load(service_dir, policy)
    release = release or deploy.release
    chosen = _own_namespace(deploy)
    namespace = namespace or target.namespace(release, deploy.service, chosen)
    return replace(deploy, release=release, namespace=namespace)


def _own_namespace(deploy: DeployConfig) -> str | None:
    """deploy.yaml's own `namespace:` (not the default the loader fills in from the release name)."""
    data = deploy.source.data if deploy.source is not None else None
    value = data.get("namespace") if isinstance(data, Mapping) else None
    return str(value) if value else None


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` on `base`, mappings key by key (as deploy.yaml goes over the policy's defaults)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _found(data: Any, path: YamlPath) -> bool:
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return False
        data = data[key]
    return True


@dataclass(frozen=True)
class _EnvironmentPolicy(DeployPolicy):
    """The deploy policy with the environment's `deploy:` defaults over its own: an error about a value
    the environment set points at the environment in deployer.yaml, not at the policy file."""

    env_defaults: Mapping[str, Any] = field(default_factory=dict)
    env_name: str = ""
    env_file: str | None = None
    env_line: int | None = None
    env_lines: Mapping[tuple[str, ...], int] = field(default_factory=dict)

    def where(self, path: YamlPath) -> dict[str, Any]:
        if path[:1] == ("defaults",) and _found(self.env_defaults, path[1:]):
            at = format_path(("environments", self.env_name, "deploy", *path[1:]))
            line = self.env_lines.get(tuple(str(p) for p in path[1:]), self.env_line)
            return {"file": self.env_file, "line": line, "path": at}
        return dict(super().where(path))
