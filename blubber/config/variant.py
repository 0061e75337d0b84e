"""A variant: common keys plus `includes` and `copies`, and how one expanded variant becomes a stage.

Stage layout, per phase (spec §4.4):
* PRIVILEGED: `FROM`, `USER 0`, `ENV HOME="/root"`, then the sections (arguments, apt, users …);
* PRIVILEGE_DROPPED: `USER $LIVES_UID`, `ENV HOME="/home/<lives.as>"`, then sections (WORKDIR, ENV);
* PRE_INSTALL: sections (requirement COPYs, dependency installs);
* INSTALL: one COPY per `copies` entry;
* POST_INSTALL: `USER $RUNS_UID`, `ENV HOME="/home/$RUNS_AS"` (unless runs.insecurely), sections, ENTRYPOINT.
A scratch stage (no base) has only FROM, the COPYs without --chown, and the ENTRYPOINT: there is no shell or
user database to work with.
"""

from __future__ import annotations

from blubber.config import artifacts
from blubber.config._base import Checker, StageContext
from blubber.config.artifacts import Artifact
from blubber.config.common import Common
from blubber.dockerfile.instructions import Entrypoint, Env, From, Instruction, User
from blubber.dockerfile.phases import Phase
from blubber.source import YamlPath
from blubber.values import field, frozen


@frozen
class Variant:
    common: Common = field(default_factory=Common)
    includes: tuple[str, ...] = ()
    copies: tuple[Artifact, ...] | None = None

    @classmethod
    def parse(cls, raw: dict | None) -> Variant:
        raw = raw or {}
        return cls(
            Common.parse(raw),
            tuple(dict.fromkeys(raw.get("includes") or ())),  # duplicates ignored, first position kept
            artifacts.parse_copies(raw.get("copies")),
        )

    def check(self, c: Checker, at: YamlPath, raw_includes: list | None = None) -> None:
        for i, name in enumerate(raw_includes or ()):
            if name == "local" and name not in c.variants:
                # Upstream accepts `local` here (quirk 23) but has nothing to merge: it is the build context,
                # not a variant, and expansion would look it up as one.
                c.add(
                    (*at, "includes", i),
                    '"local" is the build context, not a variant, and cannot be included',
                    "to copy the build context use `copies: [local]`",
                )
            elif name not in c.variants:
                hint = artifacts._variant_hint(name, c.variants)
                c.add((*at, "includes", i), f'references an unknown variant "{name}"', hint)
        artifacts.check(c, self.copies, (*at, "copies"), dedupe_field="copies")
        self.common.check(c, at)

    def dependencies(self, variants: frozenset[str]) -> list[str]:
        """Variants this one needs as earlier stages: `copies` sources, requirement sources, mounts."""
        return list(
            dict.fromkeys(artifacts.dependencies(self.copies, variants) + self.common.dependencies(variants))
        )


def stage(config: Common, copies: tuple[Artifact, ...] | None, ctx: StageContext) -> list[Instruction]:
    """All instructions of one stage for an expanded variant."""
    out: list[Instruction] = [From(config.base, ctx.name)]
    if ctx.scratch:
        out += artifacts.copies_instructions(copies, ctx, config.lives.in_)
        if config.entrypoint:
            out.append(Entrypoint(config.entrypoint))
        return out
    for phase in Phase:
        if phase == Phase.PRIVILEGED:
            out += [User("0"), Env.of({"HOME": "/root"})]
        elif phase == Phase.PRIVILEGE_DROPPED:
            # Literal lives name here but `$RUNS_AS` below, as upstream (quirk 21).
            out += [User("$LIVES_UID"), Env.of({"HOME": f"/home/{config.lives.as_}"})]
        elif phase == Phase.INSTALL:
            out += artifacts.copies_instructions(copies, ctx, config.lives.in_)
        elif phase == Phase.POST_INSTALL and not config.runs.is_insecure:
            out += [User("$RUNS_UID"), Env.of({"HOME": "/home/$RUNS_AS"})]
        out += config.instructions(phase, ctx)
    if config.entrypoint:
        out.append(Entrypoint(config.entrypoint))
    return out
