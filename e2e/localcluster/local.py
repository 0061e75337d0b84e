"""The default provider: upstream components as host processes inside one isolated network namespace.

Topology (all addresses exist only in the netns, which has no default route):
  root netns: deployer, docker, registry 127.0.0.1:5000, veth dple2e-host 10.200.255.1/30,
              socat 10.200.255.1:5000 -> 127.0.0.1:5000,
              team registry (scripts/team-registry) on 127.0.0.2:5443/5444, socat 10.200.255.1:544x -> it
  netns deployer-e2e: lo 127.0.0.1 + node IP 10.200.0.2/32, veth dple2e-ns 10.200.255.2/30,
              k8s-svc bridge (route sink for 10.96.0.0/16), cni0 10.244.0.1/24 (pods),
              socat 127.0.0.1:5000 -> 10.200.255.1:5000, socat 127.0.0.2:544x -> 10.200.255.1:544x,
              etcd, kube-apiserver :6443, kcm, scheduler,
              containerd (own socket), kubelet, kube-proxy
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime

from . import configs, dns, host, pause, pki, procs
from . import layout as L
from .api import Api, node_ready, pod_running
from .host import ClusterError, say
from .procs import Component

T = L.tool
CTR = ["ctr", "-a", str(L.CONTAINERD_SOCK), "-n", "k8s.io"]


def _team_registry_forwarders() -> list[Component]:
    """The same pair of forwarders for each port of the team registry (registry, token issuer).

    Its host name resolves through /etc/hosts, which the netns shares, to 127.0.0.2: a loopback
    address in both namespaces, so image references and the token realm work unchanged in both.
    """
    ip = configs.TEAM_REGISTRY_IP
    comps = []
    for port in (configs.TEAM_REGISTRY_PORT, configs.TEAM_TOKEN_PORT):
        host_side = [f"TCP-LISTEN:{port},bind={L.HOST_VETH_IP},reuseaddr,fork", f"TCP:{ip}:{port}"]
        netns_side = [f"TCP-LISTEN:{port},bind={ip},reuseaddr,fork", f"TCP:{L.HOST_VETH_IP}:{port}"]
        comps.append(Component(f"team-registry-forward-host-{port}", ["socat", *host_side], in_netns=False))
        comps.append(Component(f"team-registry-forward-netns-{port}", ["socat", *netns_side]))
    return comps


TEAM_REGISTRY_FORWARDERS = [c.name for c in _team_registry_forwarders()]


def components() -> list[Component]:
    """Every long-running process, in start order."""
    pk = L.PKI
    etc = L.ETC
    return [
        Component(
            "etcd",
            [
                T("etcd"),
                "--name=e2e",
                f"--data-dir={L.DATA / 'etcd'}",
                "--listen-client-urls=http://127.0.0.1:2379",
                "--advertise-client-urls=http://127.0.0.1:2379",
                "--listen-peer-urls=http://127.0.0.1:2380",
                "--initial-advertise-peer-urls=http://127.0.0.1:2380",
                "--initial-cluster=e2e=http://127.0.0.1:2380",
                "--listen-metrics-urls=http://127.0.0.1:2381",
                # Throw-away test data: durability is not worth the fsync latency.
                "--unsafe-no-fsync",
                "--quota-backend-bytes=2147483648",
                "--log-level=warn",
            ],
        ),
        Component(
            "kube-apiserver",
            [
                T("kube-apiserver"),
                "--etcd-servers=http://127.0.0.1:2379",
                "--bind-address=0.0.0.0",
                "--secure-port=6443",
                f"--advertise-address={L.NODE_IP}",
                f"--service-cluster-ip-range={L.SERVICE_CIDR}",
                f"--tls-cert-file={pk / 'apiserver.crt'}",
                f"--tls-private-key-file={pk / 'apiserver.key'}",
                f"--client-ca-file={pk / 'ca.crt'}",
                f"--kubelet-client-certificate={pk / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pk / 'apiserver-kubelet-client.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pk / 'sa.pub'}",
                f"--service-account-signing-key-file={pk / 'sa.key'}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--allow-privileged=true",
                # The node's hostname is not resolvable (no DNS in the netns): dial kubelet at its IP.
                "--kubelet-preferred-address-types=InternalIP",
                # Front-proxy (requestheader) settings: aggregated APIs work, and kcm/scheduler find
                # the CA bundle they look for in kube-system/extension-apiserver-authentication.
                f"--requestheader-client-ca-file={pk / 'ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pk / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={pk / 'front-proxy-client.key'}",
                # Webhooks and aggregated APIs are dialled at pod IPs: the apiserver never needs kube-proxy.
                "--enable-aggregator-routing=true",
                "--profiling=false",
                "--v=1",
            ],
            config_files=(pk / "apiserver.crt",),
        ),
        Component(
            "kube-controller-manager",
            [
                T("kube-controller-manager"),
                f"--kubeconfig={etc / 'kcm.kubeconfig'}",
                f"--authentication-kubeconfig={etc / 'kcm.kubeconfig'}",
                f"--authorization-kubeconfig={etc / 'kcm.kubeconfig'}",
                "--bind-address=127.0.0.1",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pk / 'sa.key'}",
                f"--root-ca-file={pk / 'ca.crt'}",
                f"--cluster-signing-cert-file={pk / 'ca.crt'}",
                f"--cluster-signing-key-file={pk / 'ca.key'}",
                f"--service-cluster-ip-range={L.SERVICE_CIDR}",
                f"--flex-volume-plugin-dir={L.DATA / 'volume-plugins'}",
                "--v=1",
            ],
        ),
        Component(
            "kube-scheduler",
            [
                T("kube-scheduler"),
                f"--kubeconfig={etc / 'scheduler.kubeconfig'}",
                f"--authentication-kubeconfig={etc / 'scheduler.kubeconfig'}",
                f"--authorization-kubeconfig={etc / 'scheduler.kubeconfig'}",
                "--bind-address=127.0.0.1",
                "--leader-elect=false",
                "--v=1",
            ],
        ),
        # The registry listens on the root netns's loopback; these two forwarders make the same
        # address, 127.0.0.1:5000, reach it from inside the cluster netns (over the veth).
        Component(
            "registry-forward-host",
            [
                "socat",
                f"TCP-LISTEN:{L.REGISTRY_PORT},bind={L.HOST_VETH_IP},reuseaddr,fork",
                f"TCP:127.0.0.1:{L.REGISTRY_PORT}",
            ],
            in_netns=False,
        ),
        Component(
            "registry-forward-netns",
            [
                "socat",
                f"TCP-LISTEN:{L.REGISTRY_PORT},bind=127.0.0.1,reuseaddr,fork",
                f"TCP:{L.HOST_VETH_IP}:{L.REGISTRY_PORT}",
            ],
        ),
        *_team_registry_forwarders(),
        Component(
            "containerd",
            ["containerd", f"--config={configs.CONTAINERD_TOML}"],
            config_files=(configs.CONTAINERD_TOML,),
        ),
        Component(
            "kubelet",
            [
                T("kubelet"),
                f"--config={configs.KUBELET_YAML}",
                f"--kubeconfig={etc / 'kubelet.kubeconfig'}",
                f"--root-dir={L.KUBELET_DIR}",
                f"--cert-dir={L.KUBELET_DIR / 'pki'}",
                f"--hostname-override={L.NODE_NAME}",
                f"--node-ip={L.NODE_IP}",
                # Deprecated, but still keeps the locally built sandbox image out of image GC.
                f"--pod-infra-container-image={L.PAUSE_IMAGE}",
                "--v=1",
            ],
            config_files=(configs.KUBELET_YAML,),
        ),
        Component(
            "kube-proxy",
            [T("kube-proxy"), f"--config={configs.KUBE_PROXY_YAML}", "--v=1"],
            config_files=(configs.KUBE_PROXY_YAML,),
        ),
    ]


def by_name() -> dict[str, Component]:
    return {c.name: c for c in components()}


def wait_for(what: str, check: Callable[[], bool], timeout: float, watch: list[str]) -> None:
    """Poll `check` until true; fail early, with the log tail, if a watched component dies."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            say(f"{what}: ok")
            return
        for name in watch:
            procs.ensure_alive(name)
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n}:\n{procs.tail(L.LOGS / f'{n}.log', 15)}" for n in watch)
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        time.sleep(0.5)


def check_tools() -> None:
    missing = [
        b
        for b in (
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kubelet",
            "kube-proxy",
            "coredns",
        )
        if not (L.TOOLS_BIN / b).exists()
    ]
    if missing:
        raise ClusterError(f"missing in {L.TOOLS_BIN}: {', '.join(missing)}; build them with e2e/tools.sh")


def _etcd_healthy() -> bool:
    r = host.run(
        [T("etcdctl"), "--endpoints=http://127.0.0.1:2379", "endpoint", "health"],
        check=False,
        quiet=True,
        netns=True,
    )
    return r.returncode == 0


def _containerd_answers() -> bool:
    return host.run([*CTR, "version"], check=False, quiet=True).returncode == 0


def _cri_ready() -> bool:
    """containerd's CRI service has finished its start-up (it loads its sandboxes in the background):
    until then every CRI call, the kubelet's first included, fails with "server is not initialized yet"
    and the kubelet exits."""
    r = host.run(
        [T("crictl"), "--runtime-endpoint", f"unix://{L.CONTAINERD_SOCK}", "--timeout", "2s", "info"],
        check=False,
        quiet=True,
    )
    if r.returncode != 0:
        return False
    conditions = json.loads(r.stdout).get("status", {}).get("conditions", [])
    return any(c.get("type") == "RuntimeReady" and c.get("status") for c in conditions)


def _node_ready_since(api: Api, path: str, since: datetime | None) -> bool:
    """Ready, and, when the kubelet was (re)started at `since`, by a status it posted after that: the
    Node object keeps the Ready of the kubelet's previous run (up to its 40 s lease) after it died."""
    node = api.get(path)
    if not node_ready(node):
        return False
    if since is None:
        return True
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    beat = ready.get("lastHeartbeatTime")
    return bool(beat) and datetime.fromisoformat(beat.replace("Z", "+00:00")) >= since


def _ensure_image(tag: str, archive: Callable[[], bytes], what: str) -> None:
    """Import a locally built image into the cluster's containerd unless that tag is there already."""
    listed = host.run([*CTR, "images", "ls", "-q"]).stdout.split()
    if tag in listed:
        return
    proc = subprocess.run([*CTR, "images", "import", "-"], input=archive(), capture_output=True)
    if proc.returncode != 0:
        raise ClusterError(f"importing {tag} failed: {proc.stderr.decode(errors='replace')}")
    say(f"imported {what} {tag}")


def _smoke_pod() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": L.SMOKE_POD, "labels": {"app": L.SMOKE_POD}},
        "spec": {
            "containers": [{"name": "pause", "image": L.PAUSE_IMAGE, "imagePullPolicy": "Never"}],
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
        },
    }


def up() -> None:
    """Bring the cluster up, or complete/repair a partly running one; returns when a test pod runs."""
    started = time.monotonic()
    host.ensure_packages()
    check_tools()
    host.ensure_rshared_root()
    host.ensure_cgroup_root()
    host.ensure_netns()
    for d in (L.LOGS, L.PIDS, L.DATA, L.RUN, configs.POD_LOGS_DIR, L.KUBELET_DIR):
        d.mkdir(parents=True, exist_ok=True)
    pki.ensure_pki()
    pki.ensure_kubeconfigs()
    if configs.registry_credentials() is None:
        say(
            f"warning: no registry credentials at {L.REGISTRY_CREDENTIALS} (scripts/stack up writes them); "
            "pulls from the local registry will be refused until they exist and `up` runs again"
        )
    configs.write_all()
    comps = by_name()
    api = Api()

    procs.start(comps["etcd"])
    wait_for("etcd healthy", _etcd_healthy, 60, ["etcd"])
    procs.start(comps["kube-apiserver"])
    wait_for("kube-apiserver ready", api.ready, 120, ["etcd", "kube-apiserver"])
    for name in (
        "kube-controller-manager",
        "kube-scheduler",
        "registry-forward-host",
        "registry-forward-netns",
        *TEAM_REGISTRY_FORWARDERS,
        "containerd",
    ):
        procs.start(comps[name])
    # Not just the socket file: after a crash a stale one is left behind until containerd listens again.
    wait_for("containerd answers", _containerd_answers, 30, ["containerd"])
    wait_for("containerd's CRI ready", _cri_ready, 60, ["containerd"])
    _ensure_image(L.PAUSE_IMAGE, lambda: pause.docker_archive(L.PAUSE_IMAGE), "sandbox image (catatonit)")
    dns_image = dns.image_tag()
    _ensure_image(dns_image, lambda: dns.image_archive(dns_image), "CoreDNS image")
    # Whole seconds: the kubelet's heartbeat times have no fraction.
    kubelet_start = datetime.now(UTC).replace(microsecond=0)
    kubelet_before = procs.running_pid(comps["kubelet"].pidfile)
    kubelet_started = procs.start(comps["kubelet"]) != kubelet_before
    procs.start(comps["kube-proxy"])
    node = f"/api/v1/nodes/{L.NODE_NAME}"
    # A kubelet left running (same configuration) posts status only on change: its Ready is current.
    since = kubelet_start if kubelet_started else None
    wait_for(
        f"node {L.NODE_NAME} Ready",
        lambda: _node_ready_since(api, node, since),
        180,
        ["containerd", "kubelet", "kube-apiserver"],
    )
    ns = L.SMOKE_NAMESPACE
    wait_for(
        "default service account",
        lambda: api.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default") is not None,
        60,
        ["kube-controller-manager"],
    )
    pod_path = f"/api/v1/namespaces/{ns}/pods/{L.SMOKE_POD}"
    existing = api.get(pod_path)
    if existing and existing.get("status", {}).get("phase") in ("Failed", "Succeeded", "Unknown"):
        # A finished smoke pod (e.g. after a reboot) proves nothing: replace it.
        api.request("DELETE", f"{pod_path}?gracePeriodSeconds=0")
        wait_for("old smoke pod deleted", lambda: api.get(pod_path) is None, 60, ["kube-apiserver"])
        existing = None
    if existing is None:
        status, text = api.request("POST", f"/api/v1/namespaces/{ns}/pods", _smoke_pod())
        if status not in (201, 409):
            raise ClusterError(f"creating the smoke pod failed: HTTP {status}: {text[:500]}")
    wait_for(
        f"pod {ns}/{L.SMOKE_POD} running",
        lambda: pod_running(api.get(pod_path)),
        120,
        ["containerd", "kubelet", "kube-scheduler"],
    )
    dns.apply(api, dns_image)
    wait_for(
        f"cluster DNS (CoreDNS, Service {L.DNS_SERVICE_IP})",
        lambda: dns.ready(api),
        120,
        ["containerd", "kubelet", "kube-controller-manager"],
    )
    say(f"cluster up in {time.monotonic() - started:.1f}s; KUBECONFIG={L.KUBECONFIG}")


def down(purge: bool = False) -> None:
    """Stop everything and remove every process, mount, cgroup, netns and runtime file of the cluster.

    Certificates, configs and logs stay (so kubeconfigs remain valid) unless `purge`.
    """
    started = time.monotonic()
    for name in ("kubelet", "kube-proxy"):
        procs.stop(name)
    # Container processes next (they keep rootfs and volume mounts busy). Pods are throw-away, and a
    # container's pid 1 often ignores SIGTERM, so they get only a short grace before SIGKILL.
    pods = host.pids_in_kubepods()
    if pods:
        say(f"killing {len(pods)} container processes")
        procs.kill_pids(pods, timeout=0.5)
    for name in ("containerd", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
        procs.stop(name)
    for name in ("registry-forward-netns", "registry-forward-host", *TEAM_REGISTRY_FORWARDERS):
        procs.stop(name, children=True)
    # containerd shims outlive containerd by design; they, and anything else left, live in our netns.
    leftovers = host.pids_in_netns()
    if leftovers:
        say(f"killing {len(leftovers)} leftover processes in netns {L.NETNS}: {leftovers}")
        procs.kill_pids(leftovers, timeout=5)
    host.unmount_under(L.RUN, L.DATA)
    host.remove_kubepods_cgroups()
    host.remove_host_leftovers(configs.POD_LOGS_DIR, configs.CNI_NETWORK)
    host.delete_netns()
    for d in (L.RUN, L.DATA, L.PIDS):
        shutil.rmtree(d, ignore_errors=True)
    if purge:
        shutil.rmtree(L.STATE, ignore_errors=True)
    left = host.mounts_under(L.RUN, L.DATA)
    if left or host.netns_exists():
        raise ClusterError(f"down incomplete: mounts left {left}, netns exists: {host.netns_exists()}")
    say(f"cluster down in {time.monotonic() - started:.1f}s")


def status() -> bool:
    """Print what runs; True when every component runs and the node is Ready."""
    ok = host.netns_exists()
    print(f"provider:   local (host processes in netns {L.NETNS}: {'present' if ok else 'absent'})")
    print(f"kubeconfig: {L.KUBECONFIG}  (server {L.APISERVER_URL})")
    total = 0
    for comp in components():
        pid = procs.running_pid(comp.pidfile)
        if pid is None:
            ok = False
            print(f"  {comp.name:24} stopped")
        else:
            rss = procs.rss_kib(pid)
            total += rss
            print(f"  {comp.name:24} running  pid {pid:<8} rss {rss // 1024:5d} MiB")
    shims = [p for p in host.pids_in_netns() if "shim" in _comm(p)]
    shim_rss = sum(procs.rss_kib(p) for p in shims)
    print(f"  {'containerd shims':24} {len(shims)} running, rss {shim_rss // 1024} MiB")
    print(f"  total rss of components and shims: {(total + shim_rss) // 1024} MiB")
    if (L.PKI / "admin.crt").exists() and procs.running_pid(L.PIDS / "kube-apiserver.pid"):
        api = Api()
        ready = node_ready(api.get(f"/api/v1/nodes/{L.NODE_NAME}"))
        print(f"node {L.NODE_NAME}: {'Ready' if ready else 'NOT Ready'}")
        dns_ready = dns.ready(api)
        print(f"cluster DNS {L.DNS_SERVICE_IP} (CoreDNS): {'ready' if dns_ready else 'NOT ready'}")
        ok = ok and ready and dns_ready
    return ok


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def log_names() -> list[str]:
    return [c.name for c in components()]


def logs(component: str | None, lines: int, follow: bool) -> None:
    """Show component logs: one component (optionally followed), or the tail of each."""
    names = log_names()
    if component is None:
        for n in names:
            print(f"===== {n} ({L.LOGS / (n + '.log')})")
            print(procs.tail(L.LOGS / f"{n}.log", lines))
        return
    if component not in names:
        raise ClusterError(f"unknown component {component!r}; one of: {', '.join(names)}")
    path = L.LOGS / f"{component}.log"
    if follow:
        subprocess.run(["tail", "-n", str(lines), "-F", str(path)], check=False)
    else:
        print(procs.tail(path, lines))
