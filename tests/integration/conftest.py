"""Fixtures for integration tests against the real build stack (scripts/stack up).

`stack` fails the test in CI (skips locally) unless the Docker engine and the registry answer; tests that
use it are marked `docker` and/or `registry`. `service_copy` gives a test its own copy of an example to
break. After the session, no test container may be left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import require

DOCKER = "/usr/bin/docker"
REGISTRY = os.environ.get("DEPLOYER_REGISTRY", "127.0.0.1:5000")
CREDENTIALS = Path(
    os.environ.get("DEPLOYER_REGISTRY_CREDENTIALS", "/var/lib/deployer/registry/credentials.env")
)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOW_TO_START = "scripts/stack up (or make stack)"


def docker_answers() -> bool:
    if not os.access(DOCKER, os.X_OK):
        return False
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    probe = subprocess.run(
        [DOCKER, "version", "--format", "{{.Server.Version}}"], capture_output=True, env=env
    )
    return probe.returncode == 0


def registry_answers() -> bool:
    try:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"http://{REGISTRY}/v2/", timeout=5)
    except urllib.error.HTTPError as err:
        return err.code == 401 and os.access(CREDENTIALS, os.R_OK)
    except OSError:
        return False
    return os.access(CREDENTIALS, os.R_OK)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine and the registry are up (fail in CI / skip locally otherwise); DOCKER_HOST unset."""
    require("the Docker engine", docker_answers(), HOW_TO_START)
    require("the registry", registry_answers(), HOW_TO_START)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DEPLOYER_REGISTRY_USER", raising=False)
    monkeypatch.delenv("DEPLOYER_REGISTRY_PASSWORD", raising=False)


# Container name prefixes of the services this session's tests built: the end-of-session check looks at
# these only, so another run sharing the engine (another checkout's tests) cannot make it flaky.
_SESSION_PREFIXES: set[str] = set()


@pytest.fixture
def service_copy(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """`service_copy("node-hello")` → a fresh copy of the example (without node_modules) named uniquely.

    The local images built from the copies (deployer/<copy>:<variant>) are removed afterwards, so test
    runs do not pile up images in the engine; layers shared with the examples stay cached.
    """
    names: list[str] = []

    def copy(example: str) -> Path:
        target = tmp_path / f"{example}-{uuid.uuid4().hex[:8]}"
        names.append(target.name)
        _SESSION_PREFIXES.add(f"deployer-test-{target.name}-")
        shutil.copytree(
            EXAMPLES / example, target, ignore=shutil.ignore_patterns("node_modules", "__pycache__")
        )
        return target

    yield copy
    if names and docker_answers():
        refs = [f"deployer/{name}:{variant}" for name in names for variant in ("test", "production")]
        subprocess.run([DOCKER, "image", "rm", "--force", *refs], capture_output=True)


def containers(name_prefix: str) -> list[str]:
    """Names of containers (running or not) whose name starts with `name_prefix`."""
    out = subprocess.run(
        [DOCKER, "ps", "-a", "--filter", f"name=^{name_prefix}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
    )
    return [line for line in out.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="session", autouse=True)
def no_test_containers_left() -> Iterator[None]:
    """Nothing a test started may outlive the session (checked only when the engine answers)."""
    yield
    if docker_answers():
        left = sorted(name for prefix in _SESSION_PREFIXES for name in containers(prefix))
        assert not left, f"test containers left behind: {left}"
