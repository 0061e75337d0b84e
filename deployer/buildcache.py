"""The registry-backed build cache: a runner whose engine is empty (a fresh CI runner) still reuses the
dependency layers (`npm ci`, `pip install`) of the last pushed build after a source-only change.

Debian's docker 20.10 does BuildKit builds without buildx, so there is no `--cache-to type=registry`. Its
BuildKit can write the cache into the image it builds (`BUILDKIT_INLINE_CACHE=1`), but only for that
image's own layers (BuildKit's `min` mode). A multi-stage variant installs its dependencies in an earlier
stage (node-hello's production runs `npm ci` in `prep` and copies the result), so each earlier stage is
built as an image of its own too (`--target`, all from the engine's cache right after the variant's build).

    <registry>/<namespace>/<service>/cache:<variant>           the variant's image, with its inline cache
    <registry>/<namespace>/<service>/cache:<variant>.<stage>   each earlier stage of the variant

A build imports (`--cache-from`) those the registry has. They are pushed only after the tests passed (the
test variant's by `deployer.build.test`, the production variant's with the image by `deployer.build.push`),
so a failing test pushes nothing, cache included. They live in a repository of their own: deploys and
prune never see them, and a cache push that fails only costs the next runner its cache, never the ship.

A cache image is pushed only when its stage ran its dependency step itself. docker 20.10's BuildKit writes
a step that it took from a cache (imported or local) after a COPY from the build context into the inline
cache without the link a later build needs (measured: the second fresh runner in a row ran `npm ci` again;
moby/buildkit#1981 describes the same "every second time"). Such an image would replace a good cache with a
broken one, so the registry keeps the cache that served the step; a source-only change then keeps reusing
it, and a dependency change (the step runs) writes a new one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from deployer.errors import EnvironmentMissing
from deployer.tools import docker, registry
from deployer.tools.command import ToolFailed

__all__ = [
    "CacheImage",
    "build_stages",
    "final_stage",
    "present",
    "push",
    "refs",
    "repository",
    "served_from_cache",
    "stages",
]

Progress = Callable[[str], None]

_FROM = re.compile(r"^FROM\s+\S+(?:\s+AS\s+(?P<name>\S+))?\s*$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class CacheImage:
    """A local image to push as cache: `ref` is where it goes in the registry; `served` names the step
    that came from a cache after a context COPY (then it is not pushed: see the module's docstring)."""

    ref: str
    image_id: str
    served: str | None = None


# BuildKit plain progress: "#12 [prep 6/9] RUN npm ci" (a named stage of several), "#10 [6/7] RUN npm ci"
# (one stage), then "#12 CACHED" when the step came from a cache. Steps are printed as they start, which is
# not their order in the stage.
_STEP = re.compile(r"^#(?P<n>\d+) \[(?:(?P<stage>\S+) )?(?P<index>\d+)/\d+\] (?P<instruction>.*)$")


def served_from_cache(lines: Sequence[str], stage: str | None) -> str | None:
    """The first RUN step of `stage` (None: the Dockerfile's only stage) after a COPY from the build
    context that BuildKit took from a cache, or None when each such step ran in this build."""
    cached = {
        line.split(" ", 1)[0][1:] for line in lines if line.startswith("#") and line.endswith(" CACHED")
    }
    steps: dict[int, tuple[str, str]] = {}  # index in the stage -> (vertex, instruction)
    for line in lines:
        m = _STEP.match(line)
        if m and m.group("stage") == stage:
            steps.setdefault(int(m.group("index")), (m.group("n"), m.group("instruction")))
    copied = False
    for _, (vertex, instruction) in sorted(steps.items()):
        if instruction.startswith("COPY") and "--from=" not in instruction:
            copied = True
        elif copied and instruction.startswith("RUN") and vertex in cached:
            return instruction
    return None


def repository(image_repository: str) -> str:
    """Where the cache of `<registry>/<namespace>/<service>` goes: its own `…/cache` repository."""
    return f"{image_repository}/cache"


def stages(dockerfile: str) -> list[str | None]:
    """The stage names of a Dockerfile, in order (None for a stage without `AS`)."""
    return [m.group("name") for m in _FROM.finditer(dockerfile)]


def refs(image_repository: str, variant: str, dockerfile: str) -> list[str]:
    """The cache references of a variant: its image first, then each named earlier stage."""
    cache = repository(image_repository)
    earlier = [name for name in stages(dockerfile)[:-1] if name]
    return [f"{cache}:{variant}", *(f"{cache}:{variant}.{name}" for name in earlier)]


def present(references: Sequence[str], *, creds: registry.Credentials | None) -> list[str]:
    """The references the registry has (asking for a missing one makes BuildKit print an error block in
    the build output, though the build goes on). A registry that does not answer gives no cache."""
    found = []
    for ref in references:
        host, _, path = ref.partition("/")
        name, _, tag = path.rpartition(":")
        try:
            if registry.digest(name, tag, registry=host, creds=creds, retry=registry.Retry(attempts=1)):
                found.append(ref)
        except (EnvironmentMissing, OSError):  # OSError: urllib's errors other than 401/404
            return []
    return found


def build_stages(
    context: Path,
    dockerfile: str,
    stage_refs: Sequence[str],
    *,
    cache_from: Sequence[str],
    local_tag: Callable[[str], str],
    stream: Progress | None,
    timeout: float | None,
    output: Sequence[str],
) -> list[CacheImage]:
    """Build each earlier stage of a just-built Dockerfile as its own image with its inline cache (from the
    engine's cache: the variant's build ran them all). `stage_refs` are `refs(...)[1:]`; `local_tag(stage)`
    names the local image, so repeated builds replace it instead of piling up untagged images; `output` is
    the variant build's BuildKit output, which says which steps of each stage ran."""
    images = []
    for ref in stage_refs:
        stage = ref.rsplit(".", 1)[1]
        served = served_from_cache(output, stage)
        if served is not None:  # the registry's cache for this stage stays; building it is not needed
            images.append(CacheImage(ref, "", served))
            continue
        image_id = docker.build(
            context,
            dockerfile,
            tags=[local_tag(stage)],
            target=stage,
            stream=stream,
            timeout=timeout,
            cache_from=cache_from,
            inline_cache=True,
        )
        images.append(CacheImage(ref, image_id))
    return images


def final_stage(dockerfile: str) -> str | None:
    """The name BuildKit shows for the last stage's steps: None when the Dockerfile has one stage."""
    names = stages(dockerfile)
    return names[-1] if len(names) > 1 else None


def push(images: Sequence[CacheImage], *, progress: Progress | None, timeout: float | None) -> list[str]:
    """Push each cache image to its reference; the references that could not be pushed (each said to
    `progress`). The registry-named local tags exist only while pushing."""
    failed = []
    for image in images:
        if image.served is not None:
            if progress is not None:
                progress(f"build cache: {image.ref} kept ({image.served!r} came from a cache)")
            continue
        try:
            docker.tag(image.image_id, image.ref)
            docker.push(image.ref, timeout=timeout)
        except ToolFailed as err:
            failed.append(image.ref)
            last = (err.stderr_tail or err.stdout_tail).strip().splitlines()
            if progress is not None:
                reason = last[-1] if last else f"exit {err.exit_code}"
                progress(f"build cache: {image.ref} not pushed ({reason}); the next build runs without it")
        finally:
            docker.untag([image.ref])
        if image.ref not in failed and progress is not None:
            progress(f"build cache: pushed {image.ref}")
    return failed
