"""Ops policies: defaults under every config, enforcements on the expanded variant."""

from __future__ import annotations

import textwrap

import pytest

from blubber import api
from blubber.errors import ConfigError, ExitCode, PolicyViolation
from blubber.policy import Rule, load, render
from tests.blubber.helpers import OPS_POLICY

CONFIG = """\
version: v4
base: 127.0.0.1:5000/base/nodejs:12
variants:
  build:
    copies: [local]
  test:
    includes: [build]
    runs: {insecurely: true}
  production:
    copies: [build]
"""


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    ("rule", "value", "allowed"),
    [
        ("isfalse", True, False), ("isfalse", None, True), ("istrue", True, True),
        ("ne=root", "root", False), ("eq=foo", "foo", True),
        ("oneof=debian:jessie debian:stretch", "foo:tag", False), ("oneof=a b", "b", True),
        ("omitempty,startswith=docker-registry.wikimedia.org", None, True),
        ("omitempty,startswith=docker-registry.wikimedia.org", "foo", False),
        ("eq=foo|startswith=docker-registry", "docker-registry/x", True),
        ("eq=foo|startswith=docker-registry", "bar", False),
        ("required", "", False), ("required", "x", True),
        ("min=3", "ab", False), ("max=2", [1, 2], True), ("len=1", {"a": 1}, True),
        ("gte=100", 900, True), ("gt=900", 900, False), ("lt=10", 5, True), ("lte=4", 5, False),
        ("contains=app", "myapp", True), ("excludes=latest", "x:latest", False), ("endswith=:12", "a:12", True),  # noqa: E501
        ("imageref", "foo bar", False), ("abspath", "/srv", True), ("username", "root", False),
        ("min=3", None, False), ("gte=x", 5, False),
    ],
)  # fmt: skip
def test_rules(rule: str, value: object, allowed: bool) -> None:
    assert Rule.parse(rule).allows(value) is allowed


def test_render_is_clean() -> None:
    assert [render(v) for v in (900, True, None, ["node", "server.js"], {"A": "b"})] == [
        "900", "true", "", "[node server.js]", "{A: b}",
    ]  # fmt: skip


def test_violation_message_and_exit_code(tmp_path) -> None:
    cfg = write(tmp_path, "blubber.yaml", CONFIG.replace("runs: {insecurely: true}", "runs: {as: root1}"))
    policy = write(tmp_path, "p.yaml", "enforcements:\n  - path: variants.test.runs.as\n    rule: ne=root1\n")
    with pytest.raises(PolicyViolation) as e:
        api.compile_dockerfile(api.load(cfg, policy=policy), "test")
    assert e.value.exit_code == ExitCode.POLICY == 11
    assert str(e.value) == (
        f'{cfg}:8: variants.test.runs.as: value "root1" for "variants.test.runs.as" violates policy rule "ne=root1"\n'  # noqa: E501
        f"  hint: required by the ops policy {policy}:2; change the config to comply"
    )


def test_policies_see_the_expanded_target(tmp_path) -> None:
    cfg = write(tmp_path, "blubber.yaml", """\
        version: v4
        variants:
          foo: {base: foo}
          production: {includes: [foo]}
          pred: {includes: [foo]}
          other: {copies: [pred]}
        """)  # fmt: skip
    policy = write(tmp_path, "p.yaml", """\
        enforcements:
          - {path: variants.production.base, rule: "omitempty,startswith=docker-registry.wikimedia.org"}
        """)  # fmt: skip
    config = api.load(cfg, policy=policy)
    with pytest.raises(PolicyViolation):
        api.compile_dockerfile(config, "production")
    # Building `foo` leaves production raw: its own base is empty, so the rule is skipped (quirk 15).
    assert "FROM foo AS foo" in api.compile_dockerfile(config, "foo")
    policy2 = write(
        tmp_path, "p2.yaml", "enforcements:\n  - {path: variants.pred.base, rule: 'omitempty,eq=x'}\n"
    )
    with pytest.raises(PolicyViolation) as e:
        api.compile_dockerfile(
            api.load(cfg, policy=policy2), "other"
        )  # pred is a copies dependency: expanded
    assert e.value.message == 'value "foo" for "variants.pred.base" violates policy rule "omitempty,eq=x"'


def test_unresolvable_paths_are_skipped(tmp_path) -> None:
    cfg = write(tmp_path, "blubber.yaml", CONFIG)
    policy = write(tmp_path, "p.yaml", "enforcements:\n  - {path: variants.nope.base, rule: required}\n"
                                       "  - {path: runs.environment.MISSING, rule: required}\n")  # fmt: skip
    assert api.compile_dockerfile(api.load(cfg, policy=policy), "production").startswith("FROM")


def test_top_level_defaults_are_visible_to_enforcements(tmp_path) -> None:
    cfg = write(tmp_path, "blubber.yaml", CONFIG)
    policy = write(tmp_path, "p.yaml", "enforcements:\n  - {path: lives.uid, rule: eq=65533}\n"
                                       "  - {path: runs.uid, rule: gte=1000}\n")  # fmt: skip
    with pytest.raises(PolicyViolation) as e:
        api.compile_dockerfile(api.load(cfg, policy=policy), "build")
    assert e.value.message == 'value "900" for "runs.uid" violates policy rule "gte=1000"'


def test_policy_defaults_apply_and_can_be_overridden(tmp_path) -> None:
    policy = write(tmp_path, "p.yaml", """\
        defaults:
          runs:
            in: /srv/service
            as: runuser
            uid: 666
            gid: 666
            environment: {APP_BASE_PATH: /srv/service}
        """)  # fmt: skip
    cfg = write(tmp_path, "blubber.yaml", CONFIG + "runs: {gid: 777}\n")
    config = api.load(cfg, policy=policy)
    text = api.compile_dockerfile(config, "production")
    assert "ARG RUNS_UID=666" in text and "ARG RUNS_GID=777" in text
    assert 'ENV APP_BASE_PATH="/srv/service"' in text
    assert text.splitlines()[-3] == 'WORKDIR "/srv/service"'
    rt = api.runtime(config, "production")
    assert (rt.user, rt.uid, rt.gid, rt.workdir) == ("runuser", 666, 777, "/srv/service")


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("enforcement: []", "enforcement", 'unknown key "enforcement"'),
        ("enforcements: {path: base}", "enforcements", "expected a list, got a mapping"),
        ("enforcements: [{path: base}]", "enforcements[0]", "each enforcement is a mapping with exactly `path` and `rule`"),  # noqa: E501
        ("enforcements: [{path: base, rule: 'startswith'}]", "enforcements[0].rule",
         'unknown or malformed rule term "startswith"'),
        ("enforcements: [{path: base, rule: 'frobnicate=1'}]", "enforcements[0].rule",
         'unknown or malformed rule term "frobnicate=1"'),
        ("defaults: {runs: {uid: x}}", "defaults.runs.uid", "expected an integer, got a string"),
        ("defaults: {runz: {}}", "defaults.runz", 'unknown key "runz"'),
        ("defaults: {runs: {as: root}}", "defaults.runs.as", '"root" is not a valid user name'),
        ("- a", "(top level)", "expected a mapping, got a list"),
    ],
)  # fmt: skip
def test_bad_policy_files(tmp_path, text: str, path: str | None, message: str) -> None:
    policy = write(tmp_path, "p.yaml", text)
    with pytest.raises(ConfigError) as e:
        load(policy)
    assert (e.value.file, e.value.path, e.value.message) == (str(policy), path, message)


def test_missing_policy_file(tmp_path) -> None:
    with pytest.raises(ConfigError) as e:
        api.load(write(tmp_path, "blubber.yaml", CONFIG), policy=tmp_path / "nope.yaml")
    assert (e.value.file, e.value.message) == (str(tmp_path / "nope.yaml"), "file not found")


def test_shipped_default_policy(tmp_path) -> None:
    policy = load(OPS_POLICY)
    assert policy.defaults is not None and policy.defaults.runs.uid == 900
    good = write(tmp_path, "good.yaml", CONFIG)
    for variant in ("build", "test", "production"):
        api.compile_dockerfile(api.load(good, policy=OPS_POLICY), variant)
    for image in ("127.0.0.1:5000/base/bookworm:12", "127.0.0.1:5000/base/python3:12"):
        api.compile_dockerfile(
            api.load(
                write(tmp_path, "b.yaml", CONFIG.replace("127.0.0.1:5000/base/nodejs:12", image)),
                policy=OPS_POLICY,
            ),
            "build",
        )
    foreign = write(tmp_path, "foreign.yaml", CONFIG.replace("127.0.0.1:5000/base/nodejs:12", "node:20"))
    with pytest.raises(PolicyViolation) as e:
        api.compile_dockerfile(api.load(foreign, policy=OPS_POLICY), "production")
    assert e.value.path == "base"
    insecure = write(tmp_path, "insecure.yaml", CONFIG + "    runs: {insecurely: true}\n")
    with pytest.raises(PolicyViolation) as e:
        api.compile_dockerfile(api.load(insecure, policy=OPS_POLICY), "production")
    assert e.value.path == "variants.production.runs.insecurely"
    assert api.compile_dockerfile(api.load(insecure, policy=None), "production")


def test_a_policy_is_parsed_once_per_text(tmp_path) -> None:
    # Each config a command compiles reads the policy file again; unchanged, it is not parsed again.
    path = write(tmp_path, "p.yaml", "defaults: {runs: {uid: 901}}")
    first = load(path)
    assert load(path) is first
    write(tmp_path, "p.yaml", "defaults: {runs: {uid: 902}}")
    assert load(path).defaults.runs.uid == 902  # type: ignore[union-attr]
    write(tmp_path, "p.yaml", "defaults: {runs: {uid: 0}}")
    with pytest.raises(ConfigError):  # a bad edit is reported, not hidden behind the last good policy
        load(path)
