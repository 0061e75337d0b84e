"""Ops policies: `defaults` merged under every config's top level, and `enforcements` (path + rule).

Format (YAML):
    defaults:            # any common config keys (runs, lives, base, …), validated like a config
      runs: {as: runuser, uid: 900, gid: 900}
    enforcements:        # checked in order; the first failure is a PolicyViolation
      - path: variants.production.runs.insecurely
        rule: isfalse
      - path: base
        rule: omitempty,startswith=127.0.0.1:5000/base/

Enforcements run on the config after the requested variant and its copies dependencies are expanded
(includes merged), because a rule such as "production must not run insecurely" is about what gets built, not
about what one file says (upstream T248927). Other variants are checked as written (quirk 15, replicated).
A path that does not resolve is skipped (quirk 14, replicated: documented upstream behaviour).
Rules: `,` = all must pass, `|` = one must pass, a leading `omitempty` skips empty values; named checks come
from blubber.checks (the same registry config validation uses) plus the comparisons below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from blubber import schema
from blubber.checks import CHECKS
from blubber.config._base import Checker
from blubber.config.common import Common
from blubber.config.root import Config
from blubber.errors import PolicyViolation, raise_all
from blubber.expand import Expander
from blubber.source import Source, parse, read_file
from blubber.values import fields, frozen

_COMPARISONS: dict[str, Callable[[object, str], bool]] = {
    "eq": lambda v, a: render(v) == a,
    "ne": lambda v, a: render(v) != a,
    "oneof": lambda v, a: render(v) in a.split(),
    "startswith": lambda v, a: isinstance(v, str) and v.startswith(a),
    "endswith": lambda v, a: isinstance(v, str) and v.endswith(a),
    "contains": lambda v, a: _contains(v, a),
    "excludes": lambda v, a: not _contains(v, a),
    "min": lambda v, a: _size(v) >= float(a),
    "max": lambda v, a: _size(v) <= float(a),
    "len": lambda v, a: _size(v) == float(a),
    "gt": lambda v, a: _size(v) > float(a),
    "gte": lambda v, a: _size(v) >= float(a),
    "lt": lambda v, a: _size(v) < float(a),
    "lte": lambda v, a: _size(v) <= float(a),
}  # fmt: skip
_PLAIN = {"required": lambda v: not _empty(v)}


def _contains(value: object, item: str) -> bool:
    if isinstance(value, str):
        return item in value
    return isinstance(value, list | tuple | dict) and item in map(str, value)


def _size(value: object) -> float:
    """Numbers compare by value; strings, lists and maps by length (validator semantics)."""
    if isinstance(value, bool) or value is None:
        return float(bool(value))
    if isinstance(value, int | float):
        return float(value)
    return float(len(value)) if hasattr(value, "__len__") else 0.0


def _empty(value: object) -> bool:
    return value is None or value is False or value == 0 or value in ("", [], {}, ())


def render(value: object) -> str:
    """A clean rendering of a policy value (upstream printed Go `%!s(…)` artefacts, quirk 13: fixed)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + " ".join(render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {render(v)}" for k, v in value.items()) + "}"
    return str(value)


def _term(term: str) -> Callable[[object], bool]:
    name, _, arg = term.partition("=")
    if name in _COMPARISONS and arg:
        return lambda v, f=_COMPARISONS[name]: _safe(f, v, arg)
    if name in _PLAIN and not arg:
        return _PLAIN[name]
    if name in CHECKS and not arg:
        return CHECKS[name].test
    raise ValueError(term)


def _safe(f: Callable[[object, str], bool], value: object, arg: str) -> bool:
    try:
        return bool(f(value, arg))
    except (TypeError, ValueError):
        return False


@frozen
class Rule:
    text: str
    omitempty: bool
    clauses: tuple[tuple[Callable[[object], bool], ...], ...]  # AND of ORs

    @classmethod
    def parse(cls, text: str) -> Rule:
        terms = [t.strip() for t in text.split(",")]
        omitempty = bool(terms) and terms[0] == "omitempty"
        terms = terms[1:] if omitempty else terms
        if not terms or any(not t for t in terms):
            raise ValueError(text)
        return cls(text, omitempty, tuple(tuple(_term(alt) for alt in t.split("|")) for t in terms))

    def allows(self, value: object) -> bool:
        if self.omitempty and _empty(value):
            return True
        return all(any(test(value) for test in alternatives) for alternatives in self.clauses)


@frozen
class Enforcement:
    path: str
    rule: Rule
    line: int | None


@frozen
class Policy:
    file: str
    defaults: Common | None
    enforcements: tuple[Enforcement, ...]

    def check(self, config: Config, variant: str, expander: Expander | None = None) -> None:
        """Raise PolicyViolation for the first enforcement the config fails when building `variant`."""
        view = config_view(config, variant, expander)
        for e in self.enforcements:
            found, value = resolve(view, e.path)
            if found and not e.rule.allows(value):
                where = f"{self.file}:{e.line}" if e.line else self.file
                parts = tuple(int(p) if p.isdigit() else p for p in e.path.split("."))
                raise PolicyViolation(
                    f'value "{render(value)}" for "{e.path}" violates policy rule "{e.rule.text}"',
                    file=config.file,
                    line=config.source.line(parts),
                    path=e.path,
                    hint=f"required by the ops policy {where}; change the config to comply",
                )


# The last policy read from each path, with the text it was made from. A deployer command loads every
# config it compiles with the same policy; the file is read each time (it may have changed), parsed once.
_LOADED: dict[str, tuple[str, Policy]] = {}


def load(path: str | Path) -> Policy:
    """Read a policy file; any problem with it is a ConfigError located in the policy file."""
    text = read_file(path)
    known = _LOADED.get(str(path))
    if known is not None and known[0] == text:
        return known[1]
    policy = _parse(text, str(path))
    _LOADED[str(path)] = (text, policy)
    return policy


def _parse(text: str, path: str) -> Policy:
    source = parse(text, path)
    data = source.data if source.data is not None else {}
    if not isinstance(data, dict):
        raise source.error(
            (), f"expected a mapping, got {schema.type_name(data)}", "keys: defaults, enforcements"
        )
    for key in data:
        if key not in ("defaults", "enforcements"):
            raise source.error((key,), f'unknown key "{key}"', "a policy has `defaults` and `enforcements`")
    defaults = None
    if data.get("defaults") is not None:
        schema.check(source, definition="Common", at=("defaults",))
        defaults = Common.parse(data["defaults"])
        c = Checker(source)
        defaults.check(c, ("defaults",))
        raise_all(c.problems)
    return Policy(path, defaults, tuple(_enforcements(source, data.get("enforcements") or [])))


def _enforcements(source: Source, raw: object) -> list[Enforcement]:
    if not isinstance(raw, list):
        raise source.error(("enforcements",), f"expected a list, got {schema.type_name(raw)}")
    result = []
    for i, item in enumerate(raw):
        at = ("enforcements", i)
        if not isinstance(item, dict) or set(item) != {"path", "rule"}:
            raise source.error(at, "each enforcement is a mapping with exactly `path` and `rule`")
        if not isinstance(item["path"], str) or not isinstance(item["rule"], str):
            raise source.error(at, "`path` and `rule` must be strings")
        try:
            rule = Rule.parse(item["rule"])
        except ValueError as e:
            known = ", ".join(sorted({*_COMPARISONS, *_PLAIN, *CHECKS, "omitempty"}))
            raise source.error(
                (*at, "rule"), f'unknown or malformed rule term "{e}"', f"known: {known}"
            ) from None
        result.append(Enforcement(item["path"], rule, source.line(at)))
    return result


def as_view(value: object) -> object:
    """Config values as plain data under their YAML key names (`in_` → `in`, `use_npm_ci` → `use-npm-ci`)."""
    names = fields(value)
    if names and not isinstance(value, type):
        if type(value).__name__ == "Entry":
            return {value.kind: as_view(value.section)}
        if type(value).__name__ == "Variant":
            body = as_view(value.common)
            body.update(includes=list(value.includes), copies=as_view(value.copies))
            return body
        return {name.rstrip("_").replace("_", "-"): as_view(getattr(value, name)) for name in names}
    if isinstance(value, dict):
        return {k: as_view(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_view(v) for v in value]
    return value


class _Variants(Mapping[str, dict]):
    """`variants` of a config_view, each variant turned into a view only when a path asks for it: a policy
    names a few variants, and viewing all of a large config's variants cost more than the rest of a build."""

    def __init__(self, config: Config, variant: str, expander: Expander | None = None) -> None:
        self._config, self._variant = config, variant
        self._expander = expander or Expander(config)
        self._expanded: set[str] | None = None
        self._views: dict[str, dict] = {}

    def __getitem__(self, name: str) -> dict:
        if name not in self._views:
            raw = self._config.variants[name]  # KeyError for an unknown variant, as a dict would
            if self._expanded is None:
                self._expanded = set(self._expander.stage_order(self._variant))
            if name in self._expanded:
                e = self._expander.expand(name)
                body: dict = as_view(e.common)  # type: ignore[assignment]
                body.update(includes=[], copies=as_view(e.copies))
            else:
                body = as_view(raw)  # type: ignore[assignment]
            self._views[name] = body
        return self._views[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._config.variants)

    def __len__(self) -> int:
        return len(self._config.variants)


def config_view(config: Config, variant: str, expander: Expander | None = None) -> dict:
    """The whole config as policy paths see it: target and its copies dependencies expanded, others raw."""
    view: dict = as_view(config.common)  # type: ignore[assignment]
    view["version"] = "v4"
    view["variants"] = _Variants(config, variant, expander)
    return view


def resolve(view: object, path: str) -> tuple[bool, object]:
    """Walk a dotted path through mappings; (False, None) when any segment is missing."""
    node = view
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node
