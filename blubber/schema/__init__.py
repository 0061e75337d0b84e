"""The JSON Schema of config v4 (the single source of truth for keys and types) and its error translation.

`config.schema.json` is shipped as package data so editors can use it too. Validation runs in two tiers:
a predicate built from the schema (`predicate.py`: plain Python, nothing to import) answers "valid?" for
the common case, in well under a millisecond for a 50-variant config; only
when it says no (or meets a YAML value JSON has no type for, e.g. a date) does the slower `jsonschema`
run, imported then and not before, to list the errors. Those become ConfigErrors that say file:line,
YAML path and a hint (`did you mean 'packages'?`).
"""

from __future__ import annotations

from functools import cache

from blubber.errors import ConfigError, raise_all
from blubber.schema import predicate
from blubber.source import Source, YamlPath

# Not `from typing import TYPE_CHECKING`: importing typing is a measurable part of a `blubber` process.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import jsonschema
    from jsonschema.exceptions import ValidationError

VARIANT_ONLY = ("includes", "copies")


@cache
def schema() -> dict:
    """The config schema as a dict (loaded once)."""
    # A file beside this module (package data, installed unzipped); importlib.resources would cost the
    # start-up of every `blubber` process more than reading the file.
    import json
    from pathlib import Path

    text = Path(__file__).with_name("config.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def _target(definition: str | None) -> dict:
    root = schema()
    return root if definition is None else {"$ref": f"#/$defs/{definition}", "$defs": root["$defs"]}


@cache
def _validator(definition: str | None) -> jsonschema.protocols.Validator:
    import jsonschema  # only on the error path: importing it costs more than validating

    return jsonschema.Draft202012Validator(_target(definition))


@cache
def _predicate(definition: str | None) -> predicate.Check:
    return predicate.build(schema(), definition)


def is_valid(data: object, definition: str | None = None) -> bool:
    """The fast predicate's verdict: True only for valid data; False also, conservatively, for values JSON
    has no type for (dates, floats where an integer is expected …), which the full validator judges."""
    return _predicate(definition)(data)


def check(source: Source, *, definition: str | None = None, at: YamlPath = ()) -> None:
    """Validate `source.data` (or the node at `at`) against the schema (or a `$defs` entry)."""
    data = source.data
    for part in at:
        data = data[part]  # type: ignore[index]
    if is_valid(data, definition):
        return
    errors = list(_validator(definition).iter_errors(data))
    problems: dict[str, ConfigError] = {}
    for error in errors:
        problem = translate(source, error, at)
        problems.setdefault(problem.path or "", problem)
    raise_all(list(problems.values()))


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true or false)",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


_EXAMPLES = {
    "string": 'write text, quoted if it looks like a number or yes/no, e.g. "1.0"',
    "integer": "write a whole number, e.g. 900",
    "boolean": "write true or false (no quotes)",
    "array": "write a list, e.g. [a, b]",
    "object": "write a mapping, e.g. {key: value}",
}


def type_name(value: object) -> str:
    """How a YAML value reads to a user: `a string`, `a list`, …"""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "null (empty)"
    return type(value).__name__


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _expected(types: str | list[str]) -> str:
    names = [_TYPE_NAMES.get(t, t) for t in ([types] if isinstance(types, str) else types)]
    return " or ".join(names)


def translate(source: Source, error: ValidationError, at: YamlPath = ()) -> ConfigError:
    """One jsonschema error → one ConfigError with location and hint."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        return _translate_any_of(source, error, at)
    path: YamlPath = (*at, *error.absolute_path)
    value = error.instance
    v = error.validator
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        # YAML keys need not be strings (`? `, `1:`, `yes:`); name them as written.
        unknown = sorted((k for k in value if k not in allowed), key=str)
        key = "null" if unknown[0] is None else str(unknown[0])
        import difflib  # error path only

        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        if key in VARIANT_ONLY and "variants" in allowed:
            hint = f"'{key}' is only allowed inside a variant (variants.<name>.{key})"
        elif close:
            hint = f"did you mean '{close[0]}'?"
        elif allowed:
            hint = "allowed keys here: " + ", ".join(allowed)
        else:
            hint = None
        return source.error((*path, key), f'unknown key "{key}"', hint)
    if v == "type":
        hint = None
        if isinstance(value, str) and "boolean" in error.validator_value:
            hint = (
                f"write {value.strip().lower()} without quotes"
                if value.lower() in ("true", "false")
                else None
            )
        elif "string" in _as_list(error.validator_value) and isinstance(value, bool | int | float):
            text = str(value).lower() if isinstance(value, bool) else str(value)
            hint = f'quote the value, e.g. "{text}"'
            if isinstance(value, bool):
                hint += " (YAML reads unquoted yes/no/on/off as booleans)"
        elif error.validator_value == "array" and isinstance(value, str):
            hint = f"write a list, e.g. [{value}]"
        else:
            hint = _EXAMPLES.get(_as_list(error.validator_value)[0])
        return source.error(
            path, f"expected {_expected(error.validator_value)}, got {type_name(value)}", hint
        )
    if v == "required":
        missing = error.message.split("'")[1] if "'" in error.message else str(error.validator_value)
        hint = "add `version: v4` as the first line" if missing == "version" and not at else None
        return source.error((*path, missing), f'"{missing}" is required', hint)
    if v in ("minimum", "maximum"):
        lo, hi = error.schema.get("minimum"), error.schema.get("maximum")
        hint = (
            "0 would be root; use an unprivileged id"
            if value == 0
            else "ids go from 1 to 4294967294 (0 would be root)"
        )
        return source.error(path, f"{value} is out of range ({lo}..{hi})", hint)
    if v == "pattern":
        return source.error(
            path, f'"{value}" is not a valid HTTP/HTTPS URL', "use an http:// or https:// URL"
        )
    if v == "enum":
        options = ", ".join(str(o) for o in error.validator_value)
        return source.error(path, f'"{value}" is not one of: {options}')
    if v in ("minProperties", "maxProperties"):
        keys = ", ".join(sorted(error.schema.get("properties", {})))
        return source.error(path, f"must have exactly one key, one of: {keys}")
    return source.error(path, error.message)


def _translate_any_of(source: Source, error: ValidationError, at: YamlPath) -> ConfigError:
    path: YamlPath = (*at, *error.absolute_path)
    value = error.instance
    branch_types = [b.get("type") for b in error.validator_value if "type" in b]
    refs = [b for b in error.validator_value if "$ref" in b]
    if branch_types and not refs and all(t == "array" for t in branch_types) and isinstance(value, list):
        # `copies`: every branch is a list; the items mix strings and objects.
        return source.error(
            path,
            "must be a list of only strings or only mappings, not both",
            "write `{from: <name>}` for each item",
        )
    # Errors from the branch whose type fits the value (anything but a type mismatch at this very node);
    # the deepest of them is the one the user needs to fix.
    fitting = [
        e
        for e in error.context
        if not (e.validator == "type" and len(e.absolute_path) == len(error.absolute_path))
    ]
    if fitting:
        from jsonschema.exceptions import best_match

        deepest = max(fitting, key=lambda e: len(e.absolute_path))
        return translate(source, best_match([deepest]) or deepest, at)
    expected = []
    for branch in error.validator_value:
        if "type" in branch:
            expected.append(_TYPE_NAMES.get(branch["type"], branch["type"]))
        elif "$ref" in branch:
            expected.append("a mapping")
    names = " or ".join(dict.fromkeys(expected)) or "another form"
    return source.error(path, f"expected {names}, got {type_name(value)}")
