"""deployer as a new user installs it: a wheel built from this checkout (`pip wheel .`, not editable),
installed with its dependencies into a clean virtualenv, used from a service directory outside the
checkout with the repository's own virtualenv off PATH.

The wheel must carry everything the code reads at run time: the ops policies and the base chart (the
top-level policies/ and charts/ folders, installed as deployer.policies and deployer.charts) and every
JSON Schema. `make wheel-check` runs this module; `make test` runs it before the rest of the suite.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from e2e.conftest import REPO, Registry
from e2e.shipping import ServiceCopy, service_copy

pytestmark = [pytest.mark.slow]


def _run(argv: list[str | Path], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=900, **kwargs)


def _tracked(*patterns: str) -> list[str]:
    done = _run(["git", "-C", REPO, "ls-files", "--", *patterns])
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _in_wheel(path: str) -> str:
    """Where a repository file lands in the wheel (policies/ and charts/ move under deployer/)."""
    top = path.split("/", 1)[0]
    return f"deployer/{path}" if top in ("policies", "charts") else path


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy of the checkout's files: an in-tree build would write build/ into the work tree.
    source = tmp_path_factory.mktemp("source")
    listed = _run(["git", "-C", REPO, "ls-files", "--cached", "--others", "--exclude-standard"])
    assert listed.returncode == 0, listed.stderr
    for name in listed.stdout.split():
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, source])
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (path,) = out.glob("deployer-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh virtualenv with the wheel (and its dependencies from the package index) installed."""
    root = tmp_path_factory.mktemp("venv")
    made = _run([sys.executable, "-m", "venv", root])
    assert made.returncode == 0, made.stderr
    installed = _run([root / "bin" / "pip", "install", "-q", "--disable-pip-version-check", wheel])
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return root / "bin"


def _user_env(venv: Path) -> dict[str, str]:
    """The environment of a user who only has the installed tools: no repository venv, no PYTHONPATH."""
    repo_bins = {str(REPO / ".venv" / "bin"), str(Path(sys.executable).parent)}
    path = [str(venv), *(p for p in os.environ.get("PATH", "").split(os.pathsep) if p not in repo_bins)]
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "PATH": os.pathsep.join(path)}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A copy of node-hello in a directory that is not inside the checkout."""
    root = tmp_path / "node-hello"
    shutil.copytree(REPO / "examples" / "node-hello", root, ignore=shutil.ignore_patterns("node_modules"))
    assert REPO not in root.resolve().parents
    return root


def test_wheel_holds_policies_chart_and_every_schema(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    data = _tracked("policies/*.yaml", "charts/*", "*.schema.json")
    assert "policies/default.yaml" in data and "charts/service/Chart.yaml" in data
    assert len([d for d in data if d.endswith(".schema.json")]) >= 5
    missing = sorted(_in_wheel(d) for d in data if _in_wheel(d) not in names)
    assert missing == [], f"not in {wheel.name}: {missing}"
    assert not [n for n in names if n.split("/", 1)[0] in ("policies", "charts")], "top-level data package"


def test_installed_code_and_data_come_from_the_venv(venv: Path, outside: Path) -> None:
    probe = (
        "import blubber, deployer.chart, deployer.deploy_config, deployer.policies;"
        "print(deployer.policies.BLUBBER); print(deployer.chart.BASE_CHART);"
        "print(deployer.deploy_config.DEFAULT_POLICY_FILE); print(blubber.__file__)"
    )
    done = _run([venv / "python", "-c", probe], cwd=outside, env=_user_env(venv))
    assert done.returncode == 0, done.stderr
    paths = [Path(line) for line in done.stdout.split()]
    site = venv.parent / "lib"
    for path in paths:
        assert site in path.parents and path.exists(), path


def test_blubber_compiles_outside_the_checkout(venv: Path, outside: Path) -> None:
    env = _user_env(venv)
    plain = _run(["blubber", ".pipeline/blubber.yaml", "production"], cwd=outside, env=env)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith("FROM ") and "ENTRYPOINT" in plain.stdout
    probe = "import deployer.policies; print(deployer.policies.BLUBBER)"
    policy = _run([venv / "python", "-c", probe], cwd=outside, env=env)
    assert policy.returncode == 0, policy.stderr
    assert policy.stdout.strip().endswith("/deployer/policies/default.yaml"), policy.stdout
    with_policy = _run(
        ["blubber", "--policy", policy.stdout.strip(), ".pipeline/blubber.yaml", "production"],
        cwd=outside,
        env=env,
    )
    assert with_policy.returncode == 0, with_policy.stderr
    assert with_policy.stdout != plain.stdout  # the named policy's defaults apply, and only then
    lint = _run(["blubber", "lint", ".pipeline/blubber.yaml"], cwd=outside, env=env)
    assert lint.returncode == 0 and lint.stdout.endswith("ok (4 variants)\n"), lint.stdout + lint.stderr


@pytest.mark.docker
def test_deployer_builds_outside_the_checkout(venv: Path, outside: Path, registry: Registry) -> None:
    built = _run(["deployer", "build", ".", "--quiet"], cwd=outside, env=_user_env(venv))
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    tag = re.search(r"^built (\S+) \(production\): sha256:[0-9a-f]{64}$", built.stdout, re.MULTILINE)
    assert tag, built.stdout
    registry.docker("image", "rm", tag.group(1))


@dataclass
class _Installed(ServiceCopy):
    """A service copy whose `deployer` is the wheel's, run from inside the service's own directory."""

    bin: Path | None = None

    def deployer(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.bin is not None
        env = {**_user_env(self.bin), "CI": "true"}
        argv = [str(self.bin / "deployer"), *args]
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=self.root, timeout=600)


@pytest.fixture
def shipped_copy(
    venv: Path, cluster_kubeconfig: Path, kube: client.ApiClient, registry: Registry, tmp_path: Path
) -> Iterator[_Installed]:
    where = dict(kubeconfig=cluster_kubeconfig, api=kube, registry=registry, tmp_path=tmp_path)
    with service_copy(_Installed, "node-hello", "wheel", **where) as svc:
        svc.bin = venv
        svc.commit("node-hello, outside the deployer checkout")
        yield svc


@pytest.mark.cluster
@pytest.mark.registry
def test_deployer_ships_outside_the_checkout(shipped_copy: _Installed) -> None:
    ship = shipped_copy.ship()
    assert ship.returncode == 0, ship.output[-4000:]
    assert shipped_copy.get("/").body.decode().startswith("hello from node-hello")
