"""Blubber compile time: in-process (load, compile) and whole-process `blubber`, small and large configs.

The large config has 50 variants with deep includes (each variant includes the previous one and a shared
one) and copies chains, compiled for its most-derived variant. Target: compile of the large config under
20 ms in-process. Prints numbers only; it asserts nothing (timings are not tests).

    python bench/compile.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from blubber import compile_dockerfile, load

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


def timed(fn, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), min(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, text, variant in (("small", SMALL, "production"), ("large", large(), "v48")):
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(text)
            config = load(path, policy=None)
            stages = compile_dockerfile(config, variant).count("\nFROM ") + 1
            load_ms = timed(lambda p=path: load(p, policy=None), args.repeat)
            compile_ms = timed(lambda c=config, v=variant: compile_dockerfile(c, v), args.repeat)
            both_ms = timed(lambda p=path, v=variant: compile_dockerfile(load(p), v), args.repeat)
            cmd = [sys.executable, "-m", "blubber.cli", str(path), variant]
            proc_ms = timed(
                lambda c=cmd: subprocess.run(c, check=True, capture_output=True), max(3, args.repeat // 6)
            )
            print(f"{name}: {len(config.variants)} variants, {stages} stages for {variant!r}")
            for label, (median, best) in (
                ("load (read + validate)", load_ms),
                ("compile (in-process)", compile_ms),
                ("load + compile (default policy)", both_ms),
                ("whole process `blubber`", proc_ms),
            ):
                print(f"  {label:<32} median {median:7.2f} ms  min {best:7.2f} ms")


if __name__ == "__main__":
    main()
