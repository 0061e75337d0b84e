"""The public API the deployer codes against."""

from __future__ import annotations

from pathlib import Path

import pytest

import blubber
from blubber import Runtime, compile_dockerfile, load, runtime
from blubber.errors import ConfigError
from tests.blubber.helpers import OPS_POLICY

REPO = Path(__file__).resolve().parents[2]
CONFIG = """\
version: v4
runs: {environment: {FOO: bar}}
variants:
  build:
    base: 127.0.0.1:5000/base/python3:12
    python: {version: python3, requirements: [requirements.txt]}
    copies: [local]
  test:
    includes: [build]
    runs: {insecurely: true}
    entrypoint: [python3, -m, pytest]
  web:
    base: 127.0.0.1:5000/base/nodejs:12
    node: {env: production}
    runs: {in: /srv/run}
    entrypoint: [node, server.js]
  tiny:
    entrypoint: [/app]
"""


@pytest.fixture
def config_path(tmp_path) -> Path:
    path = tmp_path / ".pipeline" / "blubber.yaml"
    path.parent.mkdir()
    path.write_text(CONFIG)
    return path


def test_exports() -> None:
    assert {"load", "compile_dockerfile", "runtime", "Runtime"} <= set(blubber.__all__)
    # As upstream, the compiler has no default policy of its own: the caller names one.
    assert "DEFAULT_POLICY" not in blubber.__all__


def test_load_compile(config_path) -> None:
    config = load(config_path, policy=OPS_POLICY)
    text = compile_dockerfile(config, "test")
    assert text.startswith("FROM 127.0.0.1:5000/base/python3:12 AS test\n")
    assert 'ENV FOO="bar" PYTHONUNBUFFERED="1"' in text  # the named policy's defaults are applied
    assert 'ENV FOO="bar"\n' in compile_dockerfile(load(config_path, policy=None), "test")


def test_runtime(config_path) -> None:
    config = load(config_path, policy=None)
    assert runtime(config, "build") == Runtime(
        "build", "127.0.0.1:5000/base/python3:12", "runuser", 900, 900, "/srv/app", {"FOO": "bar"}, (), False
    )
    assert runtime(config, "test") == Runtime(
        "test", "127.0.0.1:5000/base/python3:12", "somebody", 65533, 65533, "/srv/app", {"FOO": "bar"},
        ("python3", "-m", "pytest"), True,
    )  # fmt: skip
    web = runtime(config, "web")
    assert (web.workdir, web.environment, web.entrypoint) == (
        "/srv/run", {"FOO": "bar", "NODE_ENV": "production"}, ("node", "server.js"),
    )  # fmt: skip
    assert runtime(config, "tiny") == Runtime("tiny", None, "root", 0, 0, "/", {}, ("/app",), False)


def test_unknown_variant(config_path) -> None:
    with pytest.raises(ConfigError):
        runtime(load(config_path), "nope")
    with pytest.raises(ConfigError):
        compile_dockerfile(load(config_path), "nope")


def test_load_and_compile_leave_the_cycle_collector_as_they_found_it(tmp_path) -> None:
    import gc

    from blubber import api

    path = tmp_path / "blubber.yaml"
    path.write_text("version: v4\nbase: debian:bookworm\nvariants:\n  app: {}\n")
    assert gc.isenabled()
    api.compile_dockerfile(api.load(path), "app")
    assert gc.isenabled()
    gc.disable()
    try:
        api.compile_dockerfile(api.load(path), "app")
        assert not gc.isenabled()
    finally:
        gc.enable()
    path.write_text("version: v4\nvariants:\n  app: {includes: [nope]}\n")
    with pytest.raises(ConfigError):
        api.load(path)
    assert gc.isenabled()  # also after an error
