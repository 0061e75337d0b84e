"""Build-cache benchmark: a source-only change rebuilt on an emptied engine, with and without the registry
build cache (deployer.buildcache), side by side in one run.

    python bench/cache.py [--service node-hello] [--variant test] [--repeat 3]

Needs the build stack (scripts/stack up). Prints numbers, asserts nothing. It never empties the shared
engine: it starts an engine of its own (tests/integration/freshengine.py), pulls the service's base image
into it once, and before each timed build removes that engine's service images and runs `docker builder
prune -af` there (its own build cache only). The service is a copy of the example under a name of its own,
so its cache repository (<registry>/staging/<copy>/cache) is the bench's; it is deleted at the end.

Each repeat: a source-only change, then
  without: `deployer.build.build(..., cache=False)` on the emptied engine (no --cache-from, no export);
  with:    `deployer.build.build(...)` on the emptied engine, importing the registry's cache, then pushing
           its own as a passing test run would (or keeping the registry's when its dependency step came
           from it: see deployer.buildcache), so each repeat is the next fresh runner in a row.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import blubber  # noqa: E402
from deployer import build as build_mod  # noqa: E402
from deployer import buildcache, policies  # noqa: E402
from deployer.errors import BuildFailed, EnvironmentMissing  # noqa: E402
from deployer.target import builtin_registry  # noqa: E402
from deployer.tools import registry  # noqa: E402
from tests.integration import freshengine  # noqa: E402


def empty(host: str, service: str) -> None:
    """Remove the service's images from the bench's own engine and all of that engine's build cache."""
    refs = freshengine.docker(host, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    mine = [ref for ref in refs if ref.startswith(f"deployer/{service}:")]
    if mine:
        freshengine.docker(host, "image", "rm", "--force", *mine)
    freshengine.docker(host, "builder", "prune", "-af")


def step_cached(lines: list[str], instruction: str) -> bool | None:
    """Whether BuildKit said CACHED for the step whose header ends with `instruction` (None: no such step)."""
    headers = [line for line in lines if line.endswith(instruction) and line.startswith("#")]
    if not headers:
        return None
    vertex = headers[0].split(" ", 1)[0]
    return f"{vertex} CACHED" in lines


def dependency_step(dockerfile: str) -> str:
    """The dependency install instruction of the variant (npm ci / pip install), as BuildKit prints it."""
    for line in dockerfile.splitlines():
        if line.startswith("RUN ") and ("npm ci" in line or "pip" in line or "npm install" in line):
            return line
    return "RUN npm ci"


def stats(values: list[float]) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    return f"median {median:5.2f}s (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="empty-engine rebuild with and without the registry cache")
    parser.add_argument("--service", default="node-hello", help="an example under examples/")
    parser.add_argument("--variant", default="test")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    svc = work / f"{args.service}-{uuid.uuid4().hex[:8]}"
    shutil.copytree(REPO / "examples" / args.service, svc, ignore=shutil.ignore_patterns("node_modules"))
    config = blubber.load(svc / ".pipeline" / "blubber.yaml", policy=policies.BLUBBER)
    dockerfile = blubber.compile_dockerfile(config, args.variant)
    install = dependency_step(dockerfile)
    bases = sorted({line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")})
    repository = f"{builtin_registry().host}/{build_mod.NAMESPACE}/{svc.name}"
    without: list[float] = []
    with_cache: list[float] = []
    hits: list[bool | None] = []
    try:
        with freshengine.fresh_engine() as host:
            os.environ["DOCKER_HOST"] = host  # deployer.tools.docker passes it through
            start = time.monotonic()
            for base in bases:
                freshengine.docker(host, "pull", base)
            print(f"engine of its own at {host}; base image(s) {', '.join(bases)} pulled in "
                  f"{time.monotonic() - start:.1f}s (kept: not timed below)")  # fmt: skip
            # the first runner: builds with nothing to import, exports its cache
            seed = build_mod.build(svc, None, args.variant, inspect=False)
            buildcache.push(seed.cache_images, progress=None, timeout=600)
            cache_repo = buildcache.repository(repository)
            print(f"seed build (no cache yet) {seed.duration:.1f}s; cache pushed to {cache_repo}")
            for n in range(args.repeat):
                app = next(p for p in (svc / "app.js", svc / "app.py", svc / "server.js") if p.exists())
                comment = "//" if app.suffix == ".js" else "#"
                app.write_text(app.read_text() + f"\n{comment} source-only change {n}\n")
                lines: list[str] = []
                try:
                    empty(host, svc.name)
                    off = build_mod.build(svc, None, args.variant, inspect=False, cache=False)
                    empty(host, svc.name)
                    on = build_mod.build(svc, None, args.variant, inspect=False, progress=lines.append)
                except BuildFailed as err:  # e.g. npm's registry resetting a connection: say it, go on
                    print(f"  repeat {n + 1}: a build failed, not counted: {err.message.splitlines()[0]}")
                    continue
                without.append(off.duration)
                with_cache.append(on.duration)
                hits.append(step_cached(lines, install))
                failed = buildcache.push(on.cache_images, progress=None, timeout=600)
                note = "  (cache push failed)" if failed else ""
                print(f"  repeat {n + 1}: without {off.duration:6.2f}s   with {on.duration:6.2f}s   "
                      f"{install!r} cached: {hits[-1]}{note}")  # fmt: skip
    finally:
        os.environ.pop("DOCKER_HOST", None)
        host, _, path = buildcache.repository(repository).partition("/")
        try:
            for ref in buildcache.refs(repository, args.variant, dockerfile):
                digest = registry.digest(path, ref.rsplit(":", 1)[1], registry=host)
                if digest:
                    registry.delete_manifest(path, digest, registry=host)
        except EnvironmentMissing as err:
            print(f"(the bench's cache in {host}/{path} is left: {err.message})")
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n== {args.service} {args.variant}: rebuild after a source-only change on an emptied engine")
    print(f"  without the registry cache: {stats(without)}")
    print(f"  with the registry cache:    {stats(with_cache)}")
    if without and with_cache:
        ratio = statistics.median(without) / statistics.median(with_cache)
        print(f"  without / with (medians):   {ratio:.1f}x")
    print(f"  dependency step cached:     {sum(1 for h in hits if h)}/{len(hits)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
