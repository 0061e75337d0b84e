"""Blubber compile time: in-process (load, compile) and whole-process `blubber`, small and large configs.

The large config has 50 variants with deep includes (each variant includes the previous one and a shared
one) and copies chains, compiled for its most-derived variant. Targets (issue 14): load + compile of the
large config in-process <= 30 ms, `blubber` as a process on the small config <= 150 ms.

Each row is measured twice in the same run, interleaved sample by sample so machine noise hits both:
"before" forces what the code did before the compiled validator (every config through jsonschema's full
iter_errors; as a process: jsonschema and the whole compiler imported up front and the default policy
applied), "now" is the code as it is. Prints numbers only; it asserts nothing (timings are not tests).

    python bench/compile.py [--repeat N]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from deployer.policies import BLUBBER as DEFAULT_POLICY

import blubber.schema
from blubber import compile_dockerfile, load

# The process as it started before: jsonschema and the compiler imported eagerly, full validation.
BEFORE_PROCESS = (
    "import sys, jsonschema, blubber.api, blubber.schema as s; s.is_valid = lambda *a, **k: False; "
    "from blubber.cli import main; sys.argv[0] = 'blubber'; main()"
)

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


def paired(before: Callable[[], object], now: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Medians (ms) of `before` and `now`, run alternately `repeat` times each after one warm-up."""
    samples: tuple[list[float], list[float]] = ([], [])
    for fn in (before, now):
        fn()
    for _ in range(repeat):
        for fn, out in zip((before, now), samples, strict=True):
            start = time.perf_counter()
            fn()
            out.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples[0]), statistics.median(samples[1])


@contextmanager
def full_validation(enabled: bool):
    """With `enabled`, every schema check goes through jsonschema's iter_errors, as before."""
    original = blubber.schema.is_valid
    if enabled:
        blubber.schema.is_valid = lambda *_args, **_kwargs: False
    try:
        yield
    finally:
        blubber.schema.is_valid = original


def processes(before: list[str], now: list[str], repeat: int) -> tuple[float, float, float, float]:
    """Wall and CPU (user + system) medians in ms of two commands run alternately: on a shared, loaded
    machine the CPU time of the child says more about start-up cost than the wall clock does."""
    wall: tuple[list[float], list[float]] = ([], [])
    cpu: tuple[list[float], list[float]] = ([], [])
    for argv in (before, now):
        subprocess.run(argv, check=True, capture_output=True)
    for _ in range(repeat):
        for argv, w, c in zip((before, now), wall, cpu, strict=True):
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            w.append((time.perf_counter() - start) * 1000)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            c.append((after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime) * 1000)
    return (*(statistics.median(x) for x in wall), *(statistics.median(x) for x in cpu))  # type: ignore[return-value]


def print_process(label: str, before: list[str], now: list[str], repeat: int, indent: str) -> None:
    wb, wn, cb, cn = processes(before, now, repeat)
    print(f"{indent}{label + ', wall':<{44 - len(indent)}} {wb:10.2f} {wn:10.2f}")
    print(f"{indent}{label + ', CPU':<{44 - len(indent)}} {cb:10.2f} {cn:10.2f}")


def in_mode(before: bool, fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        with full_validation(before):
            return fn()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    policy = str(DEFAULT_POLICY)
    print(f"{'':<44} {'before':>10} {'now':>10}  (medians, ms)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, text, variant in (("small", SMALL, "production"), ("large", large(), "v48")):
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(text)
            config = load(path, policy=None)
            stages = compile_dockerfile(config, variant).count("\nFROM ") + 1
            data = config_data(path)
            print(f"{name}: {len(config.variants)} variants, {stages} stages for {variant!r}")
            rows = {
                "schema check of the config": (
                    lambda d=data: list(blubber.schema._validator(None).iter_errors(d)),
                    lambda d=data: blubber.schema.is_valid(d),
                ),
                "load (read + validate), no policy": (
                    in_mode(True, lambda p=path: load(p, policy=None)),
                    in_mode(False, lambda p=path: load(p, policy=None)),
                ),
                "load + compile, no policy": (
                    in_mode(True, lambda p=path, v=variant: compile_dockerfile(load(p, policy=None), v)),
                    in_mode(False, lambda p=path, v=variant: compile_dockerfile(load(p, policy=None), v)),
                ),
                "load + compile, default policy": (
                    in_mode(True, lambda p=path, v=variant: compile_dockerfile(load(p), v)),
                    in_mode(False, lambda p=path, v=variant: compile_dockerfile(load(p), v)),
                ),
            }
            for label, (before, now) in rows.items():
                b, n = paired(before, now, args.repeat)
                print(f"  {label:<42} {b:10.2f} {n:10.2f}")
            old = [sys.executable, "-c", BEFORE_PROCESS, str(path), variant, "--policy", policy]
            new = [sys.executable, "-m", "blubber.cli", str(path), variant]
            print_process("process `blubber CONFIG VARIANT`", old, new, max(5, args.repeat // 3), "  ")
        old = [sys.executable, "-c", BEFORE_PROCESS, "--help"]
        new = [sys.executable, "-m", "blubber.cli", "--help"]
        print_process("process `blubber --help`", old, new, max(5, args.repeat // 3), "")


def config_data(path: Path) -> object:
    from blubber.source import parse

    return parse(path.read_text(), str(path)).data


if __name__ == "__main__":
    main()
