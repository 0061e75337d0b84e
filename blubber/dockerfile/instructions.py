"""Dockerfile instructions as frozen values.

Config sections return lists of these; `blubber.dockerfile.render` is the only place they become text.
Values hold *unquoted* data; quoting happens once, in the renderer, per target (Dockerfile or shell).
"""

from __future__ import annotations

from blubber.values import field, frozen


@frozen
class From:
    """`FROM <image> AS <stage>`; `image=None` means `scratch`."""

    image: str | None
    stage: str


@frozen
class User:
    """`USER <uid>`; the uid is a literal number or a `$ARG` reference and is not quoted."""

    uid: str


@frozen
class Env:
    """`ENV k="v" …` with keys sorted; values may reference variables (`$PATH`), as Docker expands them."""

    values: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, mapping: dict[str, str]) -> Env:
        return cls(tuple(sorted(mapping.items())))


@frozen
class Arg:
    """`ARG NAME="value"` (string) or `ARG NAME=123` (integer)."""

    name: str
    default: str | int


@frozen
class Workdir:
    """`WORKDIR "<path>"`."""

    path: str


@frozen
class Cmd:
    """One shell command of a RUN: a template whose `%s` slots take the first arguments, the rest appended.

    Every argument is shell-quoted by the renderer. `expand=True` lets `$NAME`/`${NAME}` references in the
    arguments expand (builder command arguments, where upstream expands build arguments); command
    substitution and backticks never run.
    """

    template: str
    args: tuple[str, ...] = ()
    expand: bool = False


@frozen
class BindMount:
    """`--mount=type=bind` for one RUN: `source` of `from_` at `target`."""

    target: str
    from_: str | None = None
    source: str | None = None


@frozen
class CacheMount:
    """`--mount=type=cache`, owned by the given uid/gid so the unprivileged builder can write to it."""

    target: str
    id: str
    sharing: str
    uid: int
    gid: int


@frozen
class Run:
    """`RUN [--mount=…] cmd1 && cmd2 …`: commands joined with ` && ` on one line."""

    commands: tuple[Cmd, ...]
    mounts: tuple[BindMount | CacheMount, ...] = ()

    @classmethod
    def of(cls, template: str, *args: str, expand: bool = False) -> Run:
        return cls((Cmd(template, tuple(args), expand),))


@frozen
class Copy:
    """`COPY [--chown=u:g] [--from=x] [--exclude=p …] ["src", …, "dest"]` (JSON-array form)."""

    sources: tuple[str, ...]
    destination: str
    from_: str | None = None
    chown: str | None = None
    excludes: tuple[str, ...] = ()


@frozen
class Entrypoint:
    """`ENTRYPOINT ["a", "b"]` (exec form; also clears an inherited CMD)."""

    argv: tuple[str, ...]


@frozen
class Label:
    """`LABEL k="v" …` with keys sorted."""

    values: tuple[tuple[str, str], ...] = field(default=())


Instruction = From | User | Env | Arg | Workdir | Run | Copy | Entrypoint | Label
