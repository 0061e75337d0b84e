"""The cluster pulls a deployer.yaml registry's images with the environment's own credentials.

A registry that asks for auth (the team registry, Harbor, GitLab's) refuses the kubelet's anonymous pull
(401). Rather than configuring every node, a ship keeps one `kubernetes.io/dockerconfigjson` Secret,
`deployer-registry`, in the release's namespace from the environment's credentials source and names it in
the pod's `imagePullSecrets`. The Secret is applied through the API, not the chart, so no helm release
record holds the credential; the built-in local stack needs none (its cluster's containerd is configured).
"""

from __future__ import annotations

import base64
import json
from typing import Any

__all__ = ["NAME", "ensure"]

NAME = "deployer-registry"


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
