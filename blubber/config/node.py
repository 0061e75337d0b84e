"""`node`: npm dependencies installed into the application directory.

Pre-install phase: the requirement files (package.json, package-lock.json) are copied first, then
`RUN npm install` (or `npm ci`); with `env: production` the install gets `--only=production` and is followed
by `npm dedupe` (tolerating failure with `allow-dedupe-failure`).
Post-install phase: `ENV NODE_ENV="<env>"` when requirements or env are set.
Merge: `requirements` is replaced when the more specific config has the key (`[]` clears it); `env` replaced
when non-empty; flags replaced when set (true or false).
"""

from __future__ import annotations

from blubber.config import artifacts
from blubber.config._base import Checker, StageContext, pick
from blubber.config.artifacts import Artifact
from blubber.dockerfile.instructions import Env, Instruction, Run
from blubber.dockerfile.phases import Phase
from blubber.source import YamlPath
from blubber.values import frozen


@frozen
class Node:
    requirements: tuple[Artifact, ...] | None = None
    env: str | None = None
    use_npm_ci: bool | None = None
    allow_dedupe_failure: bool | None = None

    @classmethod
    def parse(cls, raw: dict | None) -> Node:
        raw = raw or {}
        return cls(
            artifacts.parse_requirements(raw.get("requirements")),
            raw.get("env"),
            raw.get("use-npm-ci"),
            raw.get("allow-dedupe-failure"),
        )

    def merge(self, other: Node) -> Node:
        return Node(
            pick(self.requirements, other.requirements),
            other.env or self.env,
            pick(self.use_npm_ci, other.use_npm_ci),
            pick(self.allow_dedupe_failure, other.allow_dedupe_failure),
        )

    @property
    def is_declared(self) -> bool:
        return self != Node()

    def check(self, c: Checker, at: YamlPath) -> None:
        artifacts.check(c, self.requirements, (*at, "requirements"), dedupe_field="requirements")
        if self.env:
            c.rule("nodeenv", self.env, (*at, "env"), "letters and digits only, e.g. production")

    def dependencies(self, variants: frozenset[str]) -> list[str]:
        return artifacts.dependencies(self.requirements, variants)

    def instructions(self, phase: Phase, ctx: StageContext) -> list[Instruction]:
        if phase == Phase.PRE_INSTALL and self.requirements:
            install = "npm ci" if self.use_npm_ci else "npm install"
            result: list[Instruction] = list(artifacts.requirement_copies(self.requirements, ctx))
            if self.env == "production":
                result.append(Run.of(install, "--only=production"))
                dedupe = "npm dedupe"
                if self.allow_dedupe_failure:
                    dedupe += ' || echo "WARNING: npm dedupe failed, continuing anyways"'
                result.append(Run.of(dedupe))
            else:
                result.append(Run.of(install))
            return result
        if phase == Phase.POST_INSTALL and (self.requirements or self.env):
            return [Env.of({"NODE_ENV": self.env or ""})]
        return []
