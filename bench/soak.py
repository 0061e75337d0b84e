"""Soak: many ships in a row, then several at once, and what they leave behind.

    python bench/soak.py [--ships 50] [--minutes M] [--concurrent 8] [--kubeconfig PATH]
                          [--example node-hello] [--keep]

Needs docker and the registry (scripts/stack up) and the cluster (e2e/cluster up). Prints numbers, asserts
nothing. Phase 1 ships one copy of the example `--ships` times in a row (CI mode), alternating a source
file between two contents, so every ship builds, pushes and rolls out a changed image (`--minutes` ends
phase 1 early, after the ship running when that time is up; the figures say how many ran). Phase 2 ships
`--concurrent` copies (different services, namespaces, releases) at the same time. Printed afterwards:

- successes, time per ship (median, p95) for each phase;
- engine disk (images + build cache, `docker system df`) and registry data (`du` of its storage) growth
  per ship over phase 1;
- leftovers, which must all be 0: containers named for the soak's services, entries in the ships' own
  TMPDIR, processes still carrying the soak's marker variable (every process a ship starts inherits it),
  port-forward processes among them, and release Leases (`deployer-ship-*`) in the soak's namespaces;
- helm history length of the phase-1 release (bounded by deployer's --history-max).

Afterwards the releases, namespaces and local images of the soak's services are removed (`--keep` keeps
them); pushed manifests stay in the registry, as a CI runner's would.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEPLOYER = str(Path(sys.executable).parent / "deployer")
DOCKER = "/usr/bin/docker"
HELM = "/var/cache/deployer/tools/bin/helm"
KUBECTL = "/var/cache/deployer/tools/bin/kubectl"
REGISTRY_DATA = Path("/var/lib/deployer/registry/data")
MARKER = "DEPLOYER_SOAK_RUN"

DEPLOY_YAML = """namespace: {namespace}
probes:
  readiness: {{path: /healthz, initialDelaySeconds: 1, periodSeconds: 2, failureThreshold: 10}}
smoke:
  helmTest: false
  checks:
    - {{name: root, path: /, body: hello from node-hello}}
"""
_UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}


@dataclass
class Result:
    service: str
    ok: bool
    seconds: float
    code: int
    tail: str


def _run(
    *argv: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=timeout)


def _docker_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}


def engine_bytes() -> float:
    """Images + build cache as the engine counts them."""
    out = _run(DOCKER, "system", "df", "--format", "{{.Type}}\t{{.Size}}", env=_docker_env()).stdout
    total = 0.0
    for line in out.splitlines():
        kind, _, size = line.partition("\t")
        match = re.fullmatch(r"([\d.]+)\s*([a-zA-Z]+)", size.strip())
        if kind in ("Images", "Build Cache") and match:
            total += float(match.group(1)) * _UNITS[match.group(2)]
    return total


def registry_bytes() -> int:
    out = _run("du", "-sb", str(REGISTRY_DATA)).stdout.split()
    return int(out[0]) if out else 0


def make_copy(parent: Path, example: str, name: str) -> Path:
    root = parent / name
    shutil.copytree(REPO / "examples" / example, root, ignore=shutil.ignore_patterns("node_modules", ".git"))
    (root / ".pipeline" / "deploy.yaml").write_text(DEPLOY_YAML.format(namespace=name))
    (root / "soak.txt").write_text("a\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "soak copy")
    return root


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.email=soak@bench", "-c", "user.name=soak", *args],
        check=True,
        capture_output=True,
    )


def ship(root: Path, kubeconfig: str, env: dict[str, str]) -> Result:
    started = time.monotonic()
    done = subprocess.run(
        [DEPLOYER, "ship", str(root), "--kubeconfig", kubeconfig, "--timeout", "900"],
        capture_output=True,
        text=True,
        env=env,
    )
    seconds = time.monotonic() - started
    return Result(
        root.name, done.returncode == 0, seconds, done.returncode, (done.stdout + done.stderr)[-1500:]
    )


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _leftover_processes(run_id: str) -> list[str]:
    """Processes (not this one) whose environment carries the soak's marker: started by a ship, alive."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if f"{MARKER}={run_id}".encode() in environ.split(b"\0"):
            found.append(f"{entry.name} {cmdline[:120]}")
    return found


def _leftover_containers(names: list[str]) -> list[str]:
    out = _run(DOCKER, "ps", "-a", "--format", "{{.Names}}", env=_docker_env()).stdout.split()
    return [c for c in out if any(n in c for n in names)]


def _leases(kubeconfig: str, namespaces: list[str]) -> list[str]:
    found = []
    for ns in namespaces:
        out = _run(
            KUBECTL, "--kubeconfig", kubeconfig, "-n", ns, "get", "leases", "-o", "name"
        ).stdout.split()
        found += [f"{ns}/{lease}" for lease in out if "deployer-ship-" in lease]
    return found


def _helm_history(kubeconfig: str, release: str, namespace: str) -> int:
    out = _run(
        HELM, "--kubeconfig", kubeconfig, "history", release, "-n", namespace, "--max", "1000", "-o", "json"
    )
    return len(json.loads(out.stdout)) if out.returncode == 0 and out.stdout.strip() else -1


def _cleanup(kubeconfig: str, names: list[str]) -> None:
    for name in names:
        _run(HELM, "--kubeconfig", kubeconfig, "uninstall", name, "-n", name, "--wait", timeout=300)
        _run(KUBECTL, "--kubeconfig", kubeconfig, "delete", "namespace", name, "--wait=false")
    listed = _run(
        DOCKER, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", env=_docker_env()
    ).stdout.split()
    refs = [r for r in listed if any(r.split(":")[0].endswith(f"/{n}") for n in names)]
    if refs:
        _run(DOCKER, "image", "rm", "--force", *refs, env=_docker_env())


def _summary(label: str, results: list[Result]) -> None:
    times = [r.seconds for r in results]
    ok = sum(r.ok for r in results)
    print(
        f"{label}: {ok}/{len(results)} succeeded; time per ship median {statistics.median(times):.1f} s, "
        f"p95 {_p95(times):.1f} s (min {min(times):.1f}, max {max(times):.1f})"
    )
    for r in results:
        if not r.ok:
            print(f"  {r.service} failed (exit {r.code}):\n    " + r.tail.replace("\n", "\n    "))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ships", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=None, help="time budget of the ships in a row")
    parser.add_argument("--concurrent", type=int, default=8)
    parser.add_argument("--example", default="node-hello")
    parser.add_argument("--kubeconfig", default="/var/lib/deployer/cluster/kubeconfig")
    parser.add_argument("--keep", action="store_true", help="keep releases, namespaces and local images")
    args = parser.parse_args()

    run_id = uuid.uuid4().hex[:6]
    work = Path(tempfile.mkdtemp(prefix=f"soak-{run_id}-"))
    ship_tmp = work / "tmp"  # the ships' own TMPDIR: whatever stays in it was left by a ship
    ship_tmp.mkdir()
    env = {**os.environ, "CI": "true", MARKER: run_id, "TMPDIR": str(ship_tmp)}
    env.pop("DOCKER_HOST", None)
    serial = f"soak-{run_id}"
    parallel = [f"soak-{run_id}-c{i}" for i in range(args.concurrent)]
    names = [serial, *parallel]
    print(
        f"soak {run_id}: {args.ships} ships of {serial} in a row, then {args.concurrent} at once; "
        f"work dir {work}"
    )
    try:
        root = make_copy(work, args.example, serial)
        engine0, registry0 = engine_bytes(), registry_bytes()
        results: list[Result] = []
        budget_end = time.monotonic() + args.minutes * 60 if args.minutes else None
        for i in range(args.ships):
            if budget_end is not None and time.monotonic() > budget_end:
                print(f"  --minutes {args.minutes:g} used up after {i} ships", flush=True)
                break
            if i:  # alternate the source between two contents: each ship builds and rolls out a change
                (root / "soak.txt").write_text("ab"[i % 2] + "\n")
                _git(root, "commit", "-qam", f"soak change {i}")
            results.append(ship(root, args.kubeconfig, env))
            r = results[-1]
            print(
                f"  ship {i + 1}/{args.ships}: {'ok' if r.ok else f'FAILED exit {r.code}'} "
                f"in {r.seconds:.1f} s",
                flush=True,
            )
        engine1, registry1 = engine_bytes(), registry_bytes()

        roots = [make_copy(work, args.example, n) for n in parallel]
        with ThreadPoolExecutor(max_workers=max(args.concurrent, 1)) as pool:
            concurrent = list(pool.map(lambda r: ship(r, args.kubeconfig, env), roots))
        time.sleep(2)  # a process a ship left would still be there; one exiting has had time to go

        print()
        _summary(f"{len(results)} ships in a row", results)
        _summary(f"{args.concurrent} concurrent ships", concurrent)
        n = max(len(results), 1)
        print(
            f"engine disk (images + build cache): {engine0 / 1e6:.0f} MB → {engine1 / 1e6:.0f} MB, "
            f"{(engine1 - engine0) / n / 1e6:+.1f} MB per ship"
        )
        print(
            f"registry data: {registry0 / 1e6:.0f} MB → {registry1 / 1e6:.0f} MB, "
            f"{(registry1 - registry0) / n / 1e6:+.1f} MB per ship"
        )
        procs = _leftover_processes(run_id)
        leftovers = {
            "containers": _leftover_containers(names),
            "temp dirs": [p.name for p in ship_tmp.iterdir()],
            "processes": procs,
            "port-forwards": [p for p in procs if "port-forward" in p],
            "Leases": _leases(args.kubeconfig, names),
        }
        for what, items in leftovers.items():
            print(f"leftover {what}: {len(items)}" + (f" ({', '.join(items[:5])})" if items else ""))
        print(f"helm history of {serial}: {_helm_history(args.kubeconfig, serial, serial)} revisions")
    finally:
        if not args.keep:
            _cleanup(args.kubeconfig, names)
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
