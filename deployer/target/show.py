"""`deployer env show` as data and text: the resolved environment, secrets masked.

The config holds no secret, so what is masked is the one thing a reader could mistake for one: whether
a credential variable is set is shown, its value never is. Pure: the process environment is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from .model import CredentialsKind, CredentialsSource, Environment

__all__ = ["MASK", "describe", "render"]

MASK = "********"


def _credentials(source: CredentialsSource, environ: Mapping[str, str]) -> dict[str, Any]:
    if source.kind is CredentialsKind.ENV:
        user_set = bool(environ.get(source.user_var or ""))
        password_set = bool(environ.get(source.password_var or ""))
        return {
            "from": "environment variables",
            "user": f"${source.user_var} ({'set' if user_set else 'not set'})",
            "password": f"${source.password_var} ({MASK if password_set else 'not set'})",
        }
    if source.kind is CredentialsKind.DOCKER_CONFIG:
        return {"from": "docker config.json", "path": str(source.path) if source.path else "$DOCKER_CONFIG"}
    if source.kind is CredentialsKind.FILE:
        return {
            "from": "file",
            "path": str(source.path),
            "keys": f"{source.user_key}, {source.password_key} ({MASK})",
        }
    return {"from": "none (anonymous)"}


def describe(env: Environment, environ: Mapping[str, str]) -> dict[str, Any]:
    """The environment as plain data, for `env show --json` and for `render`."""
    reg, cluster = env.registry, env.cluster
    tls: Any = reg.tls.mode.value
    if reg.tls.ca_file is not None:
        tls = {"caFile": str(reg.tls.ca_file)}
    return {
        "name": env.name,
        "defined": env.origin,
        "registry": {
            "host": reg.host,
            "url": reg.base_url,
            "tls": tls,
            "images": f"{reg.repository('<service>')}",
            "charts": reg.charts,
            "credentials": _credentials(reg.credentials, environ),
            "pullCredentials": (
                _credentials(reg.pull_credentials, environ)
                if reg.pull_credentials is not None
                else "(credentials)"
            ),
        },
        "cluster": {
            "kubeconfig": str(cluster.kubeconfig) if cluster.kubeconfig else "$KUBECONFIG or ~/.kube/config",
            "context": cluster.context or "(current-context)",
            "namespace": cluster.namespace.template,
            "serviceMayChooseNamespace": cluster.namespace.service_may_choose,
        },
        "policies": {
            "blubber": str(env.policies.blubber) if env.policies.blubber else "(project default)",
            "deploy": str(env.policies.deploy) if env.policies.deploy else "(project default)",
        },
        "deploy": dict(env.deploy_defaults),
    }


def render(env: Environment, environ: Mapping[str, str]) -> str:
    """`describe` as YAML, in the order a reader looks for things."""
    return yaml.safe_dump(describe(env, environ), sort_keys=False, default_flow_style=False)
