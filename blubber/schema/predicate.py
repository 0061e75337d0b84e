"""The config JSON Schema turned into a Python predicate: only "valid?", fast to build and to run.

Why not a library: a `blubber` process validates one small config and exits, so what a validator costs to
import counts more than how fast it runs. jsonschema-rs cost about 40 ms of CPU to import (its extension
pulls in email, socket, decimal and typing), fastjsonschema or its generated module more. The predicate is
built here from the schema's keywords, as nested functions, in well under a millisecond, and checks the
50-variant config in about as long.

The answer may be a conservative "no" (a float where an integer is expected, a str subclass): the caller
then asks `jsonschema`, which decides and lists the errors. It must never be "yes" where jsonschema says
no (tests/blubber/schema/test_predicate.py checks that against jsonschema, on the config schema and on
small schemas using each keyword). A keyword not handled here is refused when the predicate is built,
rather than ignored.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing is a measurable part of a `blubber` process
if TYPE_CHECKING:
    from collections.abc import Callable

    Check = Callable[[object], bool]

__all__ = ["build"]

# Keywords that say nothing about validity.
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$defs", "$comment", "title", "description", "default", "examples"}
)
_KEYWORDS = frozenset(
    {
        "type", "$ref", "anyOf", "enum", "pattern", "minimum", "maximum", "properties", "required",
        "additionalProperties", "minProperties", "maxProperties", "items",
    }
)  # fmt: skip
# JSON type -> the Python types whose values jsonschema counts as that type. Exact types: bool is not an
# integer; a whole float (which jsonschema takes as an integer) and subclasses get a conservative "no".
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def build(schema: dict, definition: str | None = None) -> Check:
    """The predicate for `schema` (or its `$defs` entry `definition`). Raises ValueError for a keyword or
    `$ref` it does not handle."""
    return _Builder(schema).check("#" if definition is None else f"#/$defs/{definition}")


def _combine(checks: list[Check], every: bool) -> Check:
    """One predicate for all (`every`) or any of `checks`: nested `and`s / `or`s, faster than all() or
    any() over a generator."""
    if not checks:
        return _always if every else _never
    first, *rest = checks
    if not rest:
        return first
    others = _combine(rest, every)
    if every:
        return lambda x: first(x) and others(x)
    return lambda x: first(x) or others(x)


def _type(kind: str | list[str]) -> Check:
    types = tuple(t for name in ([kind] if isinstance(kind, str) else kind) for t in _TYPES[name])
    if len(types) == 1:
        only = types[0]
        return lambda x: type(x) is only
    return lambda x: type(x) in types


def _always(_: object) -> bool:
    return True


def _never(_: object) -> bool:
    return False


class _Builder:
    def __init__(self, root: dict) -> None:
        self.root = root
        self.by_pointer: dict[str, Check] = {}

    def check(self, pointer: str) -> Check:
        """The predicate of the schema at `pointer`, built once (a recursive $ref calls it through a cell)."""
        if pointer not in self.by_pointer:
            built: list[Check] = []
            self.by_pointer[pointer] = lambda x: built[0](x)  # for a $ref back into itself, while building
            built.append(self.node(self.resolve(pointer)))
            self.by_pointer[pointer] = built[0]
        return self.by_pointer[pointer]

    def resolve(self, pointer: str) -> dict | bool:
        node: object = self.root
        for part in pointer.removeprefix("#").split("/")[1:]:
            node = node[part.replace("~1", "/").replace("~0", "~")]  # type: ignore[index]
        if not isinstance(node, dict | bool):
            raise ValueError(f"$ref {pointer} is not a schema")
        return node

    def ref(self, ref: str) -> Check:
        document, _, pointer = ref.partition("#")
        if document not in ("", self.root.get("$id")):
            raise ValueError(f"$ref to another document: {ref}")
        return self.check("#" + pointer)

    def node(self, schema: dict | bool) -> Check:
        """The predicate of one schema object: each keyword's check, in one function."""
        if schema is True:
            return _always
        if schema is False:
            return _never
        unknown = set(schema) - _KEYWORDS - _ANNOTATIONS
        if unknown:
            raise ValueError(f"schema keyword(s) not handled: {sorted(unknown)}")
        checks: list[Check] = []
        kind = schema.get("type")
        if kind is not None and kind not in ("object", "array"):  # those two: checked with their keywords
            # (a list of types, e.g. [string, null], is checked here; object keywords then apply to dicts)
            checks.append(_type(kind))
        if "$ref" in schema:
            checks.append(self.ref(schema["$ref"]))
        if "anyOf" in schema:
            checks.append(_combine([self.node(b) for b in schema["anyOf"]], every=False))
        if "enum" in schema:
            checks.append(self.enum(schema["enum"]))
        checks += self.strings(schema) + self.numbers(schema)
        checks += self.objects(schema, strict=kind == "object") + self.arrays(schema, strict=kind == "array")
        return _combine(checks, every=True)

    @staticmethod
    def enum(values: list) -> Check:
        if not all(isinstance(v, str) for v in values):
            raise ValueError(f"only enums of strings are handled: {values}")
        members = frozenset(values)
        return lambda x: type(x) is str and x in members

    @staticmethod
    def strings(schema: dict) -> list[Check]:
        if "pattern" not in schema:
            return []
        import re  # only a schema with a pattern needs it (and a `blubber` process has it already)

        search = re.compile(schema["pattern"]).search
        return [lambda x: type(x) is not str or search(x) is not None]

    @staticmethod
    def numbers(schema: dict) -> list[Check]:
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is None and high is None:
            return []
        low = float("-inf") if low is None else low
        high = float("inf") if high is None else high
        return [lambda x: type(x) not in (int, float) or low <= x <= high]

    def objects(self, schema: dict, strict: bool) -> list[Check]:
        """The object keywords; `strict`: the schema's type is object (anything else fails here)."""
        keywords = ("properties", "required", "additionalProperties", "minProperties", "maxProperties")
        if not any(k in schema for k in keywords):
            return [_type("object")] if strict else []
        properties = {k: self.node(v) for k, v in schema.get("properties", {}).items()}
        extra = self.node(schema.get("additionalProperties", True))
        required = tuple(schema.get("required", ()))
        low, high = schema.get("minProperties", 0), schema.get("maxProperties", float("inf"))
        closed = extra is _never  # additionalProperties: false, checked at once on the keys

        def check(x: object) -> bool:
            if type(x) is not dict:
                return not strict  # else these keywords apply to objects only
            if not low <= len(x) <= high or (closed and not x.keys() <= properties.keys()):
                return False
            for key in required:
                if key not in x:
                    return False
            for key, item in x.items():  # noqa: SIM110 (a loop, not all() over a generator: faster)
                if not properties.get(key, extra)(item):
                    return False
            return True

        return [check]

    def arrays(self, schema: dict, strict: bool) -> list[Check]:
        """The array keywords; `strict`: the schema's type is array (anything else fails here)."""
        if "items" not in schema:
            return [_type("array")] if strict else []
        item = self.node(schema["items"])

        def check(x: object) -> bool:
            if type(x) is not list:
                return not strict
            for v in x:  # noqa: SIM110 (a loop, not all() over a generator: faster)
                if not item(v):
                    return False
            return True

        return [check]
