"""deployer.service.resolve: a directory, an example name, or a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer import service
from deployer.errors import ConfigError, ExitCode


def make_service(root: Path, name: str) -> Path:
    directory = root / name
    (directory / ".pipeline").mkdir(parents=True)
    (directory / ".pipeline" / "blubber.yaml").write_text("version: v4\n")
    return directory


def test_a_directory_with_a_config(tmp_path):
    directory = make_service(tmp_path, "My_App")
    svc = service.resolve(directory)
    assert svc.directory == directory.resolve()
    assert svc.config == directory.resolve() / ".pipeline" / "blubber.yaml"
    assert svc.name == "my_app"


def test_an_example_name(tmp_path):
    make_service(tmp_path, "node-hello")
    svc = service.resolve("node-hello", examples_root=tmp_path)
    assert svc.directory == (tmp_path / "node-hello").resolve()


def test_the_bundled_examples_resolve():
    assert {"node-hello", "python-hello"} <= set(service.examples())
    assert service.resolve("node-hello").config.is_file()


def test_missing_directory_names_the_examples(tmp_path):
    make_service(tmp_path, "node-hello")
    with pytest.raises(ConfigError) as caught:
        service.resolve("nope", examples_root=tmp_path)
    err = caught.value
    assert err.exit_code == ExitCode.CONFIG
    assert err.message == "service directory not found: nope"
    assert err.hint == "give a directory that has .pipeline/blubber.yaml, or an example name (node-hello)"


def test_directory_without_config(tmp_path):
    (tmp_path / "svc").mkdir()
    with pytest.raises(ConfigError) as caught:
        service.resolve(tmp_path / "svc", examples_root=tmp_path)
    assert caught.value.message == f"no Blubber config in {(tmp_path / 'svc').resolve()}"
    assert caught.value.file == str((tmp_path / "svc").resolve() / ".pipeline" / "blubber.yaml")


def test_a_file_is_not_a_service(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        service.resolve(tmp_path / "file.txt", examples_root=tmp_path)


@pytest.mark.parametrize(
    ("directory", "name"),
    [("node-hello", "node-hello"), ("My App", "my-app"), ("__x__", "x"), ("a..b", "a-b"), ("ÄÖ", "service")],
)
def test_repository_names_are_valid_docker_components(directory, name):
    assert service.repository_name(directory) == name
