from __future__ import annotations

import pytest

from blubber.config import arguments
from blubber.dockerfile.instructions import Arg
from blubber.dockerfile.phases import Phase
from blubber.errors import ConfigError
from tests.blubber.helpers import config, stage_lines


def test_parse_merge_and_instructions() -> None:
    assert config("arguments: {MAKE_TARGET: foo, A_B: x}").common.arguments == {
        "MAKE_TARGET": "foo",
        "A_B": "x",
    }
    assert arguments.merge({"A1": "1", "B1": "2"}, {"B1": "3"}) == {"A1": "1", "B1": "3"}
    assert arguments.instructions({"ZZ": "1", "AA": "2"}, Phase.PRIVILEGED) == [
        Arg("AA", "2"),
        Arg("ZZ", "1"),
    ]
    assert arguments.instructions({"ZZ": "1"}, Phase.PRE_INSTALL) == []


def test_arguments_come_right_after_the_root_home() -> None:
    lines = stage_lines(
        """
        variants:
          make:
            base: debian:stable
            arguments: {MAKE_TARGET: foo}
            apt: {packages: [make]}
            builders: [{custom: {requirements: [Makefile], command: "make ${MAKE_TARGET}"}}]
        """,
        "make",
    )
    assert lines[:5] == [
        "FROM debian:stable AS make",
        "USER 0",
        'ENV HOME="/root"',
        'ARG MAKE_TARGET="foo"',
        'ENV DEBIAN_FRONTEND="noninteractive"',
    ]
    assert "RUN make ${MAKE_TARGET}" in lines


@pytest.mark.parametrize(("yaml", "message"), [
    ("arguments: {'bad name': x}", "contains invalid environment variable names"),
    ("arguments: {GOOD: 1}", "expected a string, got an integer"),
])  # fmt: skip
def test_errors(yaml: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(yaml)
    assert e.value.message == message


@pytest.mark.parametrize("name", ["RUNS_UID", "LIVES_UID", "LIVES_GID", "RUNS_AS", "HOME"])
def test_names_the_compiler_uses_are_refused(name: str) -> None:
    # Also fed the compile-time substitution of mount paths, where it would replace the real value.
    with pytest.raises(ConfigError) as e:
        config(f"arguments:\n  {name}: '0'")
    assert (e.value.line, e.value.path) == (3, f"arguments.{name}")
    assert e.value.message == f"{name} is set by blubber itself and cannot be overridden"
