"""The whole config document: `version`, top-level common keys (with defaults applied) and variants."""

from __future__ import annotations

from functools import cached_property

from blubber.config import lives as lives_section
from blubber.config import runs as runs_section
from blubber.config.common import Common
from blubber.config.variant import Variant
from blubber.source import Source
from blubber.values import field, frozen

BUILTIN_DEFAULTS = Common(lives=lives_section.DEFAULT, runs=runs_section.DEFAULT)


@frozen
class Config:
    """A validated config. `common` already has the built-in and policy defaults merged under it.

    `policy` is the ops policy it was loaded with (its enforcements run when a variant is compiled).
    """

    source: Source
    common: Common
    variants: dict[str, Variant]
    policy: object | None = None  # blubber.policy.Policy; typed loosely to keep the import graph acyclic
    raw_top: Common = field(default_factory=Common)

    @property
    def file(self) -> str:
        return self.source.file

    @cached_property
    def names(self) -> frozenset[str]:
        return frozenset(self.variants)
