"""The shipped JSON Schema and the translation of its errors into located, hinted ConfigErrors."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from blubber.errors import ConfigError
from blubber.schema import is_valid, schema
from tests.blubber.helpers import config
from tests.blubber.test_fuzz import document

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_schema_is_valid_and_shipped_as_package_data() -> None:
    text = resources.files("blubber.schema").joinpath("config.schema.json").read_text()
    assert json.loads(text) == schema()
    jsonschema.Draft202012Validator.check_schema(schema())


def test_schema_accepts_a_full_config() -> None:
    data = {
        "version": "v4",
        "base": "debian:bookworm",
        "arguments": {"A1": "x"},
        "apt": {"packages": {"default": ["a1"]}, "sources": [{"url": "https://x", "distribution": "d"}],
                "proxies": ["http://p", {"url": "http://p", "source": "https://s"}]},
        "lives": {"in": "/srv/app", "as": "somebody", "uid": 1, "gid": 2},
        "runs": {"in": "/x", "as": "r", "uid": 3, "gid": 4, "insecurely": False, "environment": {"A": "b"}},
        "entrypoint": ["a"],
        "builders": [{"custom": {"command": "x", "mounts": ["local"], "caches": [{"destination": "/c"}]}}],
        "variants": {"app": {"includes": [], "copies": ["local"], "node": {"requirements": ["p", {"from": "x"}]}}},  # noqa: E501
    }  # fmt: skip
    assert list(jsonschema.Draft202012Validator(schema()).iter_errors(data)) == []


@pytest.mark.parametrize(
    ("yaml", "text"),
    [
        ("newphone: whodis", 'blubber.yaml:2: newphone: unknown key "newphone"\n  hint: allowed keys here: apt, '  # noqa: E501
         "arguments, base, builder, builders, entrypoint, lives, node, php, python, runs, variants, version"),
        ("variants:\n  build:\n    apt: {pakages: [a]}",
         "blubber.yaml:4: variants.build.apt.pakages: unknown key \"pakages\"\n  hint: did you mean 'packages'?"),  # noqa: E501
        ("variants:\n  build:\n    entrypont: [a]",
         "blubber.yaml:4: variants.build.entrypont: unknown key \"entrypont\"\n  hint: did you mean 'entrypoint'?"),  # noqa: E501
        ("copies: [local]", 'blubber.yaml:2: copies: unknown key "copies"\n'
         "  hint: 'copies' is only allowed inside a variant (variants.<name>.copies)"),
        ("entrypoint: npm start", "blubber.yaml:2: entrypoint: expected a list, got a string\n"
         "  hint: write a list, e.g. [npm start]"),
        ("variants:\n  app:\n    copies: local", "blubber.yaml:4: variants.app.copies: expected a list, got a string"),  # noqa: E501
        ("variants:\n  app:\n    copies: [local, {from: x}]", "blubber.yaml:4: variants.app.copies: must be a list "  # noqa: E501
         "of only strings or only mappings, not both\n  hint: write `{from: <name>}` for each item"),
        ("apt: {packages: {default: curl}}", "blubber.yaml:2: apt.packages.default: expected a list, got a string\n"  # noqa: E501
         "  hint: write a list, e.g. [curl]"),
        ("lives: {uid: 0}", "blubber.yaml:2: lives.uid: 0 is out of range (1..4294967294)\n"
         "  hint: 0 would be root; use an unprivileged id"),
        ("runs: {gid: 4294967295}", "blubber.yaml:2: runs.gid: 4294967295 is out of range (1..4294967294)\n"
         "  hint: ids go from 1 to 4294967294 (0 would be root)"),
        ("variants:\n  build:\n    1: x", 'blubber.yaml:4: variants.build.1: unknown key "1"\n'
         "  hint: allowed keys here: apt, arguments, base, builder, builders, copies, entrypoint, includes, lives, "  # noqa: E501
         "node, php, python, runs"),
        ("variants: [a]", "blubber.yaml:2: variants: expected a mapping, got a list\n"
         "  hint: write a mapping, e.g. {key: value}"),
        ("base: 5", "blubber.yaml:2: base: expected a string or null, got an integer\n"
         '  hint: quote the value, e.g. "5"'),
    ],
)  # fmt: skip
def test_messages(yaml: str, text: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(yaml)
    assert str(e.value) == text


def test_all_schema_problems_are_reported_in_line_order() -> None:
    with pytest.raises(ConfigError) as e:
        config("runs:\n  environment:\n    FOO: yes\n    BAR: 1\nlives: {uid: -1}")
    assert [(p.line, p.path) for p in e.value.problems] == [
        (4, "runs.environment.FOO"), (5, "runs.environment.BAR"), (6, "lives.uid"),
    ]  # fmt: skip


# The fast predicate only answers "valid?"; a "yes" must never hide an error the full validator
# would report (that would let a bad config through), and a "no" must be one the full one explains.
def _full_verdict(data: object, definition: str | None = None) -> bool:
    target = schema() if definition is None else {"$ref": f"#/$defs/{definition}", "$defs": schema()["$defs"]}
    return not list(jsonschema.Draft202012Validator(target).iter_errors(data))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document)
def test_fast_predicate_agrees_with_the_full_validator(doc: dict) -> None:
    assert is_valid(doc) == _full_verdict(doc)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*/.pipeline/blubber.yaml")), ids=lambda p: p.parts[-3])
def test_examples_pass_the_fast_predicate(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    assert is_valid(data) and _full_verdict(data)


def test_policy_defaults_definition_agrees() -> None:
    good = {"runs": {"uid": 900, "environment": {"A": "b"}}}
    bad = {"runs": {"uid": 0}}
    assert (is_valid(good, "Common"), is_valid(bad, "Common")) == (True, False)
    assert (_full_verdict(good, "Common"), _full_verdict(bad, "Common")) == (True, False)


def test_yaml_values_json_has_no_type_for_are_still_located() -> None:
    # A YAML date is not JSON; the fast predicate refuses it and the full validator names the field.
    with pytest.raises(ConfigError) as e:
        config("base: 2024-01-01\n")
    assert str(e.value).startswith("blubber.yaml:2: base: expected a string or null, got date")
    with pytest.raises(ConfigError) as e:
        config("runs:\n  environment: {1: x}\n")
    assert "blubber.yaml:3: runs.environment" in str(e.value)
