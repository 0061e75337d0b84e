"""Fixed names, addresses and paths of the local cluster (one place, so tests and docs agree)."""

from __future__ import annotations

import os
from pathlib import Path

KUBE_VERSION = "v1.32.13"

# DEPLOYER_CLUSTER_INSTANCE=<letter> runs a second, independent cluster next to the default one (own
# netns, addresses, state and pod cgroup root), e.g. to check down/up without disturbing tests that use
# the default cluster. Unset: the default cluster, which deployer uses as its staging target.
INSTANCE = os.environ.get("DEPLOYER_CLUSTER_INSTANCE", "")
if INSTANCE and not (len(INSTANCE) == 1 and INSTANCE.islower()):
    raise SystemExit("DEPLOYER_CLUSTER_INSTANCE must be one lowercase letter")
_SUFFIX = f"-{INSTANCE}" if INSTANCE else ""
_INDEX = ord(INSTANCE) - ord("a") + 1 if INSTANCE else 0

STATE = Path(f"/var/lib/deployer/cluster{_SUFFIX}")
# Runtime state (sockets, containerd state, pod netns mounts) lives on /run so a reboot clears it.
RUN = Path(f"/run/deployer-cluster{_SUFFIX}")
TOOLS_BIN = Path(os.environ.get("DEPLOYER_TOOLS_BIN", "/var/cache/deployer/tools/bin"))
REGISTRY_CREDENTIALS = Path("/var/lib/deployer/registry/credentials.env")

# The kubeconfig deployer uses by default: it reaches the apiserver over the veth from the root netns.
KUBECONFIG = STATE / "kubeconfig"

NETNS = f"deployer-e2e{_SUFFIX}"
NETNS_PATH = Path("/run/netns") / NETNS
VETH_HOST = f"dple2e{INSTANCE}-host"  # interface names are limited to 15 characters
VETH_NS = f"dple2e{INSTANCE}-ns"
HOST_VETH_IP = f"10.200.255.{4 * _INDEX + 1}"
NS_VETH_IP = f"10.200.255.{4 * _INDEX + 2}"
# kubelet's cgroupfs parent for pods: <controller>/<CGROUP_ROOT>/kubepods
CGROUP_ROOT = f"/deployer-e2e{_SUFFIX}" if INSTANCE else "/"
CNI_NETWORK = NETNS
VETH_PREFIX = 30
NODE_IP = "10.200.0.2"  # on the netns's lo: kubelet refuses a loopback node IP
NODE_NAME = "deployer-node"
SERVICE_CIDR = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"
# CoreDNS (e2e/localcluster/dns.py) behind the conventional kube-dns Service address; kubelet's clusterDNS.
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
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
