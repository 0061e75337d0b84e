"""`php`: Composer dependencies.

Pre-install phase, when requirements are given: copy them (composer.json, composer.lock), then
`RUN composer install "--no-scripts"` (scripts disabled: a hardening upstream adopted), plus `"--no-dev"`
with `production: true`.
Merge: `requirements` replaced when the more specific config has the key; `production` replaced when set.
"""

from __future__ import annotations

from blubber.config import artifacts
from blubber.config._base import Checker, StageContext, pick
from blubber.config.artifacts import Artifact
from blubber.dockerfile.instructions import Instruction, Run
from blubber.dockerfile.phases import Phase
from blubber.source import YamlPath
from blubber.values import frozen


@frozen
class Php:
    requirements: tuple[Artifact, ...] | None = None
    production: bool | None = None

    @classmethod
    def parse(cls, raw: dict | None) -> Php:
        raw = raw or {}
        return cls(artifacts.parse_requirements(raw.get("requirements")), raw.get("production"))

    def merge(self, other: Php) -> Php:
        return Php(pick(self.requirements, other.requirements), pick(self.production, other.production))

    @property
    def is_declared(self) -> bool:
        return self != Php()

    def check(self, c: Checker, at: YamlPath) -> None:
        artifacts.check(c, self.requirements, (*at, "requirements"), dedupe_field="requirements")

    def dependencies(self, variants: frozenset[str]) -> list[str]:
        return artifacts.dependencies(self.requirements, variants)

    def instructions(self, phase: Phase, ctx: StageContext) -> list[Instruction]:
        if phase != Phase.PRE_INSTALL or not self.requirements:
            return []
        args = ("--no-scripts", "--no-dev") if self.production else ("--no-scripts",)
        return [*artifacts.requirement_copies(self.requirements, ctx), Run.of("composer install", *args)]
