"""The kind provider: `e2e/cluster up --provider kind` (or DEPLOYER_CLUSTER_PROVIDER=kind).

kind (built by e2e/tools.sh) runs the cluster's nodes as containers of the stack's docker engine, on
the docker network `deployer-kind`. Node image: KIND_NODE_IMAGE if set; else kind's stock
`kindest/node` when the engine has it or can pull it; else (this offline VM) the image built here by
kind_image.py. Topology: DEPLOYER_KIND_NODES=1 (default, fastest) or 3 (one control plane and two
workers); each topology is its own cluster with its own kubeconfig, so both can run at once, and
both beside the local provider (no shared address, port or kubeconfig).

What this VM needs, all in configuration (local-cluster.md §4.1):
- docker 20.10 cannot grant `--privileged` here (no CAP_SYS_RESOURCE in the bounding set): kind runs
  with e2e/kind/bin first on its PATH, whose `docker` swaps the flag for the same access minus that
  capability, unless a probe shows the engine grants --privileged;
- cgroup v1 controllers are read-only in the container: the node image's entrypoint remounts them;
- negative OOM scores are refused: containerd `restrict_oom_score_adj`, kubelet and kube-proxy
  `oomScoreAdj: 0` through kubeadm config patches;
- no default docker bridge: the provider creates its own network;
- the registry (127.0.0.1:5000 on the host, htpasswd auth) is reached from the nodes under the same
  image references: containerd's hosts.toml for 127.0.0.1:5000 points at a forwarder on the docker
  network's gateway address, with the credentials from credentials.env in containerd's config.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from . import kind_image
from . import layout as L
from .configs import registry_credentials
from .host import ClusterError, say

REPO = Path(__file__).resolve().parents[2]
WRAPPER_DIR = REPO / "e2e" / "kind" / "bin"
DOCKER = "/usr/bin/docker"
NETWORK = "deployer-kind"
STOCK_IMAGE = "kindest/node:v1.32.2"  # kind v0.27.0's default for Kubernetes 1.32
STATE_ROOT = Path("/var/lib/deployer/kind")
POD_SUBNET = "10.244.0.0/16"
SERVICE_SUBNET = "10.96.0.0/16"
READY_TIMEOUT = 300.0
# CPU weight of each node container. A node holds a whole cluster (control plane and pods) in one
# cgroup, which by default weighs as much as one host process; the local provider's control plane runs
# as separate host processes beside a kubepods cgroup of weight 2048. Under load, the default starved
# the node's pods (apps missed 5-6 s readiness windows); four processes' worth is closer to local.
CPU_SHARES = 4096


def nodes_wanted() -> int:
    value = os.environ.get("DEPLOYER_KIND_NODES", "1")
    if value not in ("1", "3"):
        raise ClusterError(f"DEPLOYER_KIND_NODES must be 1 or 3 (got {value!r})")
    return int(value)


def name() -> str:
    """The kind cluster: one per topology; DEPLOYER_KIND_CLUSTER names another (bench/cluster.py)."""
    default = "deployer-e2e" if nodes_wanted() == 1 else "deployer-e2e-multi"
    return os.environ.get("DEPLOYER_KIND_CLUSTER", default)


def state() -> Path:
    return STATE_ROOT / name()


def kubeconfig() -> Path:
    """Where `up` writes the cluster's kubeconfig (never the local provider's)."""
    return state() / "kubeconfig"


def _docker(*args: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise ClusterError(f"docker {' '.join(args)} failed: {(r.stderr or r.stdout).strip()}")
    return r


def require_docker() -> None:
    """No engine → the fix, before anything else runs."""
    try:
        ok = _docker("info", "--format", "{{.ServerVersion}}", timeout=30).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        raise ClusterError(
            "no docker engine answers (kind runs its nodes in docker); start it: scripts/stack up"
        )


def _kind_env(wrapped: bool) -> dict[str, str]:
    env = {**os.environ, "KIND_EXPERIMENTAL_DOCKER_NETWORK": NETWORK}
    if wrapped:
        env["PATH"] = f"{WRAPPER_DIR}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def _kind(*args: str, wrapped: bool = True, **kw) -> subprocess.CompletedProcess[str]:
    exe = L.tool("kind")
    if not Path(exe).exists():
        raise ClusterError(f"{exe} is missing; build the pinned tools: e2e/tools.sh")
    return subprocess.run([exe, *args], text=True, env=_kind_env(wrapped), **kw)


def _kubectl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [L.tool("kubectl"), f"--kubeconfig={kubeconfig()}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def node_image() -> tuple[str, bool]:
    """(image, built here): KIND_NODE_IMAGE, else stock kindest/node if present or pullable, else ours."""
    if os.environ.get("KIND_NODE_IMAGE"):
        return os.environ["KIND_NODE_IMAGE"], False
    if _docker("image", "inspect", STOCK_IMAGE).returncode == 0:
        return STOCK_IMAGE, False
    if os.environ.get("DEPLOYER_KIND_PULL", "1") == "1":
        try:
            if _docker("pull", "-q", STOCK_IMAGE, timeout=60).returncode == 0:
                return STOCK_IMAGE, False
        except subprocess.TimeoutExpired:
            pass
        say(f"{STOCK_IMAGE} cannot be pulled here; using the locally built node image")
    return kind_image.ensure(), True


def _privileged_works(image: str) -> bool:
    """Whether the engine grants --privileged (it does not on hosts without CAP_SYS_RESOURCE)."""
    r = _docker("run", "--rm", "--privileged", "--network", "none", "--entrypoint", "/bin/true", image)
    return r.returncode == 0


# The local provider's addresses on the host: its veths (10.200.255.x/30 per instance) and node IPs.
# Pod and Service ranges need no check: each cluster keeps them inside its own netns or node containers.
LOCAL_PROVIDER_RANGE = ipaddress.ip_network("10.200.0.0/16")


def collision(subnet: str) -> str | None:
    """Why the nodes' docker network cannot run beside the local provider, or None when it can."""
    net = ipaddress.ip_network(subnet, strict=False)
    if net.version == 4 and net.overlaps(LOCAL_PROVIDER_RANGE):
        return (
            f"docker network {NETWORK} has subnet {net}, which overlaps the local provider's "
            f"{LOCAL_PROVIDER_RANGE} (its veths and node IP); remove it (docker network rm {NETWORK}) "
            "and give docker an address pool outside that range (daemon.json default-address-pools)"
        )
    return None


def ensure_network() -> str:
    """The docker network of the nodes (created here, IPv4 only, masqueraded); returns its gateway."""
    if _docker("network", "inspect", NETWORK).returncode != 0:
        _docker(
            "network", "create", "--driver", "bridge",
            "--opt", "com.docker.network.bridge.enable_ip_masquerade=true",
            "--opt", "com.docker.network.driver.mtu=1500",
            NETWORK, check=True,
        )  # fmt: skip
    info = json.loads(_docker("network", "inspect", NETWORK, check=True).stdout)[0]
    for cfg in info["IPAM"]["Config"]:
        if problem := collision(cfg["Subnet"]):
            raise ClusterError(problem)
    for cfg in info["IPAM"]["Config"]:
        if "." in cfg.get("Gateway", ""):
            return cfg["Gateway"]
    raise ClusterError(f"docker network {NETWORK} has no IPv4 gateway: {info['IPAM']['Config']}")


def _forwarder_pidfile() -> Path:
    return STATE_ROOT / "registry-forwarder.pid"


def _forwarder_alive() -> bool:
    try:
        pid = int(_forwarder_pidfile().read_text())
        return Path(f"/proc/{pid}/comm").read_text().strip() == "socat"
    except (OSError, ValueError):
        return False


def ensure_registry_forwarder(gateway: str) -> str:
    """The build stack's registry, on the nodes' network: gateway:5000 → 127.0.0.1:5000."""
    endpoint = f"{gateway}:{L.REGISTRY_PORT}"
    if not _forwarder_alive():
        STATE_ROOT.mkdir(parents=True, exist_ok=True)
        log = open(STATE_ROOT / "registry-forwarder.log", "ab")  # noqa: SIM115 (the child keeps it)
        proc = subprocess.Popen(
            ["socat", f"TCP-LISTEN:{L.REGISTRY_PORT},bind={gateway},fork,reuseaddr", f"TCP:{L.REGISTRY}"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        _forwarder_pidfile().write_text(str(proc.pid))
        time.sleep(0.3)
        if proc.poll() is not None:
            raise ClusterError(
                f"registry forwarder on {endpoint} exited; see {STATE_ROOT / 'registry-forwarder.log'}"
            )
    return endpoint


def stop_registry_forwarder() -> None:
    if _forwarder_alive():
        os.kill(int(_forwarder_pidfile().read_text()), signal.SIGTERM)
    _forwarder_pidfile().unlink(missing_ok=True)


def config_yaml(endpoint: str, built_here: bool, workers: int) -> str:
    """kind's cluster config: nodes, the registry mirror with credentials, this VM's OOM settings."""
    creds = registry_credentials()
    auth = ""
    if creds:
        auth = (
            f'\n    [plugins."io.containerd.grpc.v1.cri".registry.configs."{endpoint}".auth]\n'
            f'      username = "{creds[0]}"\n      password = "{creds[1]}"'
        )
    mounts = f"""  extraMounts:
  - hostPath: {state() / "certs.d"}
    containerPath: /etc/containerd/certs.d
    readOnly: true
"""
    nodes = "- role: control-plane\n" + mounts + ("- role: worker\n" + mounts) * workers
    # One control plane: no leader election, which on a loaded machine loses its lease and restarts
    # the controller manager and scheduler mid-rollout (the local provider runs them the same way).
    # Our image carries etcd 3.5.21 and CoreDNS 1.12.3 (the project's pins), not kubeadm's defaults.
    pins = (
        f"""  etcd:
    local:
      imageTag: {kind_image.ETCD_TAG}
  dns:
    imageTag: {kind_image.COREDNS_TAG}
"""
        if built_here
        else ""
    )
    # kubeadm's 4 min wait for a healthy API server was too short at load average ~57 here.
    cluster = f"""- |
  kind: ClusterConfiguration
  apiServer:
    timeoutForControlPlane: 10m0s
  controllerManager:
    extraArgs:
      leader-elect: "false"
  scheduler:
    extraArgs:
      leader-elect: "false"
{pins}"""
    return f"""kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  podSubnet: {POD_SUBNET}
  serviceSubnet: {SERVICE_SUBNET}
nodes:
{nodes}containerdConfigPatches:
- |-
    [plugins."io.containerd.grpc.v1.cri"]
      restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/etc/containerd/certs.d"{auth}
kubeadmConfigPatches:
{cluster}- |
  kind: KubeletConfiguration
  oomScoreAdj: 0
  failCgroupV1: false
- |
  kind: KubeProxyConfiguration
  oomScoreAdj: 0
"""


def _write_registry_hosts(endpoint: str) -> None:
    hosts = state() / "certs.d" / L.REGISTRY / "hosts.toml"
    hosts.parent.mkdir(parents=True, exist_ok=True)
    hosts.write_text(
        f"# {L.REGISTRY} as the charts name it, served by the forwarder on the nodes' network.\n"
        f'server = "http://{endpoint}"\n[host."http://{endpoint}"]\n  capabilities = ["pull", "resolve"]\n'
    )


def _created() -> Path:
    """Written once `up` saw the cluster Ready: its node container ids and whether kind was wrapped."""
    return state() / "created.json"


def _node_ids() -> list[str]:
    args = ["ps", "-aq", "--no-trunc", "--filter", f"label=io.x-k8s.kind.cluster={name()}"]
    return sorted(_docker(*args).stdout.split())


def _restore_kubeconfig() -> bool:
    """Export the kubeconfig again from the control plane of a cluster `up` finished creating.

    Only for those nodes: an interrupted `kind create` may have run kubeadm init (so a kubeconfig
    could be exported) and still lack kind's later steps (workers joined, storage class).
    """
    try:
        created = json.loads(_created().read_text())
    except (OSError, ValueError):
        return False
    if created.get("nodes") != _node_ids():
        return False
    r = _kind(
        "export", "kubeconfig", f"--name={name()}", f"--kubeconfig={kubeconfig()}",
        wrapped=bool(created.get("wrapped")), capture_output=True,
    )  # fmt: skip
    return r.returncode == 0


def _containers(all_states: bool = True) -> list[str]:
    args = ["ps", "--format", "{{.Names}}", "--filter", f"label=io.x-k8s.kind.cluster={name()}"]
    out = _docker(*args, *(["-a"] if all_states else [])).stdout
    return sorted(out.split())


def _healthy() -> str | None:
    """None when the cluster is whole and Ready; else what is wrong (to decide on repair)."""
    expected = 1 + (nodes_wanted() - 1)
    running = _containers(all_states=False)
    if len(running) != expected or len(_containers()) != expected:
        return f"{len(running)} of {expected} node containers running"
    if not kubeconfig().is_file():
        return "kubeconfig missing"
    try:
        ready = ready_nodes(kubeconfig(), timeout=20)
    except ClusterError as e:
        return str(e)
    if len(ready) != expected:
        return f"{len(ready)} of {expected} nodes Ready"
    return None


def ready_nodes(config: Path, timeout: float = 60) -> list[str]:
    """Names of the Ready nodes of the cluster `config` points at; ClusterError when it does not answer."""
    try:
        r = subprocess.run(
            [L.tool("kubectl"), f"--kubeconfig={config}", "get", "nodes", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise ClusterError("API server does not answer") from None
    if r.returncode != 0:
        raise ClusterError(f"API server does not answer: {r.stderr.strip()[:200]}")
    return [
        n["metadata"]["name"]
        for n in json.loads(r.stdout)["items"]
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    ]


def _weigh_nodes() -> None:
    _docker("update", "--cpu-shares", str(CPU_SHARES), *_containers(), check=True)


def _wait_ready() -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    problem: str | None = "not checked"
    while time.monotonic() < deadline:
        problem = _healthy()
        if problem is None:
            break
        time.sleep(2)
    else:
        raise ClusterError(
            f"kind cluster {name()} not Ready after {READY_TIMEOUT:.0f}s: {problem}; see e2e/cluster logs"
        )
    say("all nodes Ready")
    for what in (("deployment/coredns",), ("serviceaccount/default",)):
        while time.monotonic() < deadline:
            if what[0].startswith("deployment"):
                r = _kubectl("-n", "kube-system", "rollout", "status", what[0], "--timeout=10s", timeout=30)
            else:
                r = _kubectl("-n", "default", "get", what[0], timeout=20)
            if r.returncode == 0:
                say(f"{what[0]}: ok")
                break
            time.sleep(2)
        else:
            raise ClusterError(f"{what[0]} not ready after {READY_TIMEOUT:.0f}s: {r.stderr.strip()[:300]}")


def up() -> None:
    start = time.monotonic()
    require_docker()
    state().mkdir(parents=True, exist_ok=True)
    exists = name() in _kind("get", "clusters", capture_output=True).stdout.split()
    if exists:
        problem = _healthy()
        if problem == "kubeconfig missing" and _restore_kubeconfig():
            problem = _healthy()
            if problem is None:
                say(f"kubeconfig restored from the running control plane: {kubeconfig()}")
        if problem is None:
            gateway = ensure_network()
            ensure_registry_forwarder(gateway)
            _weigh_nodes()
            say(f"kind cluster {name()} is up; KUBECONFIG={kubeconfig()}")
            return
        # A cluster half created (interrupted `up`, a stopped node, a lost kubeconfig) is recreated
        # rather than patched: kind cannot re-run its provisioning steps on existing nodes.
        say(f"kind cluster {name()} is not healthy ({problem}); recreating it")
        _created().unlink(missing_ok=True)
        _kind("delete", "cluster", f"--name={name()}", capture_output=True)
    image, built_here = node_image()
    gateway = ensure_network()
    endpoint = ensure_registry_forwarder(gateway)
    _write_registry_hosts(endpoint)
    cfg = state() / "kind.yaml"
    cfg.touch(mode=0o600)
    cfg.write_text(config_yaml(endpoint, built_here, nodes_wanted() - 1))
    wrapped = not _privileged_works(image)
    if wrapped:
        say("docker cannot grant --privileged here; kind runs through e2e/kind/bin/docker")
    say(f"creating kind cluster {name()} ({nodes_wanted()} node(s), image {image})")
    log = state() / "kind-create.log"
    with log.open("w") as f:
        r = _kind(
            "create", "cluster", f"--name={name()}", f"--image={image}", f"--config={cfg}",
            f"--kubeconfig={kubeconfig()}", "--wait=0s", "--retain", "-v=1",
            wrapped=wrapped, stdout=f, stderr=subprocess.STDOUT,
        )  # fmt: skip
    if r.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        raise ClusterError(
            f"kind create cluster failed (exit {r.returncode}); nodes kept for `e2e/cluster logs`, "
            f"log: {log}\n{tail}"
        )
    _weigh_nodes()
    _wait_ready()
    _created().write_text(json.dumps({"nodes": _node_ids(), "wrapped": wrapped}))
    say(f"kind cluster {name()} up in {time.monotonic() - start:.1f}s; KUBECONFIG={kubeconfig()}")


def down(purge: bool = False) -> None:
    require_docker()
    if name() in _kind("get", "clusters", capture_output=True).stdout.split() or _containers():
        say(f"deleting kind cluster {name()}")
        _kind("delete", "cluster", f"--name={name()}", capture_output=True)
    # `kind delete` removes the node containers with their volumes; the network and the forwarder
    # are ours, shared by both topologies, so they go when no node is left on the network.
    left = _docker("network", "inspect", NETWORK, "--format", "{{len .Containers}}")
    if left.returncode == 0 and left.stdout.strip() == "0":
        stop_registry_forwarder()
        _docker("network", "rm", NETWORK)
    kubeconfig().unlink(missing_ok=True)
    _created().unlink(missing_ok=True)
    if purge:
        for f in sorted(state().rglob("*"), reverse=True):
            f.rmdir() if f.is_dir() else f.unlink()
    say(f"kind cluster {name()} down")


def status() -> bool:
    present = name() in _kind("get", "clusters", capture_output=True).stdout.split()
    problem = _healthy() if present else "absent"
    print(f"provider:   kind (cluster {name()}, {nodes_wanted()} node(s))")
    print(f"nodes:      {', '.join(_containers()) or '-'}")
    print(f"kubeconfig: {kubeconfig()}")
    print(f"registry:   {L.REGISTRY} via forwarder ({'running' if _forwarder_alive() else 'stopped'})")
    print(f"state:      {'Ready' if problem is None else problem}")
    return problem is None


# Components with a systemd unit in the node; anything else is exported with `kind export logs`.
UNITS = ("kubelet", "containerd", "deployer-cni", "deployer-preload-images")


def logs(component: str | None, lines: int, follow: bool) -> None:
    if component in UNITS:
        for node in _containers():
            print(f"== {node}: {component}", flush=True)
            args = [
                "journalctl",
                "-u",
                component,
                "-n",
                str(lines),
                "--no-pager",
                *(["-f"] if follow else []),
            ]
            subprocess.run([DOCKER, "exec", node, *args])
        return
    if component:
        raise ClusterError(
            f"unknown component {component!r}; one of {', '.join(UNITS)}, or none for all logs"
        )
    out = state() / "logs"
    _kind("export", "logs", str(out), f"--name={name()}", capture_output=True)
    print(f"kind logs of every node exported to {out}")
