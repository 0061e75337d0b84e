"""`builders`: an ordered list of builders, each item one of `custom`, `node`, `php`, `python`.

Pre-/post-install instructions are generated in list order (the standalone keys use the fixed order node →
php → python → builder). `node`, `php` and `python` may appear once each, `custom` any number of times.
Merge (spec §3.5): a predefined builder present in both lists is merged field by field and keeps the more
specific list's position; the inherited list's other entries (including every custom one) come first, in
their order. So inherited custom builders always run before the variant's own.
"""

from __future__ import annotations

from blubber.config._base import Checker, StageContext
from blubber.config.builder import Builder
from blubber.config.node import Node
from blubber.config.php import Php
from blubber.config.python import Python
from blubber.dockerfile.instructions import Instruction
from blubber.dockerfile.phases import Phase
from blubber.source import YamlPath
from blubber.values import frozen

TYPE_CHECKING = False  # not typing's: importing typing is a measurable part of a `blubber` process
if TYPE_CHECKING:
    from collections.abc import Container

KINDS = {"custom": Builder, "node": Node, "php": Php, "python": Python}
UNIQUE_KINDS = ("node", "php", "python")


@frozen
class Entry:
    kind: str
    section: Builder | Node | Php | Python


def parse(raw: list | None) -> tuple[Entry, ...] | None:
    if raw is None:
        return None
    return tuple(Entry(kind, KINDS[kind].parse(body)) for item in raw for kind, body in item.items())


def merge(a: tuple[Entry, ...] | None, b: tuple[Entry, ...] | None) -> tuple[Entry, ...] | None:
    if b is None:
        return a
    if a is None:
        return b
    b_kinds = {e.kind for e in b if e.kind in UNIQUE_KINDS}
    leftovers = tuple(e for e in a if e.kind not in b_kinds)
    inherited = {e.kind: e.section for e in a if e.kind in UNIQUE_KINDS}
    merged = tuple(Entry(e.kind, inherited[e.kind].merge(e.section)) if e.kind in inherited else e for e in b)
    return leftovers + merged


def check(c: Checker, entries: tuple[Entry, ...] | None, at: YamlPath, checked: Container[int] = ()) -> None:
    """The list's rules, and each entry's section's, but those whose id is in `checked` (they passed)."""
    if not entries:
        return
    kinds = [e.kind for e in entries if e.kind in UNIQUE_KINDS]
    if len(kinds) != len(set(kinds)):
        c.add(at, "contains disallowed repetitions of entries", "node, php and python may each appear once")
    for i, e in enumerate(entries):
        if id(e.section) not in checked:
            e.section.check(c, (*at, i, e.kind))


def dependencies(entries: tuple[Entry, ...] | None, variants: frozenset[str]) -> list[str]:
    return [d for e in entries or () for d in e.section.dependencies(variants)]


def instructions(entries: tuple[Entry, ...] | None, phase: Phase, ctx: StageContext) -> list[Instruction]:
    return [i for e in entries or () for i in e.section.instructions(phase, ctx)]
