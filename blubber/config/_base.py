"""What every config section module shares: the validation collector and the stage context."""

from __future__ import annotations

from blubber.checks import has_control_chars, problem
from blubber.errors import ConfigError
from blubber.source import Source, YamlPath
from blubber.values import field, frozen, mutable

LOCAL = "local"
SHARED_LIB = "/opt/lib"  # always created and owned by the lives user (not configurable)

# Variables the compiler's own instructions read (`USER $RUNS_UID`, `COPY --chown=$LIVES_UID:…`, HOME).
# An `arguments` or `runs.environment` entry of that name would change them behind the config's back
# (ENV beats ARG: `RUNS_UID: "0"` made the image run as root), so they are refused. Name → hint.
RESERVED_VARIABLES = {
    **{
        f"{who.upper()}_{what.upper()}": f"set `{who}.{what}` instead"
        for who in ("lives", "runs") for what in ("as", "uid", "gid")
    },
    "HOME": "blubber sets HOME to the home of each phase's user (/home/<runs.as> at run time)",
}  # fmt: skip


def pick(a, b):
    """Merge rule for scalars: B wins when set (not None)."""
    return a if b is None else b


@mutable
class Checker:
    """Collects semantic problems as ConfigErrors located in the source document."""

    source: Source
    variants: frozenset[str] = frozenset()
    problems: list[ConfigError] = field(default_factory=list)

    def add(self, path: YamlPath, message: str, hint: str | None = None) -> None:
        self.problems.append(self.source.error(path, message, hint))

    def rule(self, name: str, value: object, path: YamlPath, hint: str | None = None) -> bool:
        """Apply named check `name`; record a problem and return False when it fails."""
        message = problem(name, value)
        if message is not None:
            self.add(path, message, hint)
        return message is None

    def reserved(self, names: dict[str, str], at: YamlPath) -> None:
        """Refuse variables the compiler sets itself (RESERVED_VARIABLES)."""
        for name in names:
            if name in RESERVED_VARIABLES:
                self.add(
                    (*at, name),
                    f"{name} is set by blubber itself and cannot be overridden",
                    RESERVED_VARIABLES[name],
                )

    def text(self, value: str | None, path: YamlPath, what: str = "value") -> None:
        """Names and paths never contain control characters (a newline could end a Dockerfile line)."""
        if value is not None and has_control_chars(value):
            self.add(path, f"{what} {value!r} contains a control character (newline, tab …)")


@frozen
class StageContext:
    """What a section needs to know about the stage being compiled.

    `workdirs` maps every stage variant to its expanded `lives.in`, so a relative source copied from another
    variant resolves against that variant's working directory (spec §4.17 #1).
    """

    name: str
    variants: frozenset[str]
    workdirs: dict[str, str]
    lives_uid: int
    lives_gid: int
    variables: dict[str, str]  # known build-time variables (arguments, runs.environment, LIVES_*/RUNS_*)
    scratch: bool = False

    @property
    def chown(self) -> str | None:
        return None if self.scratch else "$LIVES_UID:$LIVES_GID"
