"""Build-stack benchmark: prints numbers, asserts nothing (run: .venv/bin/python bench/build.py).

Needs `scripts/stack up`. Works on a throwaway copy of examples/node-hello (and python-hello for sizes),
pushes into a throwaway registry namespace and deletes the manifests afterwards.

Measured, side by side in one run:
  1. cold build (no cache) vs rebuild after a source-only change (the `npm ci` layer must be reused);
  2. rebuild after a package.json change (base and user layers reused, dependencies reinstalled);
  3. a naive Dockerfile (COPY . . then npm ci) vs ours, both after the same source-only change;
  4. production vs test image size (is multi-stage worth it? production stages use the runtime-only
     bases, test stages the full ones);
  5. layers uploaded on a second push of an unchanged image (target 0) and after a source-only change
     (target: only what changed), with the compressed bytes the registry received.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deployer import build as build_mod  # noqa: E402
from deployer.target import builtin_registry  # noqa: E402
from deployer.tools import docker, registry  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# Every change the benchmark makes carries this run's id: BuildKit's cache and the registry's blobs are
# keyed by content, so a change identical to an earlier run's would be a cache hit and measure nothing.
RUN_ID = uuid.uuid4().hex

NAIVE = """\
FROM 127.0.0.1:5000/base/nodejs:12
WORKDIR /srv/app
COPY . .
RUN npm ci
CMD ["npm", "test"]
"""


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.monotonic()
    result = fn()
    return time.monotonic() - started, result


def copy_example(root: Path, name: str) -> Path:
    target = root / name
    shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns("node_modules", "__pycache__"))
    return target


def touch_source(svc: Path, n: int) -> None:
    app = svc / "app.js"
    app.write_text(app.read_text() + f"\n// source-only change {n} of run {RUN_ID}\n")


def cached_steps(lines: list[str], needle: str) -> bool:
    """Whether the BuildKit step whose header contains `needle` was CACHED in this build's output."""
    headers = [line.split(" ", 1)[0] for line in lines if needle in line and line.startswith("#")]
    return any(f"{vertex} CACHED" in lines for vertex in headers)


def manifest_layers(repository: str, tag: str, creds: registry.Credentials) -> dict[str, int]:
    """{layer digest: compressed size} of a manifest in the registry."""
    url = f"http://{builtin_registry().host}/v2/{repository}/manifests/{tag}"
    response = registry._request("GET", url, creds, "application/vnd.docker.distribution.manifest.v2+json")
    with response:
        manifest = json.loads(response.read())
    return {layer["digest"]: int(layer["size"]) for layer in manifest["layers"]}


def mb(n: float) -> str:
    return f"{n / 1e6:7.1f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", action="store_true", help="keep the pushed manifests")
    args = parser.parse_args()

    docker.ping()
    creds = registry.login(builtin_registry().host)
    namespace = f"bench{uuid.uuid4().hex[:6]}"
    rows: list[tuple[str, str]] = []
    pushed: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="deployer-bench-") as tmp:
        root = Path(tmp)
        svc = copy_example(root, "node-hello")

        # 1. cold vs source-only rebuild (test variant: the one CI builds first)
        cold, _ = timed(lambda: build_mod.build(svc, None, "test", no_cache=True))
        touch_source(svc, 1)
        lines: list[str] = []
        warm, _ = timed(lambda: build_mod.build(svc, None, "test", progress=lines.append))
        reused = cached_steps(lines, "RUN npm ci")
        rows.append(("cold build (no cache), node-hello test", f"{cold:6.1f} s"))
        rows.append(
            (
                "rebuild after source-only change",
                f"{warm:6.1f} s  ({cold / warm:4.1f}x faster; "
                f"npm ci layer {'reused' if reused else 'REBUILT'})",
            )
        )

        # 2. package.json change: dependencies reinstall, base/user layers stay
        manifest = json.loads((svc / "package.json").read_text())
        manifest["description"] += f" (changed in run {RUN_ID})"
        (svc / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
        lines = []
        pkg, _ = timed(lambda: build_mod.build(svc, None, "test", progress=lines.append))
        rows.append(
            (
                "rebuild after package.json change",
                f"{pkg:6.1f} s  (user layers {'reused' if cached_steps(lines, 'useradd') else 'REBUILT'}; "
                f"npm ci {'reused' if cached_steps(lines, 'RUN npm ci') else 'rerun'})",
            )
        )

        # 3. naive Dockerfile vs ours after the same source-only change (both warm before it)
        naive_ctx = root / "naive"
        shutil.copytree(svc, naive_ctx)
        docker.build(naive_ctx, NAIVE, tags=["deployer-bench/naive:latest"])
        build_mod.build(svc, None, "test")
        touch_source(naive_ctx, 2)
        touch_source(svc, 2)
        naive_t, _ = timed(lambda: docker.build(naive_ctx, NAIVE, tags=["deployer-bench/naive:latest"]))
        ours_t, _ = timed(lambda: build_mod.build(svc, None, "test"))
        rows.append(("naive Dockerfile (COPY . . ; npm ci), source-only change", f"{naive_t:6.1f} s"))
        rows.append(
            (
                "ours (manifests, npm ci, then COPY .), same change",
                f"{ours_t:6.1f} s  ({naive_t / ours_t:4.1f}x faster)",
            )
        )

        # 4. production vs test size, both examples (issue 14 targets: production at most 50 % of test
        #    for node-hello, 60 % for python-hello)
        examples = (("node-hello", svc, 50), ("python-hello", copy_example(root, "python-hello"), 60))
        for example, directory, target in examples:
            test_img = build_mod.build(directory, None, "test")
            prod_img = build_mod.build(directory, None, "production")
            ratio = 100 * prod_img.size / test_img.size
            rows.append(
                (
                    f"{example}: production vs test image size",
                    f"{mb(prod_img.size)} vs {mb(test_img.size)}  ({ratio:4.1f}% of test; "
                    f"target <= {target}%: {'met' if ratio <= target else 'NOT met'})",
                )
            )
        for base in ("nodejs", "nodejs-runtime", "python3", "python3-runtime"):
            size = docker.image(f"127.0.0.1:5000/base/{base}:12").size
            rows.append((f"  (base/{base}:12 alone)", mb(size)))

        # 5. layers uploaded: first push, unchanged re-push, source-only change
        first_built = build_mod.build(svc, None, "production", namespace=namespace)
        first_t, first = timed(lambda: build_mod.push(first_built))
        pushed.append((f"{namespace}/{svc.name}", first.digest))
        again_t, again = timed(lambda: build_mod.push(first_built))
        touch_source(svc, 3)
        changed_built = build_mod.build(
            svc, None, "production", namespace=namespace, now=_later(first_built.tags[0])
        )
        changed_t, changed = timed(lambda: build_mod.push(changed_built))
        pushed.append((f"{namespace}/{svc.name}", changed.digest))
        before = manifest_layers(f"{namespace}/{svc.name}", first.tags[0], creds)
        after = manifest_layers(f"{namespace}/{svc.name}", changed.tags[0], creds)
        new = {d: s for d, s in after.items() if d not in before}
        total = sum(after.values())
        rows.append(
            (
                "first push of production (new repository)",
                f"{first.pushed_layers} layers uploaded, {first_t:5.1f} s",
            )
        )
        rows.append(
            ("second push, unchanged image", f"{again.pushed_layers} layers uploaded, {again_t:5.1f} s")
        )
        rows.append(
            (
                "push after a source-only change",
                f"{changed.pushed_layers} layers uploaded, {changed_t:5.1f} s; {len(new)} of {len(after)} "
                f"layers new, {mb(sum(new.values())).strip()} of {mb(total).strip()} compressed",
            )
        )
        docker.remove_images(["deployer-bench/naive:latest"])

    if not args.keep:
        for repository, digest in pushed:
            registry.delete_manifest(repository, digest, registry=builtin_registry().host, creds=creds)

    width = max(len(label) for label, _ in rows)
    print(f"deployer build benchmark ({time.strftime('%Y-%m-%d %H:%M:%S')}, docker {docker.ping()})")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    return 0


def _later(tag: str) -> Any:
    """A `now` one second after the timestamp in `tag`, so the changed image gets its own tag."""
    import datetime as dt

    stamp = dt.datetime.strptime(tag.split("-", 1)[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    return stamp + dt.timedelta(seconds=1)


if __name__ == "__main__":
    sys.exit(main())
