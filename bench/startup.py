"""A ship's start-up: process start to its first `docker build`, two versions of the code side by side.

    python bench/startup.py [--repeat 10] [--before REF] [--service examples/python-hello] [--kubeconfig PATH]

Everything `deployer ship --ci --skip-smoke` does before it builds: the interpreter, imports, the CLI,
the target, git, loading blubber.yaml and deploy.yaml, the policy, the Dockerfiles, the engine check and
registry login, and the cluster checks it waits for (the API server answers, the identity may do what a
ship needs). The process is stopped when it starts its first `docker build`, so nothing is built, pushed
or deployed. Needs docker, the registry and the cluster (scripts/stack up, e2e/cluster up).

"before" is the code of a git revision (`--before`, default: the commit this session started from),
"now" the working tree; each is copied into a temporary directory laid out as the package installs
(policies/ and charts/ as deployer.policies and deployer.charts) and run by a venv that has the
development venv's packages but not its editable-install finder. The two alternate run by run, so the
machine's load hits both alike. Prints the wall time to the first build (what the ship's user waits) and
the process's CPU time by then (all threads), medians and ratios, with the load average before and
after. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BEFORE = "5dbbd80"  # session 6 of issue 14 started here
PACKAGES = ("blubber", "deployer", "policies", "charts")
DEPLOY_YAML = "namespace: bench-startup\n"

# Run in the child: the ship as the console script runs it, stopped at its first `docker build`.
CHILD = """
import json, os, sys, time
ready = (time.monotonic(), time.process_time())
from deployer.tools import command
real_run = command.run
def run(tool, argv, **kwargs):
    if tool == "docker" and len(argv) > 1 and str(argv[1]) == "build":
        with open(os.environ["STARTUP_OUT"], "w") as out:
            json.dump({"ready": ready, "build": (time.monotonic(), time.process_time())}, out)
        os._exit(0)
    return real_run(tool, argv, **kwargs)
command.run = run
from deployer.cli import entry
sys.argv = ["deployer", *sys.argv[1:]]
entry()
"""


def tree_of(ref: str | None, into: Path) -> Path:
    """The packages of `ref` (None: the working tree) in `into`, laid out as installed."""
    into.mkdir()
    if ref is None:
        for name in PACKAGES:
            shutil.copytree(ROOT / name, into / name, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref, *PACKAGES], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    # pyproject's package-dir: deployer.policies is policies/, deployer.charts is charts/
    for name in ("policies", "charts"):
        (into / "deployer" / name).symlink_to(into / name)
    # byte-compiled as pip does when it installs, so neither side compiles its sources in every run
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(into)], check=True)
    return into


def venv_python(venv: Path) -> Path:
    """A venv with the development venv's packages through a .pth line (no editable-install finder)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "development-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def once(python: Path, tree: Path, argv: list[str], out: Path) -> tuple[float, float]:
    """Seconds from the process start to its first `docker build`, and its CPU seconds by then."""
    out.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {
        "PYTHONPATH": str(tree),
        "STARTUP_OUT": str(out),
    }
    started = time.monotonic()
    # cwd: `python -c` puts it first on sys.path, before PYTHONPATH
    done = subprocess.run(
        [str(python), "-c", CHILD, *argv], env=env, cwd=tree, capture_output=True, text=True, timeout=300
    )
    if not out.exists():
        raise SystemExit(
            f"the ship stopped before its first build (exit {done.returncode}):\n"
            f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    marks = json.loads(out.read_text())
    return marks["build"][0] - started, marks["build"][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="git revision to compare with")
    parser.add_argument("--service", type=Path, default=ROOT / "examples" / "python-hello")
    parser.add_argument("--kubeconfig", default="/var/lib/deployer/cluster/kubeconfig")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp_name:
        tmp = Path(tmp_name)
        trees = {"before": tree_of(args.before, tmp / "before"), "now": tree_of(None, tmp / "now")}
        python = venv_python(tmp / "venv")
        service = tmp / args.service.name
        shutil.copytree(args.service, service, ignore=shutil.ignore_patterns("node_modules", "__pycache__"))
        (service / ".pipeline" / "deploy.yaml").write_text(DEPLOY_YAML)
        argv = ["--ci", "ship", str(service), "--kubeconfig", args.kubeconfig, "--skip-smoke"]
        out = tmp / "marks.json"
        load = os.getloadavg()[0]
        print(f"load average {load:.1f}; before = {args.before}, now = working tree; {service.name}")
        for tree in trees.values():  # warm-up: page cache, the engine's and registry's first answers
            once(python, tree, argv, out)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
        for rep in range(args.repeat):
            for name in list(trees) if rep % 2 == 0 else list(trees)[::-1]:
                runs[name].append(once(python, trees[name], argv, out))
        print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"  process start to first docker build ({args.repeat} each)   before      now    ratio")
    for label, index in (("wall s, median", 0), ("CPU s, median", 1)):
        before = statistics.median(r[index] for r in runs["before"])
        now = statistics.median(r[index] for r in runs["now"])
        print(f"  {label:<50} {before:7.3f}  {now:7.3f}  {now / before:6.2f}x")
    for label, index in (("wall s, min", 0), ("CPU s, min", 1)):
        before, now = min(r[index] for r in runs["before"]), min(r[index] for r in runs["now"])
        print(f"  {label:<50} {before:7.3f}  {now:7.3f}  {now / before:6.2f}x")


if __name__ == "__main__":
    main()
