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
    """Create or update the pull Secret for `host` in `namespace` (created when missing: helm would)."""
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
    # only namespaced calls while the namespace exists: a least-privilege identity may not read namespaces
    try:
        call(f"replace secret {NAME}", core.replace_namespaced_secret, NAME, namespace, secret)
        return
    except KubeNotFound:
        pass  # no such Secret yet, or no namespace yet
    try:
        call(f"create secret {NAME}", core.create_namespaced_secret, namespace, secret)
    except KubeNotFound:  # the namespace: a first install (helm's --create-namespace would make it)
        namespace_doc = client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))
        call(f"create namespace {namespace}", core.create_namespace, namespace_doc)
        call(f"create secret {NAME}", core.create_namespaced_secret, namespace, secret)
