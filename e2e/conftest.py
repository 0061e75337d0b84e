"""Fixtures for e2e tests: the Kubernetes cluster (reused or brought up) and the build stack's registry.

The cluster comes from the provider e2e/cluster would use (DEPLOYER_CLUSTER_PROVIDER: local, kind or
existing), so the same tests run on each; `make test` runs the ship scenarios a second time on kind.
A test that only makes sense on some providers says so with `@pytest.mark.provider("kind", ...)` and
is deselected (not skipped) on the others. Missing parts fail in CI and skip locally
(tests.conftest.require).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e.localcluster import kind, layout
from e2e.localcluster.__main__ import provider_name
from e2e.localcluster.configs import registry_credentials
from tests.conftest import require

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "e2e" / "cluster"
DOCKER = "/usr/bin/docker"  # Debian's client: BuildKit builds without buildx


def _run(*argv: str | Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "provider(*names): runs only on these cluster providers; deselected on the others"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    current = provider_name()
    keep, drop = [], []
    for item in items:
        marks = list(item.iter_markers("provider"))
        (keep if all(current in m.args for m in marks) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def cluster_provider() -> str:
    """The provider of the cluster under test."""
    return provider_name()


@pytest.fixture(scope="session")
def cluster_kubeconfig(cluster_provider: str) -> Path:
    """Kubeconfig of a running cluster: DEPLOYER_KUBECONFIG, else the provider's (started if needed)."""
    if cluster_provider == "existing":
        return Path(os.environ["DEPLOYER_KUBECONFIG"])
    require("cluster (root)", os.geteuid() == 0, "run the e2e tests as root")
    tools = _run(REPO / "e2e" / "tools.sh", "--check")
    require("cluster tools", tools.returncode == 0, f"e2e/tools.sh\n{tools.stdout}")
    if _run(CLUSTER, "--provider", cluster_provider, "status").returncode != 0:
        up = _run(CLUSTER, "--provider", cluster_provider, "up")
        if up.returncode != 0:
            pytest.fail(
                f"e2e/cluster --provider {cluster_provider} up failed:\n{up.stderr[-4000:]}", pytrace=False
            )
    return kind.kubeconfig() if cluster_provider == "kind" else layout.KUBECONFIG


@pytest.fixture(scope="session")
def kube(cluster_kubeconfig: Path):
    """A `kubernetes` ApiClient for the cluster."""
    from kubernetes import config

    return config.new_client_from_config(config_file=str(cluster_kubeconfig))


def _registry_answers() -> bool:
    try:
        with urllib.request.urlopen(f"http://{layout.REGISTRY}/v2/", timeout=3):
            return True
    except urllib.error.HTTPError as e:
        return e.code == 401  # up, and asks for the htpasswd credentials
    except OSError:
        return False


@dataclass(frozen=True)
class Registry:
    """The build stack's registry, and a Docker client config logged in to it."""

    host: str
    docker_config: Path

    def docker(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DOCKER_CONFIG": str(self.docker_config), "DOCKER_BUILDKIT": "1"}
        return subprocess.run([DOCKER, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=900)


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    require("registry", _registry_answers(), "scripts/stack up")
    creds = registry_credentials()
    require("registry credentials", creds is not None, "scripts/stack up")
    docker_ok = shutil.which(DOCKER) is not None and _run(DOCKER, "info", timeout=30).returncode == 0
    require("docker", docker_ok, "scripts/stack up")
    with tempfile.TemporaryDirectory(prefix="e2e-docker-") as tmp:
        reg = Registry(layout.REGISTRY, Path(tmp))
        env = {**os.environ, "DOCKER_CONFIG": tmp}
        login = subprocess.run(
            [DOCKER, "login", reg.host, "-u", creds[0], "--password-stdin"],
            input=creds[1],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert login.returncode == 0, f"docker login {reg.host} failed: {login.stderr}"
        yield reg
