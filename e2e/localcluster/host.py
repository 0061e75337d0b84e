"""Host-level helpers: commands, Debian packages, the cluster's network namespace, mounts and cgroups."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import layout as L

_START = time.monotonic()


class ClusterError(RuntimeError):
    """A step of bringing the cluster up or down failed; the message says which and where to look."""


def say(message: str) -> None:
    """Progress line on stderr, with the wall clock and seconds since the command started."""
    stamp = time.strftime("%H:%M:%S", time.gmtime())
    print(f"[cluster {stamp} +{time.monotonic() - _START:5.1f}s] {message}", file=sys.stderr, flush=True)


def run(
    argv: Sequence[str], *, check: bool = True, quiet: bool = False, netns: bool = False, **kwargs
) -> subprocess.CompletedProcess[str]:
    """Run a command (inside the cluster netns when `netns`), capturing its output as text."""
    cmd = [*in_netns(), *argv] if netns else list(argv)
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise ClusterError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{detail}")
    if not quiet and proc.returncode != 0:
        say(f"(ignored) {' '.join(cmd)}: {(proc.stderr or proc.stdout).strip()[:300]}")
    return proc


def in_netns() -> list[str]:
    """Prefix that runs a command in the cluster netns.

    `nsenter --net` switches only the network namespace. `ip netns exec` must not be used: it also
    unshares the mount namespace and remounts /sys, which hides /sys/fs/cgroup from kubelet and makes
    kubelet's volume mounts invisible to containerd.
    """
    return ["nsenter", f"--net={L.NETNS_PATH}", "--"]


# Commands (or files) the local provider needs, and the Debian package that provides each.
PACKAGES = {
    "containerd": "containerd",
    "containerd-shim-runc-v2": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "/usr/bin/catatonit": "catatonit",
    "ip": "iproute2",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "socat": "socat",
    "nsenter": "util-linux",
    "openssl": "openssl",
}


def ensure_packages() -> None:
    """Install the Debian packages that are missing (quietly; nothing happens when all are present)."""
    missing = sorted(
        {
            pkg
            for what, pkg in PACKAGES.items()
            if not (Path(what).exists() if "/" in what else shutil.which(what))
        }
    )
    if not missing:
        return
    say(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-qq"]
    run([*apt, "update"], env=env)
    run([*apt, "install", "-y", "--no-install-recommends", *missing], env=env)


def ensure_rshared_root() -> None:
    """kubelet and containerd need mount propagation from /, which is a private mount on these VMs."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/":
            if "shared:" not in line.split(" - ")[0]:
                run(["mount", "--make-rshared", "/"])
            return


def netns_exists() -> bool:
    return L.NETNS_PATH.exists()


def ensure_netns() -> None:
    """Create the cluster netns (no default route: nothing in it can reach the outside) and the veth.

    Addresses: the node IP as a /32 on the netns's lo (no `dummy` link type in this kernel), a port-less
    bridge as route sink for the Service CIDR (so netns-local clients reach ClusterIPs through
    kube-proxy's DNAT), and a /30 veth to the root netns, where deployer and the registry run.
    """
    if not netns_exists():
        say(f"creating network namespace {L.NETNS}")
        run(["ip", "netns", "add", L.NETNS])
    ns = {"netns": True}
    run(["ip", "link", "set", "lo", "up"], **ns)
    _ensure_addr(f"{L.NODE_IP}/32", "lo", netns=True)
    if run(["ip", "link", "show", "k8s-svc"], check=False, quiet=True, netns=True).returncode != 0:
        run(["ip", "link", "add", "k8s-svc", "type", "bridge"], **ns)
    run(["ip", "link", "set", "k8s-svc", "up"], **ns)
    run(["ip", "route", "replace", L.SERVICE_CIDR, "dev", "k8s-svc"], **ns)
    if run(["ip", "link", "show", L.VETH_HOST], check=False, quiet=True).returncode != 0:
        run(["ip", "link", "add", L.VETH_HOST, "type", "veth", "peer", "name", L.VETH_NS])
        run(["ip", "link", "set", L.VETH_NS, "netns", L.NETNS])
    _ensure_addr(f"{L.HOST_VETH_IP}/{L.VETH_PREFIX}", L.VETH_HOST, netns=False)
    run(["ip", "link", "set", L.VETH_HOST, "up"])
    _ensure_addr(f"{L.NS_VETH_IP}/{L.VETH_PREFIX}", L.VETH_NS, netns=True)
    run(["ip", "link", "set", L.VETH_NS, "up"], **ns)
    # Defaults in a new netns on these VMs; set anyway since pod traffic depends on them.
    run(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1"], **ns)


def _ensure_addr(cidr: str, dev: str, *, netns: bool) -> None:
    shown = run(["ip", "-o", "addr", "show", "dev", dev], netns=netns).stdout
    if f" {cidr} " not in shown:
        run(["ip", "addr", "add", cidr, "dev", dev], netns=netns)


def delete_netns() -> None:
    """Delete the netns: this drops the veth, cni0, k8s-svc and every iptables rule of the cluster."""
    if run(["ip", "link", "show", L.VETH_HOST], check=False, quiet=True).returncode == 0:
        run(["ip", "link", "del", L.VETH_HOST], check=False)
    if netns_exists():
        run(["ip", "netns", "del", L.NETNS])


def netns_inode() -> int | None:
    try:
        return L.NETNS_PATH.stat().st_ino
    except FileNotFoundError:
        return None


def pids_in_netns() -> list[int]:
    """Processes whose network namespace is the cluster's (only our components and shims live there)."""
    inode = netns_inode()
    if inode is None:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(entry / "ns" / "net").st_ino == inode:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def kubepods_cgroups() -> list[Path]:
    """The pod cgroup trees of this cluster, one per cgroup v1 controller hierarchy."""
    return sorted(Path("/sys/fs/cgroup").glob(f"*{L.CGROUP_ROOT.rstrip('/')}/kubepods"))


def pids_in_kubepods() -> list[int]:
    """Container processes: kubelet (cgroupfs driver) puts every pod under <controller>/<root>/kubepods."""
    found: set[int] = set()
    for root in kubepods_cgroups():
        for procs in root.rglob("cgroup.procs"):
            try:
                found.update(int(p) for p in procs.read_text().split())
            except OSError:
                continue
    return sorted(found)


def _v1_hierarchies() -> list[Path]:
    return [
        d for d in Path("/sys/fs/cgroup").iterdir() if d.name != "unified" and (d / "cgroup.procs").exists()
    ]


def ensure_cgroup_root() -> None:
    """kubelet needs its cgroupRoot to exist in every hierarchy (only for a non-default instance)."""
    if L.CGROUP_ROOT == "/":
        return
    for hierarchy in _v1_hierarchies():
        d = hierarchy / L.CGROUP_ROOT.strip("/")
        d.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":  # a new cpuset cgroup starts with no cpus and no memory nodes
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not (d / f).read_text().strip():
                    (d / f).write_text((hierarchy / f).read_text())


def remove_kubepods_cgroups() -> None:
    """Remove the empty pod cgroups kubelet created (deepest first; rmdir fails on busy ones)."""
    for root in kubepods_cgroups():
        dirs = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for d in [*dirs, root]:
            with contextlib.suppress(OSError):
                d.rmdir()
    if L.CGROUP_ROOT != "/":
        # Including the cgroup2 "unified" tree, where runc creates the same paths on this hybrid setup.
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            with contextlib.suppress(OSError):
                (hierarchy / L.CGROUP_ROOT.strip("/")).rmdir()


def mounts_under(*prefixes: Path) -> list[str]:
    """Mount points below the given directories, deepest first (the order to unmount them in)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == str(p) or point.startswith(f"{p}/") for p in prefixes):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def unmount_under(*prefixes: Path) -> None:
    for point in mounts_under(*prefixes):
        run(["umount", "-l", point], check=False)


# kubelet hard-codes a few host paths (device-plugin socket dir, /var/log/containers) and libcni caches
# results in /var/lib/cni; these are cleaned entry by entry, only where the entry is ours.
KUBELET_HOST_DIRS = [Path("/var/lib/kubelet/device-plugins"), Path("/var/lib/kubelet")]
CONTAINER_LOG_LINKS = Path("/var/log/containers")
CNI_RESULTS = Path("/var/lib/cni/results")


def remove_host_leftovers(pod_logs_dir: Path, cni_network: str) -> None:
    """Remove what kubelet and libcni wrote outside our state dirs, touching nothing of anyone else."""
    # The device-plugin socket path is the same for every kubelet on the host (no device plugins are
    # used here); leave it while another instance of this cluster runs.
    others = [p for p in Path("/run/netns").glob("deployer-e2e*") if p != L.NETNS_PATH]
    if not others:
        (Path("/var/lib/kubelet/device-plugins") / "kubelet.sock").unlink(missing_ok=True)
    if CONTAINER_LOG_LINKS.is_dir():
        for link in CONTAINER_LOG_LINKS.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(f"{pod_logs_dir}/"):
                link.unlink()
    if CNI_RESULTS.is_dir():
        ours = [f for f in CNI_RESULTS.iterdir() if f.name.startswith(f"{cni_network}-")]
        for f in ours:
            container_id = f.name[len(cni_network) + 1 :].rsplit("-", 1)[0]
            f.unlink(missing_ok=True)
            (CNI_RESULTS / f"cni-loopback-{container_id}-lo").unlink(missing_ok=True)
    # containerd 1.6 puts shim sockets in /run/containerd/s whatever its state dir is.
    shim_dirs = [Path("/run/containerd/s"), Path("/run/containerd")]
    for d in [*KUBELET_HOST_DIRS, CONTAINER_LOG_LINKS, CNI_RESULTS, CNI_RESULTS.parent, *shim_dirs]:
        with contextlib.suppress(OSError):
            d.rmdir()  # only when empty
