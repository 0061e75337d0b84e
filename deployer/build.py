"""`deployer build | test | push`: compile a service's Blubber config and drive docker with it.

    build(service, config, variant) → compile → docker build (context: the service directory),
                                      tagged deployer/<service>:<variant> → BuildResult, which also
                                      names the push tags: <UTC timestamp>-<variant>, git-<sha>
    test(service, config)           → build the `test` variant → run its entrypoint, output streamed
    push(built)                     → tag and push into <registry>/<namespace>/<service> → PushResult
                                      (the digest)
    push_service(service, ci=...)   → refuse a dirty tree in CI → build `production` → push
                                      (what `deployer push` runs; `deployer ship` runs the steps itself)

`config` is a loaded blubber Config or None (then it is loaded with the default policy), so the ship
workflow loads and compiles once and the commands stay one-liners.

Each function returns a result value and raises a `UserError` subclass for what the user can fix:
`ConfigError`/`PolicyViolation` (from blubber), `BuildFailed`, `TestVariantFailed`, `PushFailed`,
`EnvironmentMissing` (docker or the registry not running). Containers started for a test run are
removed on every path, Ctrl-C included (see `deployer.tools.docker.run_container`).

Never prints: output lines go to the `progress` callback the caller passes.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import blubber
from deployer import buildcache, policies, retention
from deployer.background import Background
from deployer.committed import require_committed
from deployer.errors import BuildFailed, ConfigError, PushFailed, TestVariantFailed
from deployer.service import Service, resolve
from deployer.target import builtin_registry
from deployer.tools import docker, git, registry
from deployer.tools.command import ToolFailed

__all__ = [
    "LOCAL_REPOSITORY",
    "NAMESPACE",
    "BuildResult",
    "PushResult",
    "Session",
    "TestResult",
    "build",
    "local_image",
    "push",
    "push_service",
    "push_tags",
    "test",
]

LOCAL_REPOSITORY = "deployer"
"""Local (never pushed) images are tagged deployer/<service>:<variant>."""

NAMESPACE = os.environ.get("DEPLOYER_NAMESPACE", "staging")
"""Registry namespace pushes go to: <registry>/<namespace>/<service>."""

TEST_VARIANT = "test"
PRODUCTION_VARIANT = "production"
TAIL_LINES = 20
BUILD_TIMEOUT = 1800.0  # seconds; a build or push with no deadline of its caller's still ends
PUSH_TIMEOUT = 900.0

Progress = Callable[[str], None]
ServiceSpec = str | os.PathLike[str] | Service
Policy = str | os.PathLike[str] | None


def _service(spec: ServiceSpec) -> Service:
    return spec if isinstance(spec, Service) else resolve(spec)


def _config(svc: Service, config: blubber.Config | None, policy: Policy) -> blubber.Config:
    return config if config is not None else blubber.load(svc.config, policy=policy)


def local_image(service: Service, variant: str) -> str:
    """The local tag of a service's variant image, e.g. deployer/node-hello:test (never pushed)."""
    return f"{LOCAL_REPOSITORY}/{service.name}:{variant}"


def push_tags(variant: str, source: git.Source, now: dt.datetime | None = None) -> tuple[str, ...]:
    """`<UTC timestamp>-<variant>` and, in a git work tree, `git-<sha12>` (`-dirty` when the service
    directory has uncommitted changes, so a tag never claims a commit the image does not match)."""
    stamp = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    tags = [f"{stamp}-{variant}"]
    if source.sha:
        tags.append(f"git-{source.sha[:12]}" + ("-dirty" if source.is_dirty else ""))
    return tuple(tags)


@dataclass
class Session:
    """The engine check and registry logins that builds and pushes need first, each done once.

    `build`, `test` and `push` make a fresh one when given none (so each checks and logs in itself); a
    caller that runs several of them (`deployer ship`: test, build, push) passes one `Session`, so one
    ship asks the engine once and logs docker in to the registry once.
    """

    pinged: bool = False
    logins: dict[str, registry.Credentials] = field(default_factory=dict)
    _early: Background[None] | None = field(default=None, repr=False)
    # builds may run side by side (`deployer ship` builds production during the test run): one check
    # and one login at a time, the second caller finds them done
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self, host: str) -> None:
        """Check the engine and log in to `host` in the background now (while the caller compiles the
        config); `ping` and `login` wait for it, and raise its error at the point of use."""
        if self._early is None:

            def prepare() -> None:
                self._ping()
                self._login(host)

            self._early = Background(prepare, name="docker-session")

    def ping(self) -> None:
        """`docker.ping()` the first time; raises `EnvironmentMissing` when the engine does not answer."""
        with self._lock:
            self._settle()
            self._ping()

    def login(self, host: str) -> registry.Credentials:
        """`registry.login(host)` the first time for `host`; the credentials used."""
        with self._lock:
            self._settle()
            return self._login(host)

    def _settle(self) -> None:
        early, self._early = self._early, None
        if early is not None:
            early.result()

    def _ping(self) -> None:
        if not self.pinged:
            docker.ping()
            self.pinged = True

    def _login(self, host: str) -> registry.Credentials:
        if host not in self.logins:
            self.logins[host] = registry.login(host)
        return self.logins[host]


@dataclass(frozen=True)
class BuildResult:
    """A built variant image: its id, size, local tag and the registry tags `push` will push."""

    service: str
    variant: str
    image_id: str
    size: int | None  # bytes, uncompressed (None: not inspected, e.g. a test image)
    tag: str  # local tag, e.g. deployer/node-hello:production
    layers: int | None
    repository: str  # <registry>/<namespace>/<service>
    tags: tuple[str, ...]  # tags in `repository`, e.g. ("20261127T063513Z-production", "git-37e2a24e616a")
    git_sha: str | None = None
    duration: float = 0.0
    # what `push` (production) or `test(push_cache=True)` pushes as the registry build cache
    cache_images: tuple[buildcache.CacheImage, ...] = ()
    push_tagged: bool = False  # the build tagged `references` already (`build(push_tagged=True)`)

    @property
    def size_mb(self) -> float | None:
        return None if self.size is None else self.size / 1e6

    @property
    def references(self) -> tuple[str, ...]:
        return tuple(f"{self.repository}:{t}" for t in self.tags)


def build(
    service: ServiceSpec,
    config: blubber.Config | None = None,
    variant: str = PRODUCTION_VARIANT,
    *,
    source: git.Source | None = None,
    progress: Progress | None = None,
    policy: Policy = policies.BLUBBER,
    namespace: str = NAMESPACE,
    registry_host: str | None = None,
    no_cache: bool = False,
    now: dt.datetime | None = None,
    session: Session | None = None,
    inspect: bool = True,
    deadline: float | None = None,
    cache: bool = True,
    push_tagged: bool = False,
) -> BuildResult:
    """Compile `variant` of the service's config and build it (BuildKit, host network).

    The Dockerfile goes to docker on stdin; the build context is the service directory. The registry
    login comes first because base images are pulled from the authenticated local registry. The image
    is tagged locally only (`local_image`); its push tags (`push_tags`) in `<registry>/<namespace>/<service>`
    are decided here and applied by `push`. `source` is what git says about the service
    directory, when the caller has already asked (else git is asked here);
    a `session` shared with other builds and pushes checks the engine and logs in only once. `inspect=False`
    skips `docker image inspect` (size and layers are then None): a test image is run, never reported.
    `deadline` (a `time.monotonic()` value) stops the build when it is reached, as its own timeout would.
    `cache` (unless `no_cache`): import the registry build cache of the variant and make the images that
    export it (`deployer.buildcache`; pushed by `push`, or by `test` after the tests passed).
    `push_tagged`: the build also tags the image with its push references, so `push` starts no `docker
    tag` (the caller removes those local tags if it never pushes).
    Build output lines go to `progress`. Raises ConfigError/PolicyViolation (blubber), `BuildFailed`
    (the failing instruction and its output tail), `EnvironmentMissing` (docker/registry not running).
    """
    started = time.monotonic()
    svc = _service(service)
    cfg = _config(svc, config, policy)
    dockerfile = blubber.compile_dockerfile(cfg, variant)
    source = source or git.source(svc.directory)
    host = registry_host or builtin_registry().host  # no target given: the local stack
    repository = f"{host}/{namespace}/{svc.name}"
    tags = push_tags(variant, source, now)
    session = session or Session()
    session.ping()
    creds = session.login(host)
    cache = cache and not no_cache
    cache_refs = buildcache.refs(repository, variant, dockerfile) if cache else []
    cache_from = buildcache.present(cache_refs, creds=creds)
    if cache and progress is not None:
        found = ", ".join(cache_from) or f"none yet in {buildcache.repository(repository)}"
        progress(f"build cache: {found}")
    output: list[str] = []  # BuildKit's: which steps ran, which came from a cache (buildcache)

    def keep(line: str) -> None:
        output.append(line)
        if progress is not None:
            progress(line)

    try:
        image_id = docker.build(
            svc.directory,
            dockerfile,
            tags=[local_image(svc, variant), *(f"{repository}:{t}" for t in tags if push_tagged)],
            # the service label lets `retention.tidy` find this build's image once a rebuild untags it
            labels={retention.SERVICE_LABEL: svc.name}
            | ({"org.opencontainers.image.revision": source.sha} if source.sha else {}),
            stream=keep,
            no_cache=no_cache,
            timeout=_within(BUILD_TIMEOUT, deadline),
            cache_from=cache_from,
            inline_cache=cache,
        )
        cache_images: tuple[buildcache.CacheImage, ...] = ()
        if cache:
            stages = buildcache.build_stages(
                svc.directory,
                dockerfile,
                cache_refs[1:],
                cache_from=cache_from,
                local_tag=lambda stage: local_image(svc, f"{variant}.{stage}"),
                stream=progress,
                timeout=_within(BUILD_TIMEOUT, deadline),
                output=output,
            )
            served = buildcache.served_from_cache(output, buildcache.final_stage(dockerfile))
            cache_images = (buildcache.CacheImage(cache_refs[0], image_id, served), *stages)
    except BuildFailed as err:
        err.next_command = f"deployer build {svc.directory} --variant {variant}"
        raise
    info = docker.image(image_id) if inspect else None
    return BuildResult(
        service=svc.name,
        variant=variant,
        image_id=image_id,
        size=info.size if info else None,
        tag=local_image(svc, variant),
        layers=len(info.layers) if info else None,
        repository=repository,
        tags=tags,
        git_sha=source.sha,
        duration=time.monotonic() - started,
        cache_images=cache_images,
        push_tagged=push_tagged,
    )


@dataclass(frozen=True)
class TestResult:
    """A test-variant run that passed (a failed one raises `TestVariantFailed`)."""

    __test__ = False  # not a pytest test class

    service: str
    variant: str
    image: str  # local tag of the test image
    image_id: str
    exit_code: int
    duration: float  # seconds, build and run
    tail: list[str] = field(default_factory=list)
    # the variant's registry build cache, for a caller that pushes it itself (`deployer ship`, off its
    # critical path); empty when `push_cache` pushed it already
    cache_images: tuple[buildcache.CacheImage, ...] = ()


def test(
    service: ServiceSpec,
    config: blubber.Config | None = None,
    variant: str = TEST_VARIANT,
    *,
    progress: Progress | None = None,
    policy: Policy = policies.BLUBBER,
    timeout: float | None = 1800,
    build_progress: Progress | None | bool = True,
    session: Session | None = None,
    source: git.Source | None = None,
    deadline: float | None = None,
    push_cache: bool = False,
) -> TestResult:
    """Build the test variant and run its entrypoint on the host network, streaming its output.

    The test run's output goes to `progress`; the build's output too, unless `build_progress` is
    another callback or None (quiet build). `session`, `source`: see `build`. `deadline` (a
    `time.monotonic()` value) bounds the build and the run together; `timeout` bounds the run alone.
    `push_cache`: once the tests passed (never before), push the variant's registry build cache; without
    it the result carries the cache images (`cache_images`) for the caller to push when it suits it.

    Raises `ConfigError` before building when the variant has no entrypoint, and `TestVariantFailed`
    (exit 12) when the entrypoint exits non-zero (or runs past `timeout`): the message has the exit
    status and the last lines, `hint`/`next_command` a one-line command that reproduces the run, and
    `details["tests"]` the same facts for reports. The container is removed in every case, Ctrl-C
    included.
    """
    started = time.monotonic()
    svc = _service(service)
    cfg = _config(svc, config, policy)
    runtime = blubber.runtime(cfg, variant)
    if not runtime.entrypoint:
        raise ConfigError(
            f"the {variant} variant has no entrypoint, so there is nothing to run",
            file=str(svc.config),
            path=f"variants.{variant}.entrypoint",
            hint="add the command that runs the tests, e.g. `entrypoint: [npm, test]`",
        )
    built = build(
        svc,
        cfg,
        variant,
        progress=progress if build_progress is True else build_progress or None,
        policy=policy,
        session=session,
        source=source,
        inspect=False,
        deadline=deadline,
    )
    name = f"deployer-test-{svc.name}-{secrets.token_hex(4)}"
    repro = shlex.join([docker.DOCKER_BIN, "run", "--rm", "--network", "host", built.tag])
    run_timeout = _within(timeout, deadline)
    try:
        run = docker.run_container(built.image_id, name=name, stream=progress, timeout=run_timeout)
        exit_code, tail = run.exit_code, run.tail[-TAIL_LINES:]
    except ToolFailed as err:
        if not err.timed_out:
            raise
        exit_code = None
        tail = (err.stdout_tail or err.stderr_tail).splitlines()[-TAIL_LINES:]
    duration = time.monotonic() - started
    if exit_code == 0:
        if push_cache:
            buildcache.push(built.cache_images, progress=progress, timeout=_within(PUSH_TIMEOUT, deadline))
            duration = time.monotonic() - started
        cache = () if push_cache else built.cache_images
        return TestResult(svc.name, variant, built.tag, built.image_id, 0, duration, tail, cache)

    command_text = shlex.join(runtime.entrypoint)
    what = f"exited with status {exit_code}" if exit_code is not None else f"ran past {run_timeout:.0f} s"
    shown = "\n".join(f"  | {line}" for line in tail)
    error = TestVariantFailed(
        f"the {variant} variant of {svc.name} failed: `{command_text}` {what}; "
        f"last {len(tail)} lines of its output:\n{shown}",
        hint=f"reproduce locally: {repro}",
        exit_status=exit_code,
        evidence=tuple(tail),
        next_command=repro,
        details={
            "tests": {
                "variant": variant,
                "image": built.tag,
                "passed": False,
                "exit_code": exit_code,
                "duration_seconds": round(duration, 3),
                "output_tail": list(tail),
            }
        },
    )
    raise error


test.__test__ = False  # type: ignore[attr-defined]  # a function named `test`, not a pytest test


@dataclass(frozen=True)
class PushResult:
    """An image in the registry, addressed by digest (deploy by `reference`)."""

    service: str
    repository: str  # <registry>/<namespace>/<service>
    tags: tuple[str, ...]
    digest: str
    image: BuildResult
    pushed_layers: int  # layers uploaded by the first tag's push
    existing_layers: int  # layers the registry already had

    @property
    def reference(self) -> str:
        """`<repository>@<digest>`: what deploys use, immune to tags moving."""
        return f"{self.repository}@{self.digest}"


def push(
    built: BuildResult,
    *,
    progress: Progress | None = None,
    session: Session | None = None,
    deadline: float | None = None,
    push_cache: bool = True,
    untag: bool = True,
) -> PushResult:
    """Push every tag of `built` and return the digest the registry stored.

    A registry that does not answer the login is `EnvironmentMissing`; one that stops answering during
    the push is retried by `registry.PUSH_RETRY` (each retry shown on `progress`: attempt, next try in
    N s) and past that bound is `PushFailed` (exit 14), as is a refused push. No tag in the registry
    points at a partial image (the manifest is the last thing a push writes). The registry-named local
    tags exist only while pushing, so repeated builds do not pile up tags in the engine. A `session` that has
    already logged in to the registry (the build's) is not logged in again. `deadline`: see `build`.
    `push_cache`: then push the build cache (`built.cache_images`); a caller that pushes it itself, off its
    critical path (`deployer ship`), says False. `untag=False` leaves the registry-named local tags of a
    successful push for the caller to remove (off its critical path); a failed push removes them anyway.
    """
    host = built.repository.split("/", 1)[0]
    with _refused_push():
        creds = (session or Session()).login(host)
    results: list[docker.PushResult] = []
    retry = registry.PUSH_RETRY

    def announce(attempt: int, delay: float, err: Exception) -> None:
        if progress is not None and isinstance(err, ToolFailed):
            said = _last_line(err.stderr_tail or err.stdout_tail)
            progress(
                f"push to {host}: the registry does not answer ({said}); "
                f"attempt {attempt}/{retry.attempts} failed, next try in {delay:g} s"
            )

    pushed = False
    try:
        for reference in built.references:
            if not built.push_tagged:
                docker.tag(built.image_id, reference)
            results.append(
                retry.call(
                    lambda ref=reference: docker.push(
                        ref, stream=progress, timeout=_within(PUSH_TIMEOUT, deadline)
                    ),
                    lambda err: isinstance(err, ToolFailed) and _registry_unreachable(err),
                    on_retry=announce,
                )
            )
    except ToolFailed as err:
        text = f"{err.stderr_tail}\n{err.stdout_tail}"
        if _registry_unreachable(err):
            # Logged in a moment ago, so the registry was there: it went away during the push.
            raise PushFailed(
                f"push to {host} failed: the registry did not answer in {retry.attempts} attempts over "
                f"{retry.bound():g} s of retries ({_last_line(text)}); nothing was deployed",
                hint=registry.START_HINT,
            ) from err
        if "unauthorized" in text.lower() or "authentication required" in text.lower():
            raise PushFailed(
                f"the registry at {host} refused the push of {built.repository} (unauthorized; "
                f"credentials from {creds.source})",
                hint=f"check the credentials in {creds.source}",
            ) from err
        raise PushFailed(f"push of {built.repository} failed: {_last_line(text)}") from err
    else:
        pushed = True
    finally:
        if untag or not pushed:
            docker.untag(list(built.references))

    digest = results[0].digest
    repo_path = built.repository.split("/", 1)[1]
    stored = registry.digest(repo_path, built.tags[0], registry=host, creds=creds)
    if stored != digest:
        raise PushFailed(f"the registry has {stored} for {built.references[0]}, docker pushed {digest}")
    if push_cache:
        buildcache.push(built.cache_images, progress=progress, timeout=_within(PUSH_TIMEOUT, deadline))
    return PushResult(
        service=built.service,
        repository=built.repository,
        tags=built.tags,
        digest=digest,
        image=built,
        pushed_layers=results[0].pushed_layers,
        existing_layers=results[0].existing_layers,
    )


def push_service(
    service: ServiceSpec,
    *,
    ci: bool = False,
    namespace: str = NAMESPACE,
    registry_host: str | None = None,
    progress: Progress | None = None,
    policy: Policy = policies.BLUBBER,
    now: dt.datetime | None = None,
) -> PushResult:
    """`deployer push`: build `production`, tag it `<UTC timestamp>-production` and `git-<sha>`, push to
    `<registry>/<namespace>/<service>`, and return the digest.

    With `ci=True` a service directory outside git is refused before anything is built (`PushFailed`,
    exit 14), and one with uncommitted changes too, by the rule `ship --ci` follows
    (`deployer.committed`: `UncommittedChanges`, exit 11).
    """
    svc = _service(service)
    if ci:
        source = git.source(svc.directory)
        if not source.is_repo:
            raise PushFailed(
                f"{svc.directory} is not in a git work tree; --ci pushes only committed source",
                hint="push from a clone of the service's repository",
            )
        require_committed(source, svc.directory, doing="push")
    with _refused_push():
        built = build(
            svc,
            None,
            PRODUCTION_VARIANT,
            progress=progress,
            policy=policy,
            namespace=namespace,
            registry_host=registry_host,
            now=now,
        )
    return push(built, progress=progress)


@contextmanager
def _refused_push() -> Iterator[None]:
    """A registry that refuses the credentials (401/403: `RegistryAuthFailed`, exit 19 elsewhere) fails a
    push as a push (exit 14), with the same message: it names the credentials source, never a value."""
    try:
        yield
    except registry.RegistryAuthFailed as err:
        raise PushFailed(err.message, hint=err.hint) from err


def _within(timeout: float | None, deadline: float | None) -> float | None:
    """`timeout`, or less when `deadline` (a `time.monotonic()` value) comes sooner (at least 1 ms: a
    tool is never started with no time at all, it times out at once instead)."""
    if deadline is None:
        return timeout
    left = max(deadline - time.monotonic(), 0.001)
    return left if timeout is None else min(timeout, left)


def _registry_unreachable(err: ToolFailed) -> bool:
    text = f"{err.stderr_tail}\n{err.stdout_tail}".lower()
    return "connection refused" in text or "no route to host" in text or "i/o timeout" in text


def _last_line(text: str) -> str:
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "no output")
