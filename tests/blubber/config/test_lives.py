from __future__ import annotations

import pytest

from blubber.config.lives import DEFAULT, Lives
from blubber.dockerfile.instructions import Arg, Workdir
from blubber.dockerfile.phases import Phase
from blubber.errors import ConfigError
from tests.blubber.helpers import config, expanded, phase_lines


def test_defaults() -> None:
    assert Lives("/srv/app", "somebody", 65533, 65533) == DEFAULT
    assert config("variants: {app: {}}").common.lives == DEFAULT


def test_partial_top_level_keeps_the_other_defaults() -> None:
    assert config("lives: {uid: 1234}").common.lives == Lives("/srv/app", "somebody", 1234, 65533)


def test_merge_replaces_only_set_fields() -> None:
    assert Lives("/a", "aaa", 1, 2).merge(Lives(None, "bbb", None, 3)) == Lives("/a", "bbb", 1, 3)


def test_privileged_phase_creates_user_and_directories() -> None:
    lines = phase_lines(Lives("/usr/local/app", "appowner", 1234, 1235), Phase.PRIVILEGED)
    assert lines == [
        'ARG LIVES_AS="appowner"',
        "ARG LIVES_UID=1234",
        "ARG LIVES_GID=1235",
        'RUN (getent group "$LIVES_GID" || groupadd -o -g "$LIVES_GID" -r "$LIVES_AS") && '
        '(getent passwd "$LIVES_UID" || useradd -l -o -m -d "/home/$LIVES_AS" -r -g "$LIVES_GID" -u "$LIVES_UID" '  # noqa: E501
        '"$LIVES_AS") && mkdir -p "/usr/local/app" && chown "$LIVES_UID":"$LIVES_GID" "/usr/local/app" && '
        'mkdir -p "/opt/lib" && chown "$LIVES_UID":"$LIVES_GID" "/opt/lib"',
    ]


def test_privilege_dropped_phase_sets_workdir() -> None:
    section = Lives("/srv/app", "somebody", 1, 1)
    assert section.instructions(Phase.PRIVILEGE_DROPPED, None) == [Workdir("/srv/app")]
    assert section.instructions(Phase.POST_INSTALL, None) == []
    assert section.instructions(Phase.PRIVILEGED, None)[0] == Arg("LIVES_AS", "somebody")


@pytest.mark.parametrize("value", ["/", "/foo/..", "foo/bar"])
def test_bad_in(value: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(f"lives: {{in: '{value}'}}")
    assert e.value.message == f'"{value}" is not a valid absolute non-root path'
    assert (e.value.path, e.value.line) == ("lives.in", 2)


@pytest.mark.parametrize("value", ["foo bar", "fo", "root"])
def test_bad_as(value: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(f"variants:\n  app:\n    lives: {{as: '{value}'}}")
    assert str(e.value).splitlines()[0] == (
        f'blubber.yaml:4: variants.app.lives.as: "{value}" is not a valid user name'
    )


def test_valid_user_name() -> None:
    assert config("lives: {as: foo-bar.baz}").common.lives.as_ == "foo-bar.baz"


@pytest.mark.parametrize(("value", "expected"), [("0", "0 is out of range"), ("-1", "-1 is out of range"),
                                                  ("abc", "expected an integer, got a string")])  # fmt: skip
def test_bad_ids(value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(f"lives: {{gid: {value}}}")
    assert e.value.message.startswith(expected)
    assert e.value.path == "lives.gid"


def test_variant_level_values_are_merged_over_top_level() -> None:
    e = expanded("lives: {as: appuser, uid: 1000}\nvariants:\n  aaa: {lives: {gid: 2000}}", "aaa")
    assert e.common.lives == Lives("/srv/app", "appuser", 1000, 2000)
