"""The schema as a Python predicate (blubber/schema/predicate.py): never more lenient than jsonschema.

A "valid" from the predicate skips jsonschema, so it must never say valid where jsonschema says invalid;
on JSON values without floats it must agree exactly (else valid configs would pay for jsonschema).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from functools import cache

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blubber.schema import is_valid, predicate, schema
from tests.blubber.test_fuzz import document


@cache
def _check(index: int) -> Callable[[object], bool]:
    return predicate.build(SMALL_SCHEMAS[index])


def _full(schema_: dict, value: object) -> bool:
    return jsonschema.Draft202012Validator(schema_).is_valid(value)


# Every keyword the generator knows, also where the config schema does not use it (no `type` beside
# `properties`, `pattern` or `minimum`; a `$ref` with siblings; a recursive `$ref`; type lists).
SMALL_SCHEMAS = [
    {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer", "minimum": 2, "maximum": 5}}},  # noqa: E501
    {"properties": {"a": {"type": "string"}}, "additionalProperties": False},
    {"additionalProperties": {"type": ["string", "null"]}, "minProperties": 1, "maxProperties": 2},
    {"type": "array", "items": {"anyOf": [{"type": "boolean"}, {"enum": ["x", "y"]}]}},
    {"pattern": "^a+b", "minimum": 3},
    {"$ref": "#/$defs/N", "maximum": 4, "$defs": {"N": {"type": "number"}}},
    {"properties": {"n": {"$ref": "#/$defs/T"}}, "$defs": {"T": {"properties": {"n": {"$ref": "#/$defs/T"}}}}},  # noqa: E501
    {"type": "object", "properties": {"a": True, "b": False}},
    {"type": ["object", "null"], "properties": {"a": {"type": "string"}}, "required": ["a"]},
]  # fmt: skip
json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-3, 7), st.sampled_from(["a", "aab", "b", "x", "y", "n", ""])
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "b", "n", "z"]), inner, max_size=3)
    ),
    max_leaves=10,
)
# What YAML can give besides JSON: floats, dates, non-string keys, tuples (never "valid" by mistake).
yaml_values = st.recursive(
    st.one_of(
        st.floats(allow_nan=False), st.dates(), st.just(datetime.datetime(2024, 1, 1)), st.binary(max_size=2)
    )
    | json_values,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.integers(0, 2), st.sampled_from(["a", "n"])), inner, max_size=3),
    ),
    max_leaves=10,
)


@pytest.mark.parametrize("index", range(len(SMALL_SCHEMAS)))
@settings(max_examples=100, deadline=None)
@given(value=json_values, other=yaml_values)
def test_small_schemas_agree_with_jsonschema(index: int, value: object, other: object) -> None:
    check, small = _check(index), SMALL_SCHEMAS[index]
    assert check(value) == _full(small, value)
    assert not check(other) or _full(small, other)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=document, extra=yaml_values)
def test_config_schema_is_never_too_lenient(doc: dict, extra: object) -> None:
    for key in ("base", "runs", "lives"):
        mutated = {**doc, key: extra}
        assert not is_valid(mutated) or _full(schema(), mutated)


def test_every_definition_builds() -> None:
    for name in schema()["$defs"]:
        predicate.build(schema(), name)


def test_unknown_keywords_and_refs_are_refused() -> None:
    with pytest.raises(ValueError, match="patternProperties"):
        predicate.build({"type": "object", "patternProperties": {"^x": {"type": "string"}}})
    with pytest.raises(ValueError, match="another document"):
        predicate.build({"$ref": "https://example.invalid/other.json#/x"})
    with pytest.raises(ValueError, match="enums of strings"):
        predicate.build({"enum": [1, "a"]})
