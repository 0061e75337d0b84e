from __future__ import annotations

import pytest

from blubber.config.runs import DEFAULT, Runs
from blubber.dockerfile.instructions import Env, Workdir
from blubber.dockerfile.phases import Phase
from blubber.errors import ConfigError
from tests.blubber.helpers import config, phase_lines


def test_defaults() -> None:
    assert Runs(None, "runuser", 900, 900, None, {}) == DEFAULT


def test_parse_all_keys() -> None:
    runs = config(
        """
        runs:
          in: /srv/run
          as: apprunner
          uid: 4321
          gid: 4320
          insecurely: true
          environment: {FOO: bar, BAZ: qux}
        """
    ).common.runs
    assert runs == Runs("/srv/run", "apprunner", 4321, 4320, True, {"FOO": "bar", "BAZ": "qux"})


def test_merge_environment_key_by_key_and_flags_tri_state() -> None:
    a = Runs(None, "aaa", 1, 1, True, {"A": "1", "B": "2"})
    b = Runs("/x", None, None, 5, False, {"B": "3", "C": "4"})
    assert a.merge(b) == Runs("/x", "aaa", 1, 5, False, {"A": "1", "B": "3", "C": "4"})
    assert b.merge(Runs()) == b


def test_phases() -> None:
    runs = Runs("/some/other/directory", "runuser", 900, 901, None, {"FOO": "bar", "BAZ": "qux"})
    assert phase_lines(runs, Phase.PRIVILEGED) == [
        'ARG RUNS_AS="runuser"',
        "ARG RUNS_UID=900",
        "ARG RUNS_GID=901",
        'RUN (getent group "$RUNS_GID" || groupadd -o -g "$RUNS_GID" -r "$RUNS_AS") && '
        '(getent passwd "$RUNS_UID" || useradd -l -o -m -d "/home/$RUNS_AS" -r -g "$RUNS_GID" -u "$RUNS_UID" '
        '"$RUNS_AS")',
    ]
    assert runs.instructions(Phase.PRIVILEGE_DROPPED, None) == [Env((("BAZ", "qux"), ("FOO", "bar")))]
    assert runs.instructions(Phase.POST_INSTALL, None) == [Workdir("/some/other/directory")]
    assert Runs().instructions(Phase.PRIVILEGE_DROPPED, None) == []
    assert Runs().instructions(Phase.POST_INSTALL, None) == []


@pytest.mark.parametrize("name", ["foo fighter", "foo-fighter", "foo.fighter", "1foo", "A"])
def test_bad_environment_names(name: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(f"runs:\n  environment:\n    '{name}': x")
    assert e.value.message == "contains invalid environment variable names"
    assert e.value.path == "runs.environment"
    assert repr(name) in e.value.hint


@pytest.mark.parametrize("name", ["foo", "f1oo", "FOO", "foo_fighter", "FOO_FIGHTER", "_FOO_FIGHTER"])
def test_good_environment_names(name: str) -> None:
    assert config(f"runs:\n  environment:\n    {name}: x").common.runs.environment == {name: "x"}


def test_environment_values_must_be_strings() -> None:
    with pytest.raises(ConfigError) as e:
        config("runs:\n  environment:\n    FOO: yes")
    assert str(e.value) == (
        "blubber.yaml:4: runs.environment.FOO: expected a string, got a boolean\n"
        '  hint: quote the value, e.g. "true" (YAML reads unquoted yes/no/on/off as booleans)'
    )


def test_insecurely_must_be_a_real_boolean() -> None:
    with pytest.raises(ConfigError) as e:
        config('runs: {insecurely: "true"}')
    assert e.value.message == "expected a boolean (true or false), got a string"
    assert e.value.hint == "write true without quotes"


def test_bad_runtime_dir() -> None:
    with pytest.raises(ConfigError) as e:
        config("runs: {in: relative/dir}")
    assert e.value.message == '"relative/dir" is not a valid absolute non-root path'


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("RUNS_UID", "set `runs.uid` instead"),
        ("RUNS_GID", "set `runs.gid` instead"),
        ("RUNS_AS", "set `runs.as` instead"),
        ("LIVES_UID", "set `lives.uid` instead"),
        ("LIVES_GID", "set `lives.gid` instead"),
        ("LIVES_AS", "set `lives.as` instead"),
        ("HOME", "blubber sets HOME to the home of each phase's user (/home/<runs.as> at run time)"),
    ],
)
def test_names_the_compiler_uses_are_refused(name: str, hint: str) -> None:
    # `runs.environment: {RUNS_UID: "0"}` emitted `ENV RUNS_UID="0"`; ENV beats ARG, so the final
    # `USER $RUNS_UID` was `USER 0` while runtime() reported uid 900.
    with pytest.raises(ConfigError) as e:
        config(f"variants:\n  app:\n    runs:\n      environment:\n        {name}: '0'")
    assert (e.value.line, e.value.path) == (6, f"variants.app.runs.environment.{name}")
    assert e.value.message == f"{name} is set by blubber itself and cannot be overridden"
    assert e.value.hint == hint


def test_reserved_names_in_policy_defaults_are_refused_too(tmp_path) -> None:
    from blubber.policy import load

    policy = tmp_path / "p.yaml"
    policy.write_text("defaults:\n  runs:\n    environment: {LIVES_UID: '0'}\n")
    with pytest.raises(ConfigError) as e:
        load(policy)
    assert (e.value.line, e.value.path) == (3, "defaults.runs.environment.LIVES_UID")
