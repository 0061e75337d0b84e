"""The kind node image, built here with no pulls (the offline fallback for `kindest/node`).

Layers, in build order (each a named step; a failure names it and keeps its log):
1. control-plane images, built FROM scratch around the binaries e2e/tools.sh builds from Go modules,
   under the references kubeadm asks for: kube-apiserver, kube-controller-manager, kube-scheduler
   (v1.32.13), kube-proxy (on base/bookworm:12 with iptables and conntrack, which it executes), etcd
   3.5.21-0 and CoreDNS v1.12.3 (the kind config's kubeadm patch names these two tags), and pause 3.10
   (Debian's catatonit, as for the local provider); saved to one archive;
2. the node (e2e/kind/node/Dockerfile): base/bookworm:12 (the stack's mmdebstrap rootfs) + Debian's
   systemd, containerd, runc, CNI plugins, iptables, conntrack; kubeadm/kubelet/kubectl and crictl;
   the entrypoint, containerd config, kubelet unit, the unit that imports the archives before
   kubelet starts, and the pod-network unit (deployer-cni).

The tag is content-addressed: a hash of the recipe files, the pinned tool versions (`e2e/tools.sh
--check`) and the base image id, so the image is rebuilt only when one of them changes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from . import layout as L
from . import pause
from .host import ClusterError, say

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "e2e" / "kind" / "node"
TOOLS_SH = REPO / "e2e" / "tools.sh"
DOCKER = "/usr/bin/docker"
BASE_IMAGE = f"{L.REGISTRY}/base/bookworm:12"
REPOSITORY = "deployer/kind-node"
LOGS = Path("/var/lib/deployer/kind/image-logs")

# Bump when _build_control_plane's image recipes change (the files in e2e/kind/node are hashed).
RECIPE_VERSION = 1
ETCD_TAG = "3.5.21-0"
COREDNS_TAG = "v1.12.3"
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def images() -> dict[str, str]:
    """Image reference → what it runs: the images preloaded into every node."""
    k = L.KUBE_VERSION
    refs = {f"registry.k8s.io/{name}:{k}": name for name in (*CONTROL_PLANE, "kube-proxy")}
    refs[f"registry.k8s.io/etcd:{ETCD_TAG}"] = "etcd"
    refs[f"registry.k8s.io/coredns/coredns:{COREDNS_TAG}"] = "coredns-kubeadm"
    refs[L.PAUSE_IMAGE] = "catatonit"
    return refs


def _docker(*args: str, log: Path | None = None, cwd: Path | None = None, stdin: str | None = None) -> str:
    r = subprocess.run([DOCKER, *args], capture_output=True, text=True, cwd=cwd, input=stdin)
    if log is not None:
        with log.open("a") as f:
            f.write(f"$ docker {' '.join(args)}\n{r.stdout}{r.stderr}\n")
    if r.returncode != 0:
        raise subprocess.CalledProcessError(r.returncode, args, r.stdout, r.stderr)
    return r.stdout


def key() -> str:
    """Hash of everything the image is made from; part of its tag."""
    check = subprocess.run([str(TOOLS_SH), "--check"], capture_output=True, text=True)
    if check.returncode != 0:
        raise ClusterError(f"the pinned tools are not all built; run e2e/tools.sh\n{check.stdout}")
    try:
        base = _docker("image", "inspect", "--format", "{{.Id}}", BASE_IMAGE).strip()
    except subprocess.CalledProcessError:
        raise ClusterError(
            f"{BASE_IMAGE} is missing; run scripts/stack up (it builds the base images)"
        ) from None
    h = hashlib.sha256()
    for f in sorted(RECIPE.iterdir()):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    h.update(f"recipe {RECIPE_VERSION} {sorted(images().items())}".encode())
    h.update(check.stdout.encode() + base.encode())
    return h.hexdigest()[:12]


def tag() -> str:
    return f"{REPOSITORY}:{L.KUBE_VERSION}-{key()}"


def present(ref: str) -> bool:
    return subprocess.run([DOCKER, "image", "inspect", ref], capture_output=True).returncode == 0


def _step(name: str, log: Path, fn) -> None:
    start = time.monotonic()
    say(f"node image: {name}")
    try:
        fn()
    except subprocess.CalledProcessError as e:
        tail = "\n".join((e.stderr or e.stdout or "").strip().splitlines()[-15:])
        raise ClusterError(
            f"node image step '{name}' failed (exit {e.returncode}); log kept at {log}\n{tail}"
        ) from None
    say(f"node image: {name} done in {time.monotonic() - start:.0f}s")


def _build_control_plane(ctx: Path, log: Path, cache: list[str]) -> None:
    out = ctx / "images"
    out.mkdir()
    built = []
    for ref, binary in images().items():
        if binary == "catatonit":
            (out / "pause.tar").write_bytes(pause.docker_archive(ref))
            continue
        d = ctx / "cp" / binary
        d.mkdir(parents=True)
        shutil.copy2(L.tool(binary), d / binary)
        if binary == "kube-proxy":
            # kube-proxy runs iptables-restore and conntrack; Debian's defaults match the node's (nft).
            dockerfile = (
                f"FROM {BASE_IMAGE}\nRUN apt-get update && apt-get install -y --no-install-recommends "
                "iptables conntrack && rm -rf /var/lib/apt/lists/*\n"
                "COPY kube-proxy /usr/local/bin/kube-proxy\n"
            )
        elif binary == "coredns-kubeadm":
            dockerfile = 'FROM scratch\nCOPY coredns-kubeadm /coredns\nENTRYPOINT ["/coredns"]\n'
        else:
            # kubeadm's static pods name the command, so it must be on the image's PATH.
            dockerfile = (
                f"FROM scratch\nENV PATH=/usr/local/bin\nCOPY {binary} /usr/local/bin/{binary}\n"
                f'ENTRYPOINT ["/usr/local/bin/{binary}"]\n'
            )
        (d / "Dockerfile").write_text(dockerfile)
        _docker("build", "--network", "host", "--progress", "plain", *cache, "-t", ref, ".", cwd=d, log=log)
        built.append(ref)
    _docker("save", "-o", str(out / "control-plane.tar"), *built, log=log)
    # The archive is what the node needs; the engine's copies would only take disk space.
    _docker("image", "rm", *built, log=log)


def build(ref: str, *, no_cache: bool = False) -> None:
    """Build the node image as `ref`; `no_cache` makes it a cold build (bench/cluster.py)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{ref.split(':')[1]}.log"
    log.write_text("")
    start = time.monotonic()
    say(f"building node image {ref} (log: {log})")
    cache = ["--no-cache"] if no_cache else []
    with tempfile.TemporaryDirectory(prefix="kind-node-") as tmp:
        ctx = Path(tmp)
        _step("control-plane images", log, lambda: _build_control_plane(ctx, log, cache))
        (ctx / "bin").mkdir()
        for b in ("kubeadm", "kubelet", "kubectl"):
            shutil.copy2(L.tool(b), ctx / "bin" / b)
        shutil.copy2(L.tool("crictl"), ctx / "crictl")
        shutil.copytree(RECIPE, ctx / "node")
        args = ["--build-arg", f"BASE={BASE_IMAGE}", "--build-arg", f"KUBE_VERSION={L.KUBE_VERSION}", *cache]
        build = ["build", "--network", "host", "--progress", "plain", "-f", "node/Dockerfile", *args]
        _step(
            "node image (Debian packages, binaries, units)",
            log,
            lambda: _docker(*build, "-t", ref, ".", cwd=ctx, log=log),
        )
    say(f"node image {ref} built in {time.monotonic() - start:.0f}s")


def ensure() -> str:
    """The node image's tag, building it when no image of this recipe exists yet."""
    ref = tag()
    if present(ref):
        return ref
    build(ref)
    # Older recipes' images are not needed any more (one still used by a node container stays).
    for old in _docker("images", "--format", "{{.Repository}}:{{.Tag}}", REPOSITORY).split():
        if old != ref and not old.endswith(":bench"):
            subprocess.run([DOCKER, "image", "rm", old], capture_output=True)
    return ref
