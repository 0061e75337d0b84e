"""deployer.buildcache and how deployer.build uses it: which references, what is imported, what is pushed
and when (the docker and registry calls are faked at the process/network boundary; the real engine and
registry are in tests/integration/test_build_cache.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer import build as build_mod
from deployer import buildcache
from deployer.errors import TestVariantFailed
from deployer.tools import docker, registry
from deployer.tools.command import ToolFailed

MULTI_STAGE = """\
FROM 127.0.0.1:5000/base/nodejs:12 AS prep
RUN npm ci
FROM 127.0.0.1:5000/base/nodejs-runtime:12 AS production
COPY --from=prep /srv/app /srv/app
"""

TWO_VARIANTS = """\
version: v4
base: 127.0.0.1:5000/base/bookworm:12
variants:
  build:
    copies: [local]
  test:
    includes: [build]
    entrypoint: [./t.sh]
  production:
    copies: [build]
    entrypoint: [./run.sh]
"""


def test_stages_and_refs_of_a_multi_stage_variant():
    assert buildcache.stages(MULTI_STAGE) == ["prep", "production"]
    assert buildcache.refs("r:5000/staging/svc", "production", MULTI_STAGE) == [
        "r:5000/staging/svc/cache:production",
        "r:5000/staging/svc/cache:production.prep",
    ]


def test_a_single_stage_variant_has_one_ref_and_an_unnamed_stage_none():
    assert buildcache.stages("FROM base\nRUN x\n") == [None]
    assert buildcache.refs("r/s/svc", "test", "from base as test\n") == ["r/s/svc/cache:test"]


class Boundary:
    """Fakes of the docker and registry calls (the process and network boundary), with a registry that
    holds `cached` tags."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, cached: set[str], test_exit: int = 0) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.refuse_push: set[str] = set()
        creds = registry.Credentials("ci", "pw", "test")

        def build(context, dockerfile, **kw) -> str:
            self.calls.append(("build", kw.get("target") or "", *kw.get("cache_from", ())))
            self.inline = kw.get("inline_cache")
            return "sha256:" + ("s" if kw.get("target") else "i") * 64

        def push(ref: str, stream=None, timeout=None) -> docker.PushResult:
            self.calls.append(("push", ref))
            if ref in self.refuse_push:
                raise ToolFailed("docker", ["docker", "push", ref], 1, "denied: requested access is denied")
            return docker.PushResult(ref, "sha256:" + "d" * 64, 1, 2)

        def digest(name: str, tag: str, **kw) -> str | None:
            return "sha256:" + "d" * 64 if f"{name}:{tag}" in cached or tag.endswith("-production") else None

        def run_container(image_ref, **kw) -> docker.ContainerRun:
            self.calls.append(("run", image_ref))
            return docker.ContainerRun(kw["name"], test_exit, ["1 test failed"] if test_exit else ["ok"])

        info = docker.Image("sha256:" + "i" * 64, 1000, ("l1",), (), (), "", (), "", ())
        monkeypatch.setattr(docker, "ping", lambda: "20.10")
        monkeypatch.setattr(registry, "login", lambda host: creds)
        monkeypatch.setattr(docker, "build", build)
        monkeypatch.setattr(docker, "image", lambda ref: info)
        monkeypatch.setattr(docker, "tag", lambda src, ref: None)
        monkeypatch.setattr(docker, "untag", lambda refs: None)
        monkeypatch.setattr(docker, "push", push)
        monkeypatch.setattr(docker, "run_container", run_container)
        monkeypatch.setattr(registry, "digest", digest)

    def pushes(self) -> list[str]:
        return [c[1] for c in self.calls if c[0] == "push"]


def make_service(root: Path) -> Path:
    (root / ".pipeline").mkdir(parents=True)
    (root / ".pipeline" / "blubber.yaml").write_text(TWO_VARIANTS)
    (root / "t.sh").write_text("#!/bin/sh\n")
    return root


def test_a_build_imports_only_the_cache_the_registry_has_and_says_so(tmp_path, monkeypatch):
    fake = Boundary(monkeypatch, cached={"staging/svc/cache:production.build"})
    lines: list[str] = []
    built = build_mod.build(make_service(tmp_path / "svc"), None, "production", progress=lines.append)
    prep = "127.0.0.1:5000/staging/svc/cache:production.build"
    assert fake.calls[0] == ("build", "", prep)  # cache:production is not in the registry
    assert fake.inline is True
    assert fake.calls[1] == ("build", "build", prep)  # the earlier stage, as its own cache image
    assert [i.ref for i in built.cache_images] == ["127.0.0.1:5000/staging/svc/cache:production", prep]
    assert f"build cache: {prep}" in lines
    assert fake.pushes() == []  # a build pushes nothing


def test_no_cache_imports_and_exports_nothing(tmp_path, monkeypatch):
    fake = Boundary(monkeypatch, cached={"staging/svc/cache:production"})
    built = build_mod.build(make_service(tmp_path / "svc"), None, "production", no_cache=True)
    assert fake.calls == [("build", "")] and built.cache_images == ()


def test_push_pushes_the_image_before_its_cache(tmp_path, monkeypatch):
    fake = Boundary(monkeypatch, cached=set())
    built = build_mod.build(make_service(tmp_path / "svc"), None, "production")
    build_mod.push(built)
    assert fake.pushes() == [
        *built.references,
        "127.0.0.1:5000/staging/svc/cache:production",
        "127.0.0.1:5000/staging/svc/cache:production.build",
    ]


def test_a_refused_cache_push_is_said_and_does_not_fail_the_push(tmp_path, monkeypatch):
    fake = Boundary(monkeypatch, cached=set())
    fake.refuse_push = {"127.0.0.1:5000/staging/svc/cache:production.build"}
    built = build_mod.build(make_service(tmp_path / "svc"), None, "production")
    lines: list[str] = []
    pushed = build_mod.push(built, progress=lines.append)
    assert pushed.digest == "sha256:" + "d" * 64
    assert any(
        "cache:production.build not pushed (denied: requested access is denied)" in line for line in lines
    )
    assert "build cache: pushed 127.0.0.1:5000/staging/svc/cache:production" in lines


def test_the_test_cache_is_pushed_only_after_the_tests_passed(tmp_path, monkeypatch):
    fake = Boundary(monkeypatch, cached=set())
    build_mod.test(make_service(tmp_path / "svc"), None, push_cache=True)
    # the test variant includes `build` (one stage): one image, its cache pushed after the run
    assert [c[0] for c in fake.calls] == ["build", "run", "push"]
    assert fake.pushes() == ["127.0.0.1:5000/staging/svc/cache:test"]


def test_a_failing_test_pushes_no_cache(tmp_path, monkeypatch):
    fake = Boundary(monkeypatch, cached=set(), test_exit=1)
    with pytest.raises(TestVariantFailed):
        build_mod.test(make_service(tmp_path / "svc"), None, push_cache=True)
    assert fake.pushes() == [] and ("run", "sha256:" + "i" * 64) in fake.calls


def test_without_push_cache_a_passing_test_pushes_nothing(tmp_path, monkeypatch):
    fake = Boundary(monkeypatch, cached=set())
    build_mod.test(make_service(tmp_path / "svc"), None)
    assert fake.pushes() == []


# BuildKit's plain output of docker 20.10, trimmed: a multi-stage build whose `prep` stage took `npm ci`
# from a cache, and a one-stage build that ran it.
SERVED_PREP = """\
#4 [prep 1/7] FROM 127.0.0.1:5000/base/nodejs:12
#9 [prep 5/7] COPY --chown=65533:65533 [package.json, package-lock.json, ./]
#9 CACHED
#7 [prep 2/7] RUN (getent group "65533" || groupadd -o -g "65533" -r "somebody")
#7 CACHED
#10 [prep 6/7] RUN npm ci "--only=production"
#10 pulling sha256:7d1226fefc4248fa5921460d87b82fd2ce5c4039bd2808d8e60e7ea2d2e0d9d6 1.7s done
#10 CACHED
#11 [prep 7/7] COPY --chown=65533:65533 [., .]
#11 DONE 0.1s
#12 [production 5/6] COPY --chown=65533:65533 --from=prep [/srv/app, /srv/app]
#12 DONE 0.2s
#13 [production 6/6] RUN echo done
#13 DONE 0.2s
""".splitlines()

RAN = """\
#9 [5/7] COPY --chown=65533:65533 [package.json, package-lock.json, ./]
#9 CACHED
#10 [6/7] RUN npm ci
#10 0.512 added 94 packages in 3s
#10 DONE 3.6s
""".splitlines()


def test_a_dependency_step_taken_from_a_cache_after_a_context_copy_is_found_per_stage():
    assert buildcache.served_from_cache(SERVED_PREP, "prep") == 'RUN npm ci "--only=production"'
    # production copies from prep (not from the context) and ran its RUN: its cache is good
    assert buildcache.served_from_cache(SERVED_PREP, "production") is None
    assert buildcache.served_from_cache(RAN, None) is None
    assert buildcache.served_from_cache([*RAN[:3], "#10 CACHED"], None) == "RUN npm ci"


def test_final_stage_is_none_for_one_stage():
    assert buildcache.final_stage(MULTI_STAGE) == "production"
    assert buildcache.final_stage("FROM base AS test\nRUN x\n") is None


def test_a_cache_image_whose_dependency_step_came_from_a_cache_is_kept_not_pushed(monkeypatch):
    pushed: list[str] = []
    monkeypatch.setattr(docker, "tag", lambda src, ref: None)
    monkeypatch.setattr(docker, "untag", lambda refs: None)
    monkeypatch.setattr(docker, "push", lambda ref, timeout=None: pushed.append(ref))
    lines: list[str] = []
    images = [
        buildcache.CacheImage("r/s/svc/cache:production", "sha256:" + "a" * 64),
        buildcache.CacheImage("r/s/svc/cache:production.prep", "", 'RUN npm ci "--only=production"'),
    ]
    assert buildcache.push(images, progress=lines.append, timeout=10) == []
    assert pushed == ["r/s/svc/cache:production"]
    assert lines == [
        "build cache: pushed r/s/svc/cache:production",
        "build cache: r/s/svc/cache:production.prep kept "
        "('RUN npm ci \"--only=production\"' came from a cache)",
    ]


def test_build_marks_the_stage_whose_dependency_step_came_from_a_cache(tmp_path, monkeypatch):
    fake = Boundary(monkeypatch, cached={"staging/svc/cache:test"})

    def build(context, dockerfile, **kw) -> str:
        fake.calls.append(("build", kw.get("target") or ""))
        for line in RAN[:3] + ["#10 CACHED"]:
            kw["stream"](line)
        return "sha256:" + "i" * 64

    monkeypatch.setattr(docker, "build", build)
    built = build_mod.build(make_service(tmp_path / "svc"), None, "test")
    assert [(i.ref, i.served) for i in built.cache_images] == [
        ("127.0.0.1:5000/staging/svc/cache:test", "RUN npm ci")
    ]
