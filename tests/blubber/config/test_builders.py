from __future__ import annotations

import pytest

from blubber.config import builders
from blubber.config.builder import Builder
from blubber.config.builders import Entry
from blubber.config.node import Node
from blubber.config.php import Php
from blubber.config.python import Python
from blubber.errors import ConfigError
from tests.blubber.helpers import config, stage_lines


def test_parse() -> None:
    parsed = config(
        "builders: [{custom: {command: [make]}}, {node: {env: production}}, {python: {version: python3}},"
        " {php: {production: true}}]"
    ).common.builders
    assert parsed == (
        Entry("custom", Builder(("make",))),
        Entry("node", Node(env="production")),
        Entry("python", Python("python3")),
        Entry("php", Php(production=True)),
    )


def test_merge_example_from_the_spec() -> None:
    # top [python]; build [node, python, php, custom]; prep [node, php] → python, custom, node, php
    top = (Entry("python", Python("python3")),)
    build = (
        Entry("node", Node(env="dev")),
        Entry("python", Python(requirements=())),
        Entry("php", Php(production=False)),
        Entry("custom", Builder("make deps")),
    )
    prep = (Entry("node", Node(env="production")), Entry("php", Php(production=True)))
    merged = builders.merge(builders.merge(top, build), prep)
    assert merged == (
        Entry("python", Python("python3", ())),
        Entry("custom", Builder("make deps")),
        Entry("node", Node(env="production")),
        Entry("php", Php(production=True)),
    )
    assert builders.merge(top, None) == top
    assert builders.merge(None, top) == top


def test_instructions_in_list_order() -> None:
    lines = stage_lines(
        """
        base: golang:1.18
        variants:
          build:
            builders:
              - custom: {requirements: [go.mod, go.sum], command: "go mod download"}
              - custom: {requirements: [main.go], command: "go build ."}
            entrypoint: [./hello-world-go]
        """,
        "build",
    )
    start = lines.index('ENV HOME="/home/somebody"') + 2
    assert lines[start:] == [
        'COPY --chown=$LIVES_UID:$LIVES_GID ["go.mod", "go.sum", "./"]',
        "RUN go mod download",
        'COPY --chown=$LIVES_UID:$LIVES_GID ["main.go", "./"]',
        "RUN go build .",
        "USER $RUNS_UID",
        'ENV HOME="/home/$RUNS_AS"',
        'ENTRYPOINT ["./hello-world-go"]',
    ]


def test_repetitions() -> None:
    with pytest.raises(ConfigError) as e:
        config("builders: [{python: {version: python3}}, {python: {version: python2}}]")
    assert (e.value.path, e.value.message) == ("builders", "contains disallowed repetitions of entries")
    assert config("builders: [{custom: {command: a}}, {custom: {command: b}}]").common.builders is not None


def test_one_kind_per_item() -> None:
    with pytest.raises(ConfigError) as e:
        config("builders: [{custom: {command: a}, node: {env: x}}]")
    assert e.value.message == "must have exactly one key, one of: custom, node, php, python"
    with pytest.raises(ConfigError) as e:
        config("builders: [{make: {command: a}}]")
    assert (e.value.message, e.value.hint) == (
        'unknown key "make"',
        "allowed keys here: custom, node, php, python",
    )


@pytest.mark.parametrize("key", ["node: {use-npm-ci: false}", "php: {production: true}", "python: {version: python3}",  # noqa: E501
                                 "builder: {command: [make]}"])  # fmt: skip
def test_not_allowed_with_standalone_keys(key: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(f"builders: [{{custom: {{command: a}}}}]\n{key}")
    assert (
        e.value.message == 'is not allowed if any of field(s) "node php python builder" is declared/included'
    )


def test_empty_standalone_key_is_fine() -> None:
    assert config("builders: [{custom: {command: a}}]\nnode: {}").common.node == Node()


def test_items_are_validated_like_standalone_builders() -> None:
    with pytest.raises(ConfigError) as e:
        config("builders: [{custom: {command: foo, script: bar}}]")
    assert e.value.problems[0].path == "builders[0].custom.command"
