"""Keys allowed at the top level and in every variant, and the one place their instruction order lives.

Within a phase, sections contribute in this order (spec §4.3): arguments, apt, builders (list order), node,
php, python, builder, lives, runs. `entrypoint` and `copies` are placed by the variant (variant.py).
Merge: see each section's module; `base` is replaced only by a non-empty value (so `base: ~` in a variant
cannot undo an inherited base, quirk 9, replicated); `entrypoint` is replaced whenever present.
"""

from __future__ import annotations

from blubber.config import arguments, builders
from blubber.config._base import Checker, StageContext, pick
from blubber.config.apt import Apt
from blubber.config.builder import Builder
from blubber.config.builders import Entry
from blubber.config.lives import Lives
from blubber.config.node import Node
from blubber.config.php import Php
from blubber.config.python import Python
from blubber.config.runs import Runs
from blubber.dockerfile.instructions import Instruction
from blubber.dockerfile.phases import Phase
from blubber.source import YamlPath
from blubber.values import field, frozen

TYPE_CHECKING = False  # not typing's: importing typing is a measurable part of a `blubber` process
if TYPE_CHECKING:
    from collections.abc import Container

COMMON_KEYS = (
    "base", "arguments", "apt", "lives", "runs", "entrypoint", "node", "php", "python", "builder", "builders",
)  # fmt: skip


@frozen
class Common:
    base: str | None = None
    arguments: dict[str, str] = field(default_factory=dict)
    apt: Apt = field(default_factory=Apt)
    lives: Lives = field(default_factory=Lives)
    runs: Runs = field(default_factory=Runs)
    entrypoint: tuple[str, ...] | None = None
    node: Node = field(default_factory=Node)
    php: Php = field(default_factory=Php)
    python: Python = field(default_factory=Python)
    builder: Builder = field(default_factory=Builder)
    builders: tuple[Entry, ...] | None = None

    @classmethod
    def parse(cls, raw: dict) -> Common:
        entrypoint = raw.get("entrypoint")
        return cls(
            base=raw.get("base") or None,
            arguments=dict(raw.get("arguments") or {}),
            apt=Apt.parse(raw.get("apt")),
            lives=Lives.parse(raw.get("lives")),
            runs=Runs.parse(raw.get("runs")),
            entrypoint=None if entrypoint is None else tuple(entrypoint),
            node=Node.parse(value) if (value := raw.get("node")) else _NO_NODE,
            php=Php.parse(value) if (value := raw.get("php")) else _NO_PHP,
            python=Python.parse(value) if (value := raw.get("python")) else _NO_PYTHON,
            builder=Builder.parse(value) if (value := raw.get("builder")) else _NO_BUILDER,
            builders=builders.parse(raw.get("builders")),
        )

    def merge(self, other: Common) -> Common:
        return Common(
            base=other.base or self.base,
            arguments=arguments.merge(self.arguments, other.arguments),
            apt=self.apt.merge(other.apt),
            lives=self.lives.merge(other.lives),
            runs=self.runs.merge(other.runs),
            entrypoint=pick(self.entrypoint, other.entrypoint),
            # A section the other config left out changes nothing: keep this one (see _NO_NODE).
            node=self.node if other.node is _NO_NODE else self.node.merge(other.node),
            php=self.php if other.php is _NO_PHP else self.php.merge(other.php),
            python=self.python if other.python is _NO_PYTHON else self.python.merge(other.python),
            builder=self.builder if other.builder is _NO_BUILDER else self.builder.merge(other.builder),
            builders=builders.merge(self.builders, other.builders),
        )

    def check(self, c: Checker, at: YamlPath, checked: Container[int] = ()) -> None:
        """Semantic rules for these keys at `at` (top level, a variant, or an expanded variant).

        `checked`: ids of `builders` sections known to pass already (see Expander.declared_builders)."""
        if self.base is not None:
            c.rule("imageref", self.base, (*at, "base"), "e.g. 127.0.0.1:5000/base/bookworm:12")
        arguments.check(c, self.arguments, (*at, "arguments"))
        self.apt.check(c, (*at, "apt"))
        self.lives.check(c, (*at, "lives"))
        self.runs.check(c, (*at, "runs"))
        sections = (
            ("node", self.node),
            ("php", self.php),
            ("python", self.python),
            ("builder", self.builder),
        )
        for key, section in sections:
            if section is not _ABSENT[key]:  # a left-out section has nothing to check
                section.check(c, (*at, key))
        builders.check(c, self.builders, (*at, "builders"), checked)
        declared = [k for k, section in sections if section is not _ABSENT[k] and section.is_declared]
        if self.builders and declared:
            c.add(
                (*at, "builders"),
                'is not allowed if any of field(s) "node php python builder" is declared/included',
                f"move {', '.join(declared)} into `builders` (or drop `builders`), at every level",
            )
        for i, item in enumerate(self.entrypoint or ()):
            c.text(item, (*at, "entrypoint", i), "entrypoint item")

    def variables(self) -> dict[str, str]:
        """Build-time variables the compiler knows (LIVES_*/RUNS_*, arguments, runs.environment)."""
        lives, runs = self.lives, self.runs
        return {
            "LIVES_AS": lives.as_ or "", "LIVES_UID": str(lives.uid), "LIVES_GID": str(lives.gid),
            "RUNS_AS": runs.as_ or "", "RUNS_UID": str(runs.uid), "RUNS_GID": str(runs.gid),
            **self.arguments, **runs.environment,
        }  # fmt: skip

    def check_expanded(self, c: Checker, at: YamlPath) -> None:
        """Rules that need the whole merged variant: mount flags after variable substitution."""
        workdir, variables = self.lives.in_ or "/", self.variables()
        if self.builder.is_declared:
            self.builder.check_expanded(c, (*at, "builder"), workdir, variables)
        for i, e in enumerate(self.builders or ()):
            if isinstance(e.section, Builder):
                e.section.check_expanded(c, (*at, "builders", i, e.kind), workdir, variables)

    def dependencies(self, variants: frozenset[str]) -> list[str]:
        """Variants this config's builders read from (requirements and mounts)."""
        deps = builders.dependencies(self.builders, variants)
        for section in (self.node, self.php, self.python, self.builder):
            deps += section.dependencies(variants)
        return deps

    def instructions(self, phase: Phase, ctx: StageContext) -> list[Instruction]:
        """Every section's instructions for `phase`, in the one fixed section order."""
        return [
            *arguments.instructions(self.arguments, phase),
            *self.apt.instructions(phase, ctx),
            *builders.instructions(self.builders, phase, ctx),
            *self.node.instructions(phase, ctx),
            *self.php.instructions(phase, ctx),
            *self.python.instructions(phase, ctx),
            *self.builder.instructions(phase, ctx),
            *self.lives.instructions(phase, ctx),
            *self.runs.instructions(phase, ctx),
        ]


# The builder sections of a config that leaves them out, one object each. Merging one of them into a
# section is that section unchanged (every field is kept unless the other one sets it), so Common.merge
# keeps the section instead of building an equal one; a variant that includes many others saves most of
# its merging that way. Each is what the section's parse makes of nothing, so nothing else changes.
_NO_NODE, _NO_PHP, _NO_PYTHON, _NO_BUILDER = (
    Node.parse(None),
    Php.parse(None),
    Python.parse(None),
    Builder.parse(None),
)
_ABSENT = {"node": _NO_NODE, "php": _NO_PHP, "python": _NO_PYTHON, "builder": _NO_BUILDER}
