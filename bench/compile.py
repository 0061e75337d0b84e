"""Blubber compile time: in-process (load, compile) and whole-process `blubber`/`deployer`, before vs now.

"before" is the code of a git revision (`--before REF`, default: the commit session 4 of issue 14 started
from), extracted with `git archive` into a temporary directory and put first on PYTHONPATH; "now" is the
working tree. Every number is CPU time (user + system), not wall time: the machine is shared and loaded,
and a process waiting for a core says nothing about the code. In-process rows run in worker processes, one
per version, alternated round by round so machine noise hits both alike; processes alternate run by run.
The large config has 50 variants with deep includes (each variant includes the previous one and a shared
one) and copies chains, compiled for its most-derived variant. Targets (issue 14): load + compile of the
large config in-process <= 30 ms, `blubber` as a process on the small config <= 150 ms.
Processes run as a user's would: the console script pip writes, in a venv made for the run whose packages
are the development venv's (a .pth line) but without its editable-install finder, which the development
venv imports at every start (about 15-20 ms) and an install from the wheel does not; one row also shows
the development venv's `python -m blubber.cli`. Both trees are byte-compiled first, as pip does when it
installs: with PYTHONDONTWRITEBYTECODE set, "before" would otherwise compile its sources in every process.
Prints numbers only; it asserts nothing (timings are not tests).

    python bench/compile.py [--repeat N] [--before REF]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies" / "default.yaml"
# The last commit before session 4's start-up and compile work (issue 14, item 6).
DEFAULT_BEFORE = "44e3d6b"
# The console scripts as pip writes them (`[project.scripts]` in pyproject.toml).
CONSOLE_SCRIPT = """\
#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {function}
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit({function}())
"""
SCRIPTS = {"blubber": ("blubber.cli", "main"), "deployer": ("deployer.cli", "entry")}

SMALL = """\
version: v4
base: 127.0.0.1:5000/base/nodejs:12
variants:
  build:
    node: {requirements: [package.json, package-lock.json], use-npm-ci: true}
    copies: [local]
  test: {includes: [build], entrypoint: [npm, test]}
  prep: {includes: [build], node: {env: production}}
  production: {copies: [prep], node: {env: production}, entrypoint: [node, server.js]}
"""


def large(n: int = 50) -> str:
    lines = [
        "version: v4",
        "base: 127.0.0.1:5000/base/python3:12",
        "apt: {packages: [curl]}",
        "runs: {environment: {TOP: x}}",
        "variants:",
        "  shared:",
        "    apt: {packages: [git]}",
        "    builders: [{python: {version: python3, requirements: [requirements.txt]}}]",
    ]
    for i in range(n - 1):
        includes = ["shared"] + ([f"v{i - 1:02d}"] if i else [])
        copies = (
            "[local]" if i % 5 == 0 else f"[{{from: v{i - 2:02d}}}]" if i >= 2 and i % 7 == 0 else "[local]"
        )
        lines += [
            f"  v{i:02d}:",
            f"    includes: [{', '.join(includes)}]",
            f"    runs: {{environment: {{VAR_{i}: value{i}}}}}",
            f"    apt: {{packages: [pkg{i}]}}",
            f"    builders: [{{custom: {{requirements: [file{i}.txt], command: [make, target{i}]}}}}]",
            f"    copies: {copies}",
            f"    entrypoint: [./run, '{i}']",
        ]
    return "\n".join(lines) + "\n"


def _cpu_ms(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return (time.process_time() - start) * 1000


def worker(directory: Path, repeat: int) -> None:
    """In a worker process: time the in-process rows `repeat` times each, print {row: [ms, …]} as JSON."""
    from blubber import compile_dockerfile, load

    samples: dict[str, list[float]] = {}
    for name, text, variant in (("small", SMALL, "production"), ("large", large(), "v48")):
        path = directory / f"{name}.yaml"
        path.write_text(text)
        rows: dict[str, Callable[[], object]] = {
            "load, no policy": lambda p=path: load(p, policy=None),
            "load + compile, no policy": lambda p=path, v=variant: compile_dockerfile(
                load(p, policy=None), v
            ),
            "load + compile, default policy": lambda p=path, v=variant: compile_dockerfile(
                load(p, policy=POLICY), v
            ),
        }
        for label, fn in rows.items():
            fn()  # warm-up: the first call pays imports and caches
            samples[f"{name}: {label}"] = [_cpu_ms(fn) for _ in range(repeat)]
    print(json.dumps(samples))


def in_process(
    trees: tuple[Path, Path], repeat: int, rounds: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Samples of every in-process row for (before, now), from `rounds` alternating worker runs."""
    result: dict[str, tuple[list[float], list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for i, tree in enumerate(trees):
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", tmp, "--repeat", str(repeat)],
                    env={**os.environ, "PYTHONPATH": str(tree)},
                    cwd=tmp,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                for label, values in json.loads(out).items():
                    result.setdefault(label, ([], []))[i].extend(values)
    return result


def processes(
    argv: list[str], trees: tuple[Path, Path], repeat: int, cwd: str
) -> tuple[list[float], list[float]]:
    """CPU ms of the child (user + system) for `argv` run with each tree first on PYTHONPATH, alternately."""
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat + 1):
        for tree, out in zip(trees, samples, strict=True):
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            env = {**os.environ, "PYTHONPATH": str(tree)}
            subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            out.append((after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime) * 1000)
    return samples[0][1:], samples[1][1:]  # the first run of each warms the page cache


def installed_venv(venv: Path) -> Path:
    """A venv with this venv's packages (a .pth line, so no editable-install finder) and the console
    scripts as pip writes them; returns its bin directory."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "development-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for name, (module, function) in SCRIPTS.items():
        script = venv / "bin" / name
        script.write_text(CONSOLE_SCRIPT.format(python=python, module=module, function=function))
        script.chmod(0o755)
    return venv / "bin"


def extract(ref: str, into: Path) -> Path:
    """The packages of `ref` in `into` (nothing of the working tree changes)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "blubber", "deployer"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def row(label: str, before: list[float], now: list[float]) -> None:
    b, n = statistics.median(before), statistics.median(now)
    print(f"  {label:<44} {b:9.2f} {n:9.2f} {min(before):9.2f} {min(now):9.2f} {b / n:6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="git revision to compare with")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.repeat)
        return
    print(f"load average {os.getloadavg()[0]:.1f}; before = {args.before}, now = working tree")
    print(f"  {'CPU ms':<44} {'before':>9} {'now':>9} {'min bef.':>9} {'min now':>9} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        trees = (extract(args.before, Path(tmp)), ROOT)
        for tree in trees:  # as pip compiles an install; quietly, and only the two packages
            packages = [str(tree / "blubber"), str(tree / "deployer")]
            subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], check=True)
        for label, (before, now) in in_process(trees, max(3, args.repeat // 4), 4).items():
            row(label, before, now)
        configs = Path(tmp) / "configs"
        configs.mkdir()
        (configs / "small.yaml").write_text(SMALL)
        (configs / "large.yaml").write_text(large())
        bin_ = installed_venv(Path(tmp) / "venv")
        for label, argv in (
            ("process `blubber small.yaml production`", [bin_ / "blubber", "small.yaml", "production"]),
            ("process `blubber large.yaml v48`", [bin_ / "blubber", "large.yaml", "v48"]),
            ("process `blubber --help`", [bin_ / "blubber", "--help"]),
            ("process `deployer --help`", [bin_ / "deployer", "--help"]),
            ("process `deployer --version`", [bin_ / "deployer", "--version"]),
            (
                "dev venv `python -m blubber.cli small.yaml …`",
                [sys.executable, "-m", "blubber.cli", "small.yaml", "production"],
            ),
        ):
            row(label, *processes([str(a) for a in argv], trees, args.repeat, str(configs)))
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
