"""The two cluster providers side by side: what each costs to build, start, keep running and ship to.

    python bench/cluster.py [--providers local,kind] [--no-cold-build]

Run as root with the stack up (scripts/stack up) and the tools built (e2e/tools.sh). It brings up its own
clusters next to the shared ones and removes them afterwards: local instance `b`
(DEPLOYER_CLUSTER_INSTANCE=b) and kind cluster `deployer-bench` (DEPLOYER_KIND_CLUSTER). Prints numbers,
asserts nothing. Rows:
- cold node-image build: the kind node image with docker's build cache off (the local provider has none);
  with --no-cold-build the row says whether the image was cached;
- load averages before each provider's up and after its ships (other work on the machine skews the rest);
- up from nothing / up when already up: `e2e/cluster up` wall time;
- RSS of the running cluster: the sum of VmRSS over its processes (local: every process whose command
  line names the instance's state or run directory, plus those in its pod cgroups; kind: every process
  in the node containers);
- healthy ship / crash detection: `deployer ship` of a copy of examples/node-hello (a first install),
  then of a version that exits on start, timed until deployer exits (verdict, rollback included).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from e2e.localcluster import kind_image  # noqa: E402

CLUSTER = REPO / "e2e" / "cluster"
DEPLOYER = str(Path(sys.executable).parent / "deployer")
KUBECTL = "/var/cache/deployer/tools/bin/kubectl"
DOCKER = "/usr/bin/docker"
ENV = {
    "local": {"DEPLOYER_CLUSTER_PROVIDER": "local", "DEPLOYER_CLUSTER_INSTANCE": "b"},
    "kind": {"DEPLOYER_CLUSTER_PROVIDER": "kind", "DEPLOYER_KIND_CLUSTER": "deployer-bench"},
}
KUBECONFIG = {
    "local": Path("/var/lib/deployer/cluster-b/kubeconfig"),
    "kind": Path("/var/lib/deployer/kind/deployer-bench/kubeconfig"),
}
CRASH = "'use strict';\nconsole.error('bench: exiting on start');\nprocess.exit(3);\n"


def _cluster(provider: str, command: str) -> float:
    start = time.monotonic()
    r = subprocess.run(
        [str(CLUSTER), command], env={**os.environ, **ENV[provider]}, capture_output=True, text=True
    )
    if r.returncode != 0:
        raise SystemExit(f"e2e/cluster {command} ({provider}) failed:\n{r.stderr[-3000:]}")
    return time.monotonic() - start


def _load() -> str:
    """The 1, 5 and 15 min load averages: the figures beside it are only as quiet as this machine."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _rss_kib(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            m = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
        except OSError:
            continue
        total += int(m.group(1)) if m else 0
    return total


def _local_pids() -> set[int]:
    marks = (b"/var/lib/deployer/cluster-b", b"/run/deployer-cluster-b")
    pids = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if any(m in (proc / "cmdline").read_bytes() for m in marks):
                    pids.add(int(proc.name))
            except OSError:
                pass
    for procs in Path("/sys/fs/cgroup/memory/deployer-e2e-b").rglob("cgroup.procs"):
        pids |= {int(p) for p in procs.read_text().split()}
    return pids


def _kind_pids() -> set[int]:
    names = subprocess.run(
        [DOCKER, "ps", "-q", "--filter", "label=io.x-k8s.kind.cluster=deployer-bench"],
        capture_output=True,
        text=True,
    ).stdout.split()
    pids = set()
    for n in names:
        top = subprocess.run([DOCKER, "top", n, "-eo", "pid"], capture_output=True, text=True).stdout
        pids |= {int(p) for p in top.split()[1:] if p.isdigit()}
    return pids


def _ship(root: Path, kubeconfig: Path) -> tuple[float, int]:
    start = time.monotonic()
    env = {**os.environ, "CI": "true"}
    argv = [DEPLOYER, "ship", str(root), "--kubeconfig", str(kubeconfig), "--timeout", "240"]
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    return time.monotonic() - start, r.returncode


def _ships(provider: str, tmp: Path) -> tuple[str, str]:
    """(healthy ship, crash detection) as table cells: seconds and deployer's exit code."""
    name = f"bench-{provider}-{uuid.uuid4().hex[:6]}"
    root = tmp / name
    shutil.copytree(
        REPO / "examples" / "node-hello", root, ignore=shutil.ignore_patterns("node_modules", ".git")
    )
    (root / ".pipeline" / "deploy.yaml").write_text(f"namespace: {name}\n")
    git = ["git", "-C", str(root), "-c", "user.email=bench@local", "-c", "user.name=bench"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], check=True)
    healthy = _ship(root, KUBECONFIG[provider])
    (root / "server.js").write_text(CRASH)
    subprocess.run([*git, "commit", "-qam", "v2: exits on start"], check=True)
    crash = _ship(root, KUBECONFIG[provider])
    kubectl = [KUBECTL, f"--kubeconfig={KUBECONFIG[provider]}"]
    subprocess.run([*kubectl, "delete", "namespace", name, "--wait=false"], capture_output=True)
    return f"{healthy[0]:.1f} s (exit {healthy[1]})", f"{crash[0]:.1f} s (exit {crash[1]})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--providers", default="local,kind")
    parser.add_argument("--no-cold-build", action="store_true", help="skip the cold node-image build row")
    args = parser.parse_args()
    providers = args.providers.split(",")
    rows: dict[str, dict[str, str]] = {}

    def put(row: str, provider: str, value: str) -> None:
        rows.setdefault(row, {})[provider] = value
        print(f"  {provider}: {row}: {value}", file=sys.stderr, flush=True)

    if "kind" in providers and not args.no_cold_build:
        start = time.monotonic()
        kind_image.build(f"{kind_image.REPOSITORY}:bench", no_cache=True)
        put("cold node-image build", "kind", f"{time.monotonic() - start:.1f} s")
        subprocess.run([DOCKER, "image", "rm", f"{kind_image.REPOSITORY}:bench"], capture_output=True)
    elif "kind" in providers:
        cached = "cached" if kind_image.present(kind_image.tag()) else "absent: built by up"
        put("cold node-image build", "kind", f"not run ({cached})")
    put("cold node-image build", "local", "- (no image)")
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as t:
        for p in providers:
            _cluster(p, "down")
            try:
                put("load average before up", p, _load())
                put("up from nothing", p, f"{_cluster(p, 'up'):.1f} s")
                put("up when already up", p, f"{_cluster(p, 'up'):.2f} s")
                pids = _local_pids() if p == "local" else _kind_pids()
                put(
                    "RSS of the running cluster",
                    p,
                    f"{_rss_kib(pids) / 1024:.0f} MiB ({len(pids)} processes)",
                )
                healthy, crash = _ships(p, Path(t))
                put("healthy ship (first install)", p, healthy)
                put("crash detection (ship to rolled back)", p, crash)
                put("load average after the ships", p, _load())
            finally:
                _cluster(p, "down")
    width = max(map(len, rows)) + 2
    print(f"{'':{width}}" + "".join(f"{p:>26}" for p in ["local", "kind"]))
    for row, values in rows.items():
        print(f"{row:{width}}" + "".join(f"{values.get(p, '-'):>26}" for p in ["local", "kind"]))


if __name__ == "__main__":
    main()
