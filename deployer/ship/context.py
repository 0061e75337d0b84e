"""What every step of a ship shares: the config, the state, the tools made once per ship (the docker
session, helm, the Kubernetes API client), the background import of the Kubernetes client, and the
overall deadline (`--timeout`) as each tool sees it."""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from blubber.errors import UserError
from deployer import errors
from deployer.workflow import StepContext

if TYPE_CHECKING:  # for the field types only: importing these (kubernetes above all) costs start-up time
    from kubernetes.client import ApiClient

    from blubber import Config
    from deployer.background import Background, Chores, Relay
    from deployer.build import BuildResult, Session
    from deployer.chart import ImageRef, PublishedChart
    from deployer.deploy_config import DeployConfig
    from deployer.release.lock import ReleaseLock
    from deployer.service import Service
    from deployer.ship.cluster import LintedChart
    from deployer.target import Target
    from deployer.tools.git import Source
    from deployer.tools.helm import Helm, Release
    from deployer.tools.testpod import EarlyTestPods

STAGES = ("compile", "test", "build", "push", "chart", "deploy", "watch", "smoke")
TITLES = {
    "compile": "load blubber.yaml and deploy.yaml, apply policy",
    "test": "build and run the test variant",
    "build": "build the production image",
    "push": "push the image to the registry",
    "chart": "package and push the service chart (rendered and linted beside the tests)",
    "deploy": "helm upgrade --install",
    "watch": "watch the rollout",
    "smoke": "smoke checks",
}


@dataclass(frozen=True)
class ShipConfig:
    """Everything `ship` was asked to do, decided once from the command line (the steps never see click)."""

    service: str  # a directory with .pipeline/blubber.yaml, or a bundled example's name
    environment: str = "staging"
    kubeconfig: Path | None = None
    namespace: str | None = None
    release: str | None = None
    timeout: float = 600.0
    smoke: bool = True
    ci: bool = False
    strict_ci: bool = False
    color: bool = False
    report_path: Path | None = None
    junit_path: Path | None = None
    test_variant: str = "test"
    # the chart's test pods created during the watch and told to go after it (deployer.tools.testpod);
    # False: `helm test` after the watch, as before (bench/smoke.py times both)
    early_test_pods: bool = True
    target: Target | None = None  # resolved once by the CLI (deployer.target.resolve)

    @property
    def context(self) -> str | None:
        """The environment's kubeconfig context. Without a resolved target (configs built in code):
        `staging` is the local cluster's kubeconfig as it is, any other name a context in it."""
        if self.target is not None:
            return self.target.context
        return None if self.environment == "staging" else self.environment

    def where(self) -> Target:
        """The resolved target (the built-in local one when the config was built without it)."""
        if self.target is not None:
            return self.target
        from deployer.target import resolve

        return resolve(None, kubeconfig=self.kubeconfig)


@dataclass
class ShipState:
    """What the steps hand on to each other (filled in as the run goes)."""

    workdir: Path
    service: Service | None = None
    git_sha: str | None = None
    git_dirty: bool | None = None
    source: Source | None = None  # asked once, in compile; the builds use it too
    config: Config | None = None  # the service's blubber.yaml
    deploy: DeployConfig | None = None  # --namespace/--release applied
    variants: tuple[str, ...] = ()
    image: ImageRef | None = None  # the pushed production image
    built: BuildResult | None = None  # the production image, built
    docker: Session | None = None  # one engine check and one registry login per ship
    chart: PublishedChart | None = None
    helm: Helm | None = None
    api: ApiClient | None = None
    lock: ReleaseLock | None = None  # held from the deploy stage on
    # background work (see build_steps for when each starts)
    lock_early: Background[tuple[ReleaseLock, Release | None]] | None = None  # lock + release status
    production_build: tuple[Background[BuildResult], Relay] | None = None  # beside the test run
    cluster_check: Background[str | None] | None = None  # why the API server does not answer, if not
    access_check: Background[list[tuple[str, str, str]] | None] | None = None  # what RBAC refuses a ship
    preload: threading.Thread | None = None  # imports the Kubernetes client while docker works
    # work no stage waits for (cache pushes, engine clean-up): held until the image is pushed, joined at
    # the end of the ship (deployer.ship.chores)
    chores: Chores = field(default_factory=lambda: _held_chores())
    previous_revision: int | None = None
    revision: int | None = None
    generation: int | None = None  # the Deployment's metadata.generation right after helm applied it
    deploy_started: datetime | None = None
    test_pods: Background[EarlyTestPods | str] | None = None  # or why `helm test` runs instead
    chart_lint: Background[LintedChart] | None = None  # rendered with a stand-in image, beside the tests
    chart_archive: Path | None = None  # the pushed chart's .tgz (its registry layer's bytes), to install
    # each stage's (start, end) as time.monotonic() values, end math.inf while it runs (filled by run())
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    @property
    def namespace(self) -> str | None:
        return self.deploy.namespace if self.deploy is not None else None

    @property
    def release(self) -> str | None:
        return self.deploy.release if self.deploy is not None else None


Ctx = StepContext[ShipConfig, ShipState]


def _held_chores() -> Chores:
    from deployer.background import Chores

    chores = Chores()
    chores.hold()  # until the image push, the critical path has the engine and the network to itself
    return chores


# Importing the Kubernetes client costs about 1 s of CPU (0.4 s for the package, then each API class and
# model on first use, e.g. CoreV1Api 0.4 s), paid by every `deployer ship` process in the deploy stage.
# It is done in the background from the moment the test run starts (not earlier: during the two image
# builds the CPU is busy, and the import then slowed the test stage by 0.2-0.4 s, measured A/B), while
# the tests, build and push mostly wait for docker. The cluster steps wait for it (`cluster_modules`)
# before importing anything themselves, so no module is ever imported by two threads at once.
_CLUSTER_MODULES = ("deployer.tools.kube", "deployer.release.lock", "deployer.rollout.watcher")
# what the deploy and watch steps use of kubernetes.client (it imports each name on first access)
_CLUSTER_NAMES = ("CoreV1Api", "AppsV1Api", "CoordinationV1Api", "V1Lease", "V1LeaseSpec", "V1ObjectMeta")


def preload_cluster_modules(state: ShipState) -> None:
    """Start importing the Kubernetes client and the cluster modules in the background (once per ship)."""
    if state.preload is not None:
        return

    def load() -> None:
        try:
            for module in _CLUSTER_MODULES:
                importlib.import_module(module)
            kube_client = importlib.import_module("kubernetes.client")
            for name in _CLUSTER_NAMES:
                getattr(kube_client, name)
        except Exception:  # noqa: BLE001 - the step that needs it imports it again and reports it
            return

    state.preload = threading.Thread(target=load, name="deployer-preload-kubernetes", daemon=True)
    state.preload.start()


def cluster_modules(state: ShipState) -> None:
    """Wait for the background import of the Kubernetes client (if one was started)."""
    if state.preload is not None:
        state.preload.join()


# --- the overall deadline, as each tool sees it -------------------------------------------------------


@contextmanager
def overall_deadline(ctx: Ctx, doing: str) -> Iterator[None]:
    """A tool stopped because the ship's own deadline (--timeout) came is the ship's timeout (exit 18,
    saying which --timeout ran out and during what), not a failure of that tool."""
    try:
        yield
    except UserError as e:
        if ctx.deadline is None or time.monotonic() < ctx.deadline or isinstance(e, errors.Timeout):
            raise
        # the tool's own one-line account, without the output tail that `evidence` carries
        first = (e.message.splitlines() or [type(e).__name__])[0].split("; last ")[0]
        ours = e if isinstance(e, errors.DeployerError) else None
        raise errors.Timeout(
            f"the ship's --timeout of {ctx.config.timeout:.0f}s ran out during {doing} ({first})",
            hint="raise it with --timeout, or look at what was still running in the output above",
            evidence=ours.evidence if ours else (),
            details=ours.details if ours else None,
        ) from e


def time_left(ctx: Ctx, timeout: float) -> float:
    """`timeout`, or the seconds left before the ship's deadline if fewer (never quite zero: a tool
    started with no time left times out at once)."""
    if ctx.deadline is None:
        return timeout
    return max(min(timeout, ctx.deadline - time.monotonic()), 0.001)


def seconds_left(ctx: Ctx, timeout: float) -> int:
    """A helm --timeout: `timeout`, or the whole seconds left before the ship's deadline if fewer."""
    left = ctx.deadline - time.monotonic() if ctx.deadline is not None else timeout
    return max(1, int(min(float(timeout), left)))


# --- tools made once per ship -------------------------------------------------------------------------


def registry_host(config: ShipConfig) -> str:
    return config.where().registry.host


def docker_session(state: ShipState) -> Session:
    """The docker session test, build and push share: the engine is checked and docker logged in to the
    registry once per ship, not once per build or push."""
    if state.docker is None:
        from deployer import build

        state.docker = build.Session()
    return state.docker


def make_helm(config: ShipConfig, deploy: DeployConfig) -> Helm:
    """The helm every cluster step uses; made once per ship, when the release lock is started (the lint
    beside the tests makes its own)."""
    from deployer.tools import apiserver, docker
    from deployer.tools.helm import Helm

    return Helm(
        # The same kubeconfig deployer.tools.kube.load_api picks, so helm and the watcher see one cluster.
        kubeconfig=apiserver.kubeconfig_path(config.kubeconfig),
        context=config.context,
        # docker's own config (the same format): the ship's docker login is helm's too, so no
        # `helm registry login` per ship
        registry_config=docker.DOCKER_CONFIG / "config.json",
        timeout=int(deploy.timeouts.helm),
    )


def make_api(config: ShipConfig, state: ShipState) -> ApiClient:
    """The Kubernetes API client every cluster step uses; made once per ship, by the release lock's
    background work (the first to need it), after the background import of the client."""
    cluster_modules(state)
    from deployer.tools.kube import load_api

    return load_api(config.kubeconfig, config.context)
