from __future__ import annotations

import pytest

from blubber.config.artifacts import Artifact
from blubber.config.node import Node
from blubber.dockerfile.phases import Phase
from blubber.errors import ConfigError
from tests.blubber.helpers import config, phase_lines

REQS = (Artifact("local", "package.json"), Artifact("local", "package-lock.json"))
COPY = 'COPY --chown=$LIVES_UID:$LIVES_GID ["package.json", "package-lock.json", "./"]'


def test_parse() -> None:
    node = config(
        "node: {requirements: [package.json, package-lock.json], env: production, use-npm-ci: true,"
        " allow-dedupe-failure: false}"
    ).common.node
    assert node == Node(REQS, "production", True, False)


@pytest.mark.parametrize(
    ("node", "pre", "post"),
    [
        (Node(REQS), [COPY, "RUN npm install"], ['ENV NODE_ENV=""']),
        (Node(REQS, use_npm_ci=True), [COPY, "RUN npm ci"], ['ENV NODE_ENV=""']),
        (
            Node(REQS, "production"),
            [COPY, 'RUN npm install "--only=production"', "RUN npm dedupe"],
            ['ENV NODE_ENV="production"'],
        ),
        (
            Node(REQS, "production", True, True),
            [COPY, 'RUN npm ci "--only=production"',
             'RUN npm dedupe || echo "WARNING: npm dedupe failed, continuing anyways"'],
            ['ENV NODE_ENV="production"'],
        ),
        (Node(env="production"), [], ['ENV NODE_ENV="production"']),
        (Node(()), [], []),
        (Node(), [], []),
    ],
)  # fmt: skip
def test_instructions(node: Node, pre: list[str], post: list[str]) -> None:
    assert phase_lines(node, Phase.PRE_INSTALL) == pre
    assert phase_lines(node, Phase.POST_INSTALL) == post
    assert phase_lines(node, Phase.PRIVILEGED) == []


def test_merge_replaces_requirements_and_keeps_env() -> None:
    a = Node(REQS, "production", True, None)
    assert a.merge(Node(requirements=())) == Node((), "production", True, None)
    assert a.merge(Node(env="", use_npm_ci=False)) == Node(REQS, "production", False, None)
    assert a.merge(Node()) == a


def test_bad_env() -> None:
    with pytest.raises(ConfigError) as e:
        config("node: {env: foo bar}")
    assert e.value.message == '"foo bar" is not a valid Node environment name'


def test_duplicate_requirements() -> None:
    with pytest.raises(ConfigError) as e:
        config("node: {requirements: [package.json, package.json]}")
    assert (e.value.path, e.value.message) == ("node.requirements", "cannot contain duplicates")
