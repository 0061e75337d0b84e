"""The cluster pulls a deployer.yaml registry's images with the environment's own credentials.

A registry that asks for auth (the team registry, Harbor, GitLab's) refuses the kubelet's anonymous pull
(401). Rather than configuring every node, a ship keeps one `kubernetes.io/dockerconfigjson` Secret,
`deployer-registry`, in the release's namespace from the environment's credentials source and names it in
the pod's `imagePullSecrets`: `registry.pullCredentials` when deployer.yaml names one (a read-only user,
so the cluster never holds credentials that can push or delete), else `registry.credentials`. The Secret
is applied through the API, not the chart, so no helm release record holds the credential; the built-in
local stack needs none (its cluster's containerd is configured).
"""

from __future__ import annotations

import base64
import json
from typing import Any

__all__ = ["NAME", "credentials", "ensure"]

NAME = "deployer-registry"


def credentials(target: Any) -> Any:
    """The credentials the pods of `target` (a `deployer.target.Target`) pull with, read from the
    environment's pull source (registered with redact as they are read); None for the built-in local
    stack, whose nodes are configured, and for an anonymous source."""
    if target.builtin:
        return None
    registry = target.registry
    if registry.pull_credentials is not None:
        from deployer.tools import credentials as source

        creds = source.read(registry.pull_credentials, registry.host)
    else:  # deployer's own, through the client that already read them
        from deployer.tools import registry as registry_tool

        creds = registry_tool.credentials(host=registry.host)
    return creds if creds is not None and creds.user else None


def ensure(api: Any, namespace: str, host: str, creds: Any) -> None:
    """Create or update the pull Secret for `host` in `namespace` (which must exist)."""
    from kubernetes import client

    from deployer.tools.kube import KubeNotFound, call

    core = client.CoreV1Api(api)
    auth = base64.b64encode(f"{creds.user}:{creds.password}".encode()).decode()
    config = json.dumps({"auths": {host: {"auth": auth}}}).encode()
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name=NAME, labels={"app.kubernetes.io/managed-by": "deployer"}),
        type="kubernetes.io/dockerconfigjson",
        data={".dockerconfigjson": base64.b64encode(config).decode()},
    )
    # Only namespaced calls: a least-privilege identity may not read namespaces. The namespace exists by
    # now: the release lock, taken before this, is the one place a ship creates it.
    try:
        call(f"replace secret {NAME}", core.replace_namespaced_secret, NAME, namespace, secret)
    except KubeNotFound:  # no such Secret yet
        call(f"create secret {NAME}", core.create_namespaced_secret, namespace, secret)
