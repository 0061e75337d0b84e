"""Provider for machines where kind and a kind node image exist (not this offline VM: see below).

Why it cannot run here: `kind build node-image` fetches etcd, coredns, kindnetd and local-path images
from public registries, and no public registry is reachable (see local-cluster.md §4). Where it can run:

    DEPLOYER_CLUSTER_PROVIDER=kind KIND_NODE_IMAGE=kindest/node:v1.32.2 e2e/cluster up

It creates cluster `deployer-e2e` (`kind` on PATH, >= v0.27) with these adjustments:
- containerd patch `restrict_oom_score_adj = true` (needed on hosts without CAP_SYS_RESOURCE);
- the registry: image references are `127.0.0.1:5000/...`, and inside a kind node 127.0.0.1 is the node
  itself, so containerd's hosts.toml for 127.0.0.1:5000 points at `KIND_REGISTRY_ENDPOINT`
  (default http://kind-registry:5000: a registry container attached to the `kind` docker network, as
  in kind's local-registry guide), with the credentials from credentials.env;
- the kubeconfig is written to the same default path as the local provider's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from urllib.parse import urlparse

from . import layout as L
from .configs import registry_credentials
from .host import ClusterError, say

NAME = "deployer-e2e"


def _kind(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("kind")
    if exe is None:
        raise ClusterError("the kind provider needs `kind` on PATH (go install sigs.k8s.io/kind@v0.27.0)")
    return subprocess.run([exe, *args], text=True, **kw)


def config_yaml() -> tuple[str, str]:
    """(kind cluster config, registry endpoint): one node, containerd patches, registry mapping.

    With `config_path`, containerd looks credentials up by the host it actually dials (the
    endpoint), not by the image reference's host, so the auth entry is keyed by the endpoint.
    """
    endpoint = os.environ.get("KIND_REGISTRY_ENDPOINT", "http://kind-registry:5000")
    creds = registry_credentials()
    auth = ""
    if creds:
        host = urlparse(endpoint).netloc
        auth = (
            f'\n    [plugins."io.containerd.grpc.v1.cri".registry.configs."{host}".auth]\n'
            f'      username = "{creds[0]}"\n      password = "{creds[1]}"'
        )
    return (
        f"""kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  extraMounts:
  - hostPath: {L.STATE / "kind-certs.d"}
    containerPath: /etc/containerd/certs.d
containerdConfigPatches:
- |-
    [plugins."io.containerd.grpc.v1.cri"]
      restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/etc/containerd/certs.d"{auth}
""",
        endpoint,
    )


def up() -> None:
    image = os.environ.get("KIND_NODE_IMAGE")
    if not image:
        raise ClusterError("KIND_NODE_IMAGE must name a kind node image present in the local Docker engine")
    if NAME in _kind("get", "clusters", capture_output=True).stdout.split():
        say(f"kind cluster {NAME} exists")
    else:
        text, endpoint = config_yaml()
        hosts = L.STATE / "kind-certs.d" / L.REGISTRY / "hosts.toml"
        hosts.parent.mkdir(parents=True, exist_ok=True)
        hosts.write_text(
            f'server = "{endpoint}"\n[host."{endpoint}"]\n  capabilities = ["pull", "resolve"]\n'
        )
        cfg = L.STATE / "kind.yaml"
        cfg.write_text(text)
        cfg.chmod(0o600)
        r = _kind(
            "create",
            "cluster",
            f"--name={NAME}",
            f"--image={image}",
            f"--config={cfg}",
            f"--kubeconfig={L.KUBECONFIG}",
            "--wait=180s",
        )
        if r.returncode != 0:
            raise ClusterError(f"kind create cluster failed (exit {r.returncode})")
    say(f"kind cluster {NAME} up; KUBECONFIG={L.KUBECONFIG}")


def down(purge: bool = False) -> None:
    _kind("delete", "cluster", f"--name={NAME}", f"--kubeconfig={L.KUBECONFIG}")


def status() -> bool:
    present = NAME in _kind("get", "clusters", capture_output=True).stdout.split()
    print(f"provider:   kind (cluster {NAME}: {'present' if present else 'absent'})")
    return present


def logs(component: str | None, lines: int, follow: bool) -> None:
    out = L.STATE / "kind-logs"
    _kind("export", "logs", str(out), f"--name={NAME}")
    print(f"kind logs exported to {out}")
