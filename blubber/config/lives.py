"""`lives`: the owner of the application files and the user every build step runs as.

Privileged phase: `ARG LIVES_AS/UID/GID`, then one RUN that creates the group and user (only if the numeric
ids do not exist yet: base images may already have them) and creates and chowns `in` and /opt/lib.
Privilege-dropped phase: `WORKDIR <in>`. (The USER switch and HOME are phase leaders, see variant.py.)
Merge: each field is replaced when set in the more specific config.
"""

from __future__ import annotations

from blubber.config._base import SHARED_LIB, Checker, StageContext, pick
from blubber.dockerfile.instructions import Arg, Cmd, Instruction, Run, Workdir
from blubber.dockerfile.phases import Phase
from blubber.source import YamlPath
from blubber.values import frozen


@frozen
class Lives:
    in_: str | None = None
    as_: str | None = None
    uid: int | None = None
    gid: int | None = None

    @classmethod
    def parse(cls, raw: dict | None) -> Lives:
        raw = raw or {}
        return cls(raw.get("in"), raw.get("as"), raw.get("uid"), raw.get("gid"))

    def merge(self, other: Lives) -> Lives:
        return Lives(
            pick(self.in_, other.in_),
            pick(self.as_, other.as_),
            pick(self.uid, other.uid),
            pick(self.gid, other.gid),
        )

    def check(self, c: Checker, at: YamlPath) -> None:
        if self.in_ is not None:
            c.rule("abspath", self.in_, (*at, "in"), "use an absolute directory such as /srv/app") and c.text(
                self.in_, (*at, "in"), "path"
            )
        if self.as_ is not None:
            c.rule("username", self.as_, (*at, "as"), "letters, digits, '-' and '.', at least 3, not root")

    def instructions(self, phase: Phase, ctx: StageContext) -> list[Instruction]:
        if phase == Phase.PRIVILEGED:
            return [
                *user_args("LIVES", self),
                Run(
                    (
                        *create_user_cmds("LIVES"),
                        Cmd("mkdir -p %s", (self.in_,)),
                        Cmd('chown "$LIVES_UID":"$LIVES_GID" %s', (self.in_,)),
                        Cmd("mkdir -p %s", (SHARED_LIB,)),
                        Cmd('chown "$LIVES_UID":"$LIVES_GID" %s', (SHARED_LIB,)),
                    )
                ),
            ]
        if phase == Phase.PRIVILEGE_DROPPED:
            return [Workdir(self.in_)]
        return []


DEFAULT = Lives(in_="/srv/app", as_="somebody", uid=65533, gid=65533)


def user_args(prefix: str, user: Lives) -> list[Instruction]:
    """`ARG <P>_AS/UID/GID` so the ids can be overridden with --build-arg (e.g. the host uid)."""
    return [Arg(f"{prefix}_AS", user.as_), Arg(f"{prefix}_UID", user.uid), Arg(f"{prefix}_GID", user.gid)]


def create_user_cmds(prefix: str) -> tuple[Cmd, Cmd]:
    """Create group and user by numeric id unless it exists (`getent` guard), with a home directory."""
    p = prefix
    return (
        Cmd(f'(getent group "${p}_GID" || groupadd -o -g "${p}_GID" -r "${p}_AS")'),
        Cmd(
            f'(getent passwd "${p}_UID" || '
            f'useradd -l -o -m -d "/home/${p}_AS" -r -g "${p}_GID" -u "${p}_UID" "${p}_AS")'
        ),
    )
