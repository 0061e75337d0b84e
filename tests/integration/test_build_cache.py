"""The registry build cache on the real engine and registry: a fresh engine (a new CI runner: no images, no
build cache) reuses the dependency layer a passing test run exported, after a source-only change; a failing
test exports nothing."""

from __future__ import annotations

import pytest

from deployer import build as build_mod
from deployer import buildcache
from deployer.errors import TestVariantFailed
from deployer.target import builtin_registry
from deployer.tools import registry
from tests.conftest import require
from tests.integration import freshengine

pytestmark = [pytest.mark.docker, pytest.mark.registry]


def _cache_tag(repository: str, variant: str) -> str | None:
    """The digest of `<repository>/cache:<variant>` in the registry, or None."""
    host, _, path = buildcache.repository(repository).partition("/")
    return registry.digest(path, variant, registry=host)


def _delete_cache(repository: str, variant: str) -> None:
    host, _, path = buildcache.repository(repository).partition("/")
    digest = registry.digest(path, variant, registry=host)
    if digest:
        registry.delete_manifest(path, digest, registry=host)


def _rebuild_on_an_emptied_engine(host: str, svc, n: int) -> list[str]:
    """A source-only change, then the test variant built on `host` emptied of images and build cache (the
    test's own engine: the shared one is never pruned); BuildKit's output."""
    (svc / "app.js").write_text((svc / "app.js").read_text() + f"\n// source-only change {n}\n")
    freshengine.docker(host, "builder", "prune", "-af")
    images = freshengine.docker(host, "images", "-q").stdout.split()
    if images:
        freshengine.docker(host, "image", "rm", "--force", *images)
    assert freshengine.docker(host, "images", "-q").stdout.strip() == ""  # nothing, as on a new runner
    lines: list[str] = []
    built = build_mod.build(svc, None, "test", progress=lines.append, inspect=False)
    buildcache.push(built.cache_images, progress=lines.append, timeout=600)  # as a passing test run does
    return lines


def _step_cached(lines: list[str], instruction_end: str) -> bool:
    headers = [line for line in lines if line.startswith("#") and line.endswith(instruction_end)]
    assert headers, lines
    return f"{headers[0].split(' ', 1)[0]} CACHED" in lines


def test_fresh_runners_in_a_row_reuse_the_npm_ci_layer_from_the_registry(stack, service_copy, monkeypatch):
    require("dockerd (for a fresh engine)", freshengine.available(), "scripts/stack up")
    svc = service_copy("node-hello")
    # dependencies of their own, so that this first run really runs npm ci (the shared engine has the
    # examples' layers) and exports them
    package = svc / "package.json"
    package.write_text(
        package.read_text().replace('"private"', f'"x-cache-test": "{svc.name}",\n  "private"', 1)
    )
    first: list[str] = []
    build_mod.test(svc, push_cache=True, progress=first.append)
    repository = f"{builtin_registry().host}/{build_mod.NAMESPACE}/{svc.name}"
    try:
        assert not _step_cached(first, "RUN npm ci")
        assert _cache_tag(repository, "test"), "a passing test run pushed no build cache"
        with freshengine.fresh_engine() as host:
            monkeypatch.setenv("DOCKER_HOST", host)
            # two runners in a row: the second imports what the first pushed (or kept)
            for n in (1, 2):
                lines = _rebuild_on_an_emptied_engine(host, svc, n)
                assert f"build cache: {repository}/cache:test" in lines
                assert _step_cached(lines, "RUN npm ci"), f"runner {n} ran npm ci again"
                assert not _step_cached(lines, "COPY --chown=65533:65533 [., .]"), (
                    "the changed source came from a cache"
                )
                # its npm ci came from the cache: the registry keeps the cache that served it
                assert f"build cache: {repository}/cache:test kept ('RUN npm ci' came from a cache)" in lines
    finally:
        _delete_cache(repository, "test")


def test_a_failing_test_pushes_no_build_cache(stack, service_copy):
    svc = service_copy("node-hello")
    test_file = next((svc / "test").glob("*.js"))
    test_file.write_text(test_file.read_text() + "\nrequire('node:assert').strictEqual(1, 2);\n")
    with pytest.raises(TestVariantFailed):
        build_mod.test(svc, push_cache=True)
    repository = f"{builtin_registry().host}/{build_mod.NAMESPACE}/{svc.name}"
    assert _cache_tag(repository, "test") is None
