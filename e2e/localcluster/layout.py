"""Fixed names, addresses and paths of the local cluster (one place, so tests and docs agree)."""

from __future__ import annotations

import os
from pathlib import Path

KUBE_VERSION = "v1.32.13"

STATE = Path(os.environ.get("DEPLOYER_CLUSTER_STATE", "/var/lib/deployer/cluster"))
# Runtime state (sockets, containerd state, pod netns mounts) lives on /run so a reboot clears it.
RUN = Path("/run/deployer-cluster")
TOOLS_BIN = Path(os.environ.get("DEPLOYER_TOOLS_BIN", "/var/cache/deployer/tools/bin"))
REGISTRY_CREDENTIALS = Path("/var/lib/deployer/registry/credentials.env")

# The kubeconfig deployer uses by default: it reaches the apiserver over the veth from the root netns.
KUBECONFIG = STATE / "kubeconfig"

NETNS = "deployer-e2e"
NETNS_PATH = Path("/run/netns") / NETNS
VETH_HOST = "dple2e-host"  # interface names are limited to 15 characters
VETH_NS = "dple2e-ns"
HOST_VETH_IP = "10.200.255.1"
NS_VETH_IP = "10.200.255.2"
VETH_PREFIX = 30
NODE_IP = "10.200.0.2"  # on the netns's lo: kubelet refuses a loopback node IP
NODE_NAME = "deployer-node"
SERVICE_CIDR = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"
POD_CIDR = "10.244.0.0/24"
APISERVER_URL = f"https://{NS_VETH_IP}:6443"  # from the root netns
INTERNAL_APISERVER_URL = f"https://{NODE_IP}:6443"  # from inside the netns

# The registry of the build stack listens on 127.0.0.1:5000 in the root netns. Inside the cluster's
# netns the same address is forwarded over the veth, so image references work unchanged in both.
REGISTRY_PORT = 5000
REGISTRY = f"127.0.0.1:{REGISTRY_PORT}"

# Built locally from Debian's catatonit; never pulled.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
SMOKE_NAMESPACE = "kube-system"
SMOKE_POD = "cluster-smoke"

PKI = STATE / "pki"
ETC = STATE / "etc"
LOGS = STATE / "logs"
PIDS = STATE / "pids"
DATA = STATE / "data"
CONTAINERD_SOCK = RUN / "containerd" / "containerd.sock"
CONTAINERD_STATE = RUN / "containerd" / "state"
KUBELET_DIR = DATA / "kubelet"


def tool(name: str) -> str:
    """Path of a pinned binary built by e2e/tools.sh."""
    return str(TOOLS_BIN / name)
