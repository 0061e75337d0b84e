"""`runs`: the runtime process user, its environment and runtime directory.

Privileged phase: `ARG RUNS_AS/UID/GID` and one RUN creating the group and user.
Privilege-dropped phase: `ENV` with all `environment` entries (sorted), so build steps see them too.
Post-install phase: `WORKDIR <in>` when `in` is set. (The switch to `USER $RUNS_UID` is a phase leader in
variant.py, skipped when `insecurely` is true.)
Merge: `in`, `as`, `uid`, `gid`, `insecurely` are replaced when set; `environment` merges key by key (the
more specific config wins per key; nothing can be removed).
"""

from __future__ import annotations

from blubber.checks import CHECKS
from blubber.config._base import Checker, StageContext, pick
from blubber.config.lives import Lives, create_user_cmds, user_args
from blubber.dockerfile.instructions import Env, Instruction, Run, Workdir
from blubber.dockerfile.phases import Phase
from blubber.source import YamlPath
from blubber.values import field, frozen


@frozen
class Runs:
    in_: str | None = None
    as_: str | None = None
    uid: int | None = None
    gid: int | None = None
    insecurely: bool | None = None
    environment: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: dict | None) -> Runs:
        raw = raw or {}
        return cls(
            raw.get("in"), raw.get("as"), raw.get("uid"), raw.get("gid"), raw.get("insecurely"),
            dict(raw.get("environment") or {}),
        )  # fmt: skip

    def merge(self, other: Runs) -> Runs:
        return Runs(
            pick(self.in_, other.in_),
            pick(self.as_, other.as_),
            pick(self.uid, other.uid),
            pick(self.gid, other.gid),
            pick(self.insecurely, other.insecurely),
            {**self.environment, **other.environment},
        )

    def check(self, c: Checker, at: YamlPath) -> None:
        if self.in_ is not None:
            c.rule("abspath", self.in_, (*at, "in"), "use an absolute directory") and c.text(
                self.in_, (*at, "in"), "path"
            )
        if self.as_ is not None:
            c.rule("username", self.as_, (*at, "as"), "letters, digits, '-' and '.', at least 3, not root")
        if not c.rule("envvars", self.environment, (*at, "environment")):
            bad = [k for k in self.environment if not _valid_env(k)]
            c.problems[
                -1
            ].hint = f"invalid: {', '.join(map(repr, bad))}; use letters, digits and _ (at least 2)"
        c.reserved(self.environment, (*at, "environment"))

    @property
    def is_insecure(self) -> bool:
        return bool(self.insecurely)

    def instructions(self, phase: Phase, ctx: StageContext) -> list[Instruction]:
        if phase == Phase.PRIVILEGED:
            as_lives = Lives(None, self.as_, self.uid, self.gid)
            return [*user_args("RUNS", as_lives), Run(create_user_cmds("RUNS"))]
        if phase == Phase.PRIVILEGE_DROPPED and self.environment:
            return [Env.of(self.environment)]
        if phase == Phase.POST_INSTALL and self.in_:
            return [Workdir(self.in_)]
        return []


DEFAULT = Runs(as_="runuser", uid=900, gid=900)


def _valid_env(name: str) -> bool:
    return CHECKS["envvar"].test(name)
