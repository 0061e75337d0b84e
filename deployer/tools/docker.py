"""Every docker call deployer makes, through the one run helper (`deployer.tools.command.run`).

Owns: which client runs (Debian's /usr/bin/docker: it does BuildKit builds without buildx), the
environment it runs with (DOCKER_BUILDKIT=1, a private DOCKER_CONFIG for registry logins), host
networking for builds and runs (the engine has no default bridge), and turning docker's failures into
our errors: an engine that does not answer → `EnvironmentMissing` with how to start it; a failed build
→ `BuildFailed` naming the failing instruction with the tail of its output.

Never prints: output goes to the caller's `stream` callback, command lines to the log.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deployer.errors import BuildFailed, EnvironmentMissing
from deployer.tools import command
from deployer.tools.command import ToolFailed

__all__ = [
    "DOCKER_BIN",
    "DOCKER_CONFIG",
    "Image",
    "LocalImage",
    "PushResult",
    "build",
    "docker_env",
    "engine_host",
    "image",
    "images",
    "login",
    "ping",
    "prune_build_cache",
    "push",
    "remove_container",
    "remove_images",
    "remove_unused_images",
    "run_container",
    "tag",
    "untag",
]

DOCKER_BIN = os.environ.get("DEPLOYER_DOCKER", "/usr/bin/docker")
"""The docker client (override with $DEPLOYER_DOCKER)."""

DEFAULT_HOST = "unix:///var/run/docker.sock"
"""The engine's socket when $DOCKER_HOST is not set (scripts/stack starts dockerd there)."""

DOCKER_CONFIG = Path(os.environ.get("DEPLOYER_DOCKER_CONFIG", "/var/lib/deployer/docker-client"))
"""Where registry logins are stored: private to deployer (and scripts/stack), never the user's ~/.docker."""

START_HINT = "start the build stack with `scripts/stack up` (or `make stack`)"

# What the client itself prints when it cannot reach the engine. Kept narrow on purpose: build and test
# output (npm, pip, a test suite) may well say "connection refused" about something else.
_NO_ENGINE = re.compile(r"^(?:Cannot connect to the Docker daemon at |error during connect: )", re.MULTILINE)

Stream = Callable[[str], None]


def docker_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment docker runs with. DOCKER_HOST is passed through on purpose: it is how a user
    (or a test) points deployer at another engine; everything else comes from here."""
    env = {"DOCKER_BUILDKIT": "1", "DOCKER_CONFIG": str(DOCKER_CONFIG)}
    if os.environ.get("DOCKER_HOST"):
        env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    env.update(extra or {})
    return env


def engine_host() -> str:
    """Where the docker client finds the engine: $DOCKER_HOST (see `docker_env`), else the local socket."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def _engine_missing(text: str) -> EnvironmentMissing | None:
    if not _NO_ENGINE.search(text):
        return None
    where = engine_host()
    last = next((line for line in reversed(text.strip().splitlines()) if line.strip()), "")
    return EnvironmentMissing(
        f"the Docker engine is not running (no answer on {where}): {last}", hint=START_HINT
    )


def _docker(
    args: Sequence[str],
    *,
    timeout: float | None = 120,
    input: str | None = None,
    stream: Stream | None = None,
    check: bool = True,
    merge_stderr: bool = False,
) -> command.Completed:
    """Run `docker <args>`; an engine that does not answer becomes `EnvironmentMissing`."""
    try:
        result = command.run(
            "docker",
            [DOCKER_BIN, *args],
            env=docker_env(),
            timeout=timeout,
            input=input,
            stream=stream,
            check=check,
            merge_stderr=merge_stderr,
            missing_hint="install Debian's docker.io: `scripts/stack up` does it",
        )
    except ToolFailed as err:
        missing = _engine_missing(f"{err.stderr_tail}\n{err.stdout_tail}")
        if missing is not None:
            raise missing from err
        raise
    if result.exit_code != 0:  # check=False: the caller looks at the code, but a dead engine is ours
        missing = _engine_missing(f"{result.stderr}\n{result.stdout[-2000:]}")
        if missing is not None:
            raise missing
    return result


def ping() -> str:
    """The engine's version; raises `EnvironmentMissing` (with how to start it) when it does not answer."""
    try:
        result = _docker(["version", "--format", "{{.Server.Version}}"], timeout=20)
    except ToolFailed as err:
        raise EnvironmentMissing(
            f"the Docker engine does not answer: {err.stderr_tail.strip()[-300:]}", hint=START_HINT
        ) from err
    return result.stdout.strip()


def logged_in(registry: str, user: str, password: str) -> bool:
    """Whether docker's config already holds exactly these credentials for `registry` (what `docker login`
    would write), so the login process can be skipped."""
    try:
        auths = json.loads((DOCKER_CONFIG / "config.json").read_text(encoding="utf-8")).get("auths") or {}
    except (OSError, ValueError, AttributeError):
        return False
    expected = base64.b64encode(f"{user}:{password}".encode()).decode()
    entry = auths.get(registry)
    return isinstance(entry, dict) and entry.get("auth") == expected


def login(registry: str, user: str, password: str) -> None:
    """`docker login` with the password on stdin (never in argv), unless docker's config already has
    these credentials. Raises `ToolFailed` when refused."""
    if logged_in(registry, user, password):
        return
    DOCKER_CONFIG.mkdir(mode=0o700, parents=True, exist_ok=True)
    _docker(["login", registry, "--username", user, "--password-stdin"], input=password, timeout=60)


# --- build ----------------------------------------------------------------------------------------------

# BuildKit's plain progress (docker 20.10) numbers each step ("vertex") and prefixes its output:
#   #8 [5/5] RUN npm ci
#   #8 0.136 npm ERR! ...
#   #8 ERROR: executor failed running [/bin/sh -c npm ci]: exit code: 1
#   ------
#    > [5/5] RUN npm ci:
#   ------
# (newer BuildKit repeats the step's last lines inside the ------ block), then the final error line.
_FAILED_STEP = re.compile(r"^ > \[(?P<step>[^\]]+)\] (?P<instruction>.*?):$")
_VERTEX = re.compile(r"^#(?P<n>\d+) (?P<rest>.*)$")
_TIMED = re.compile(r"^\d+\.\d+ (?P<text>.*)$")
_EXIT_CODE = re.compile(r"(exit code: \d+)\s*$")


@dataclass(frozen=True)
class BuildFailure:
    """What went wrong in a build, read from BuildKit's output."""

    step: str | None  # e.g. "test 5/8"
    instruction: str | None  # e.g. "RUN npm ci"
    reason: str  # e.g. "exit code: 1", or BuildKit's final error line
    tail: list[str]  # the failing step's last output lines (or the build's last lines)


def parse_build_failure(output: str, tail_lines: int = 20) -> BuildFailure:
    """Find the failing instruction, its output tail and the reason in BuildKit plain output."""
    lines = output.splitlines()
    step = instruction = None
    in_block: list[str] = []
    for i, line in enumerate(lines):
        match = _FAILED_STEP.match(line)
        if match and i > 0 and lines[i - 1].strip() == "------":
            step, instruction = match.group("step"), match.group("instruction")
            in_block = []
            for inner in lines[i + 1 :]:
                if inner.strip() == "------":
                    break
                in_block.append(inner)
    block: list[str] = []
    error_line = ""
    if step is not None:
        header = f"[{step}] {instruction}"
        numbers = [m.group("n") for m in map(_VERTEX.match, lines) if m and m.group("rest") == header]
        vertex = numbers[-1] if numbers else None
        for line in lines:
            match = _VERTEX.match(line)
            if not match or match.group("n") != vertex:
                continue
            timed = _TIMED.match(match.group("rest"))
            if timed:
                block.append(timed.group("text"))
            elif match.group("rest").startswith("ERROR: "):
                error_line = match.group("rest")[len("ERROR: ") :]
        if not block:
            block = [_VERTEX.sub(r"\g<rest>", line) for line in in_block if line.strip()]
        if not block and error_line:
            block = [error_line]
    final = next((line.strip() for line in reversed(lines) if line.strip()), "docker build failed")
    reason = error_line or final
    short = _EXIT_CODE.search(reason)
    if step is not None and short:
        reason = short.group(1)
    if not block:
        block = [_VERTEX.sub(r"\g<rest>", line) for line in lines if line.strip()]
    return BuildFailure(step, instruction, reason, block[-tail_lines:])


def build(
    context: Path,
    dockerfile: str,
    *,
    tags: Sequence[str] = (),
    target: str | None = None,
    labels: Mapping[str, str] | None = None,
    stream: Stream | None = None,
    timeout: float | None = 1800,
    no_cache: bool = False,
    cache_from: Sequence[str] = (),
    inline_cache: bool = False,
) -> str:
    """`docker build -f - <context>` with the Dockerfile text on stdin, BuildKit and host networking.

    `cache_from`: images in a registry whose inline cache the build may reuse; `inline_cache` writes the
    cache of this image's layers into it (docker 20.10 without buildx has no `--cache-to`).

    Returns the image id (sha256:...). Raises `BuildFailed` naming the failing instruction, with the tail
    of its output and BuildKit's reason; `EnvironmentMissing` when the engine does not answer.
    """
    if not context.is_dir():
        raise BuildFailed(f"build context {context} is not a directory")
    with tempfile.TemporaryDirectory(prefix="deployer-build-") as tmp:
        iidfile = Path(tmp) / "iid"
        args = ["build", "--network", "host", "--progress", "plain", "--iidfile", str(iidfile), "-f", "-"]
        for t in tags:
            args += ["--tag", t]
        if target:
            args += ["--target", target]
        for key, value in sorted((labels or {}).items()):
            args += ["--label", f"{key}={value}"]
        if no_cache:
            args.append("--no-cache")
        if inline_cache:
            args += ["--build-arg", "BUILDKIT_INLINE_CACHE=1"]
        for ref in cache_from:
            args += ["--cache-from", ref]
        args.append(str(context))
        output: list[str] = []  # all of it: the failing step's header may be far from the end

        def keep(line: str) -> None:
            output.append(line)
            if stream is not None:
                stream(line)

        try:
            _docker(args, input=dockerfile, stream=keep, timeout=timeout, merge_stderr=True)
        except ToolFailed as err:
            failure = parse_build_failure("\n".join(output))
            where = f" at [{failure.step}] {failure.instruction}" if failure.instruction else ""
            shown = "\n".join(f"  | {line}" for line in failure.tail)
            what = "timed out" if err.timed_out else "failed"
            error = BuildFailed(
                f"docker build {what}{where}: {failure.reason}\n{shown}".rstrip(),
                hint="fix the failing instruction's cause (its output is above); "
                "`blubber <config> <variant>` prints the Dockerfile",
                evidence=tuple(failure.tail),
            )
            raise error from err
        return iidfile.read_text().strip()


# --- images, tags, containers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """What `docker image inspect` says about an image."""

    id: str
    size: int  # bytes, uncompressed
    layers: tuple[str, ...]  # rootfs diff ids, base first
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    user: str
    entrypoint: tuple[str, ...]
    workdir: str
    env: tuple[str, ...]


def image(ref: str) -> Image:
    """Inspect a local image. Raises `ToolFailed` when it does not exist."""
    data = json.loads(_docker(["image", "inspect", "--format", "{{json .}}", ref], timeout=60).stdout)
    config = data.get("Config") or {}
    return Image(
        id=data["Id"],
        size=int(data.get("Size") or 0),
        layers=tuple((data.get("RootFS") or {}).get("Layers") or ()),
        repo_tags=tuple(data.get("RepoTags") or ()),
        repo_digests=tuple(data.get("RepoDigests") or ()),
        user=config.get("User") or "",
        entrypoint=tuple(config.get("Entrypoint") or ()),
        workdir=config.get("WorkingDir") or "",
        env=tuple(config.get("Env") or ()),
    )


def tag(source: str, target: str) -> None:
    """`docker tag source target`."""
    _docker(["tag", source, target], timeout=60)


def untag(refs: Sequence[str]) -> None:
    """Remove tags, keeping the images they point at when other tags or containers use them."""
    if refs:
        _docker(["image", "rm", "--no-prune", *refs], timeout=120, check=False)


def remove_images(refs: Sequence[str]) -> None:
    """Remove tags/images, ignoring ones that are already gone."""
    if refs:
        _docker(["image", "rm", "--force", *refs], timeout=120, check=False)


@dataclass(frozen=True)
class LocalImage:
    """An image in the engine: its id, when it was built (RFC 3339, UTC) and its tags (none: dangling)."""

    id: str
    created: str
    tags: tuple[str, ...]


def images(label: str) -> list[LocalImage]:
    """The engine's images carrying `label` (`key` or `key=value`), tagged or not, newest first."""
    listed = _docker(["image", "ls", "--quiet", "--no-trunc", "--filter", f"label={label}"], timeout=60)
    ids = sorted(set(listed.stdout.split()))
    if not ids:
        return []
    # One inspect for all: `image ls` rounds the creation time to seconds and repeats tagged images.
    shown = _docker(["image", "inspect", "--format", "{{json .}}", *ids], timeout=60, check=False).stdout
    found = []
    for line in shown.splitlines():
        if line.strip().startswith("{"):
            data = json.loads(line)
            found.append(LocalImage(data["Id"], data.get("Created") or "", tuple(data.get("RepoTags") or ())))
    return sorted(found, key=lambda i: i.created, reverse=True)


def remove_unused_images(ids: Sequence[str]) -> list[str]:
    """`docker image rm` each id without force: one a container still uses stays. Returns those removed."""
    removed = []
    for image_id in ids:
        if _docker(["image", "rm", image_id], timeout=120, check=False).exit_code == 0:
            removed.append(image_id)
    return removed


def prune_build_cache(keep_bytes: int) -> str:
    """Drop the least recently used build cache beyond `keep_bytes` (BuildKit's own garbage collection;
    a record a running build uses is kept). Returns what the engine says it reclaimed ("0B" for nothing)."""
    out = _docker(["builder", "prune", "--force", "--keep-storage", str(keep_bytes)], timeout=300).stdout
    total = re.search(r"Total:\s*(\S+)", out)
    return total.group(1) if total else "0B"


@dataclass(frozen=True)
class PushResult:
    """What `docker push` did: the manifest digest and how many layers it uploaded vs found in place."""

    reference: str
    digest: str
    pushed_layers: int
    existing_layers: int


_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")
# The client draws push progress with cursor movements even into a pipe; split on them and keep the
# last status each layer reached.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_LAYER_STATUS = re.compile(r"([0-9a-f]{12}): (Pushed|Layer already exists|Mounted from \S+)")


def parse_push_output(text: str) -> tuple[str | None, dict[str, str]]:
    """(digest, {layer id: final status}) from `docker push` output."""
    plain = _ANSI.sub("\n", text)
    layers = {m.group(1): m.group(2) for m in _LAYER_STATUS.finditer(plain)}
    digest = _DIGEST.search(plain)
    return (digest.group(1) if digest else None), layers


def push(reference: str, *, stream: Stream | None = None, timeout: float | None = 900) -> PushResult:
    """`docker push reference`; returns the digest the registry stored and the layer counts.

    `stream` gets one line per layer once its upload ended, then the digest line (not the progress
    redraws). Raises `ToolFailed`.
    """
    result = _docker(["push", reference], timeout=timeout, merge_stderr=True)
    digest, layers = parse_push_output(result.stdout)
    if stream is not None:
        for layer, status in layers.items():
            stream(f"{layer}: {status}")
    if not digest:
        raise ToolFailed("docker", result.argv, 0, f"docker push printed no digest:\n{result.stdout[-1000:]}")
    if stream is not None:
        stream(f"{reference}: digest {digest}")
    return PushResult(
        reference=reference,
        digest=digest,
        pushed_layers=sum(1 for status in layers.values() if status == "Pushed"),
        existing_layers=sum(1 for status in layers.values() if status != "Pushed"),
    )


@dataclass(frozen=True)
class ContainerRun:
    """A finished container run: exit status and the last lines of its output (stdout+stderr)."""

    name: str
    exit_code: int
    tail: list[str]


def run_container(
    image_ref: str,
    *,
    name: str,
    env: Mapping[str, str] | None = None,
    stream: Stream | None = None,
    timeout: float | None = 1800,
) -> ContainerRun:
    """Run the image's entrypoint to completion on the host network; the container is always removed.

    `--rm` removes it when docker run returns (the client waits for the removal); on a timeout, Ctrl-C or
    any error the container is removed by name before the exception propagates, so nothing is left running.
    """
    # No signal proxy: stopping the client (deadline, Ctrl-C) must not wait for a test process that ignores
    # SIGTERM (PID 1 without a handler does); the container is then removed with SIGKILL by name.
    args = ["run", "--rm", "--sig-proxy=false", "--name", name, "--network", "host"]
    for key, value in sorted((env or {}).items()):
        args += ["--env", f"{key}={value}"]
    args.append(image_ref)
    try:
        result = _docker(args, stream=stream, timeout=timeout, check=False, merge_stderr=True)
    except BaseException:
        remove_container(name)
        raise
    return ContainerRun(name=name, exit_code=result.exit_code, tail=result.tail)


def remove_container(name: str) -> None:
    """`docker rm --force name`, ignoring a container that is already gone."""
    with contextlib.suppress(EnvironmentMissing):  # the engine is gone, and its containers with it
        _docker(["rm", "--force", name], timeout=60, check=False)
