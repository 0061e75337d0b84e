"""Variant expansion: include order, merging, and the copies dependency graph (spec §3).

`expanded(V)` = top level (with defaults) ← each of `includes_order(V)` ← V itself, merged by each section's
rules. Stages = `stage_order(V)`: V's copies dependencies (post-order, first position kept) then V.
Deviation from upstream (quirk 6, fixed): dependencies are found on *expanded* variants, recursively, so a
dependency that only inherits a `copies` through `includes` still gets its stage.
"""

from __future__ import annotations

from blubber.config._base import Checker
from blubber.config.artifacts import Artifact, merge_copies
from blubber.config.artifacts import check as check_artifacts
from blubber.config.common import Common
from blubber.config.root import Config
from blubber.config.variant import Variant
from blubber.errors import ConfigError, raise_all
from blubber.values import frozen


@frozen
class Expanded:
    """One variant merged with the top level and its includes."""

    name: str
    common: Common
    copies: tuple[Artifact, ...] | None


def unknown_variant(config: Config, name: str) -> ConfigError:
    import difflib  # an error's hint only: not worth its import in every `blubber` process

    close = difflib.get_close_matches(name, sorted(config.variants), n=1)
    defined = ", ".join(sorted(config.variants)) or "none"
    hint = f"did you mean '{close[0]}'?" if close else f"defined variants: {defined}"
    return config.source.error(("variants",), f"unknown variant '{name}'", hint)


def _post_order(config: Config, start: str, edges, kind: str) -> list[str]:
    """Depth-first post-order of `edges(name)` from `start` (excluded); first position kept; no cycles."""
    order: list[str] = []
    done: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        for dep in edges(name):
            if dep in trail:
                cycle = " → ".join((*trail[trail.index(dep) :], dep))
                where = ("variants", name, kind)
                raise config.source.error(
                    where,
                    f"detected dependency graph cycle at '{dep}' ({kind}: {cycle})",
                    f"remove one of the {kind} in this chain",
                )
            if dep not in done:
                visit(dep, (*trail, dep))
                done.add(dep)
                order.append(dep)

    visit(start, (start,))
    return order


def includes_order(config: Config, name: str) -> list[str]:
    """The variants merged into `name`, in merge order (spec §3.2)."""
    if name not in config.variants:
        raise unknown_variant(config, name)
    return _post_order(config, name, lambda n: config.variants[n].includes, "includes")


class Expander:
    """Expands variants of one config, memoised (a 50-variant config re-uses shared includes)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._cache: dict[str, Expanded] = {}
        self._validated: set[str] = set()
        # Merge results by the chain of variants merged so far. Variants that include one another share
        # the start of their chains (v48 = … v46, v47, v48), so each merge step runs once per config,
        # not once per variant that needs it.
        self._merged: dict[tuple[str, ...], tuple[Common, tuple[Artifact, ...] | None]] = {
            (): (config.common, None)
        }
        self._dependencies: dict[str, list[str]] = {}
        self._declared: set[int] | None = None

    def expand(self, name: str) -> Expanded:
        if name not in self._cache:
            cfg = self.config
            chain = (*includes_order(cfg, name), name)
            done = len(chain)
            while chain[:done] not in self._merged:
                done -= 1
            merged, copies = self._merged[chain[:done]]
            for i in range(done, len(chain)):
                variant = cfg.variants[chain[i]]
                merged = merged.merge(variant.common)
                copies = merge_copies(copies, variant.copies)
                self._merged[chain[: i + 1]] = (merged, copies)
            self._cache[name] = Expanded(name, merged, copies)
        return self._cache[name]

    def dependencies(self, name: str) -> list[str]:
        if name not in self._dependencies:  # asked again for each path through the copies graph
            e = self.expand(name)
            self._dependencies[name] = Variant(e.common, (), e.copies).dependencies(self.config.names)
        return self._dependencies[name]

    def stage_order(self, name: str) -> list[str]:
        """Copies dependencies of `name` (recursively expanded), leaves first, then `name`."""
        if name not in self.config.variants:
            raise unknown_variant(self.config, name)
        return [*_post_order(self.config, name, self.dependencies, "copies"), name]

    def validate(self, name: str) -> Expanded:
        """Check the rules again on the expanded variant: merging can create conflicts (builders + node …)."""
        e = self.expand(name)
        if name in self._validated:  # policy check and compile of one variant ask again; it passed
            return e
        c = Checker(self.config.source, self.config.names)
        check_artifacts(c, e.copies, ("variants", name, "copies"), dedupe_field="copies")
        e.common.check(c, ("variants", name), self.declared_builders())
        e.common.check_expanded(c, ("variants", name))
        note = f"found after merging the top level and includes into '{name}'"
        for p in c.problems:
            p.hint = f"{p.hint}; {note}" if p.hint else note
        raise_all(c.problems)
        self._validated.add(name)
        return e

    def declared_builders(self) -> set[int]:
        """The ids of the `builders` entries' sections as the top level and each variant declared them.

        Each one passed its checks when the config was read (a Config comes only from the reader), and a
        section's checks depend on nothing but the section and the variant names. Merging keeps these
        objects as they are (custom builders are never merged, only carried), so an expanded variant need
        not check them again: that was most of the work of checking a variant that includes many others.
        """
        if self._declared is None:
            cfg = self.config
            commons = (cfg.raw_top, *(v.common for v in cfg.variants.values()))
            self._declared = {id(e.section) for common in commons for e in common.builders or ()}
        return self._declared
