"""`builder` (and `builders[].custom`): a custom build command with its input files, mounts and caches.

Pre-install phase: the requirement COPYs (even without a command, as upstream since 1.3), then one RUN:
* `command: [make, -f, Makefile]` → `RUN make "-f" "Makefile"` (first item verbatim, the rest quoted;
  `$NAME`/`${NAME}` in them expand like build arguments, command substitution does not);
* `command: "go build ."` → `RUN go build .` (a string is one verbatim shell command);
* `script: |` → the script is written to a temporary file, run and deleted in the same RUN, so it never stays
  in the image (its own `#!` line picks the interpreter, default /bin/sh).
`mounts` become `--mount=type=bind` (read-write, changes discarded) and `caches` `--mount=type=cache` owned by
the lives user. Known variables (arguments, runs.environment) in mount paths are substituted at compile time.
Merge: `command`, `script`, `requirements`, `mounts`, `caches` are each replaced when the more specific config
has the key (so an inherited `command` plus an own `script` fails the exclusivity check after expansion).
"""

from __future__ import annotations

import posixpath
import re

from blubber.checks import has_control_chars
from blubber.config import artifacts
from blubber.config._base import LOCAL, Checker, StageContext, pick
from blubber.config.artifacts import Artifact
from blubber.dockerfile.instructions import BindMount, CacheMount, Cmd, Instruction, Run
from blubber.dockerfile.phases import Phase
from blubber.dockerfile.quoting import is_flag_safe
from blubber.source import YamlPath
from blubber.values import frozen

SCRIPT_FILE = "/tmp/.blubber-builder-script"
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


@frozen
class Mount:
    from_: str = LOCAL
    source: str | None = None
    destination: str | None = None


@frozen
class Cache:
    destination: str
    id: str | None = None
    access: str | None = None


@frozen
class Builder:
    command: tuple[str, ...] | str | None = None
    script: str | None = None
    requirements: tuple[Artifact, ...] | None = None
    mounts: tuple[Mount, ...] | None = None
    caches: tuple[Cache, ...] | None = None

    @classmethod
    def parse(cls, raw: dict | None) -> Builder:
        raw = raw or {}
        command = raw.get("command")
        mounts = raw.get("mounts")
        caches = raw.get("caches")
        return cls(
            tuple(command) if isinstance(command, list) else command,
            raw.get("script"),
            artifacts.parse_requirements(raw.get("requirements")),
            None if mounts is None else tuple(
                Mount(m) if isinstance(m, str)
                else Mount(m.get("from") or LOCAL, m.get("source"), m.get("destination"))
                for m in mounts
            ),
            None if caches is None else tuple(
                Cache(c) if isinstance(c, str) else Cache(c["destination"], c.get("id"), c.get("access"))
                for c in caches
            ),
        )  # fmt: skip

    def merge(self, other: Builder) -> Builder:
        return Builder(
            pick(self.command, other.command),
            pick(self.script, other.script),
            pick(self.requirements, other.requirements),
            pick(self.mounts, other.mounts),
            pick(self.caches, other.caches),
        )

    @property
    def is_declared(self) -> bool:
        return self != Builder()

    def check(self, c: Checker, at: YamlPath) -> None:
        artifacts.check(c, self.requirements, (*at, "requirements"), dedupe_field="requirements")
        if self.command and self.script:
            c.add((*at, "command"), 'is not allowed if any of field(s) "script" is declared/included')
            c.add((*at, "script"), 'is not allowed if any of field(s) "command" is declared/included')
        if isinstance(self.command, str):
            _check_command(c, self.command, (*at, "command"))
        elif self.command:
            _check_command(c, self.command[0], (*at, "command", 0))
        if self.mounts is not None:
            if len(set(self.mounts)) != len(self.mounts):
                c.add((*at, "mounts"), "cannot contain duplicates")
            for i, m in enumerate(self.mounts):
                artifacts.check_from(c, m.from_, (*at, "mounts", i, "from"))
                for key, value in (("from", m.from_), ("source", m.source), ("destination", m.destination)):
                    _check_flag(c, value, (*at, "mounts", i, key))
        if self.caches is not None:
            if len(set(self.caches)) != len(self.caches):
                c.add((*at, "caches"), "cannot contain duplicates")
            for i, cache in enumerate(self.caches):
                if not cache.destination:
                    c.add((*at, "caches", i, "destination"), "is required")
                for key, value in (("destination", cache.destination), ("id", cache.id)):
                    _check_flag(c, value, (*at, "caches", i, key))

    def dependencies(self, variants: frozenset[str]) -> list[str]:
        mounts = [m.from_ for m in self.mounts or () if m.from_ in variants]
        return artifacts.dependencies(self.requirements, variants) + mounts

    def instructions(self, phase: Phase, ctx: StageContext) -> list[Instruction]:
        if phase != Phase.PRE_INSTALL:
            return []
        if self.mounts or self.caches or any(a.from_ not in (None, LOCAL) for a in self.requirements or ()):
            return self._instructions(ctx)
        # Without mounts and with only local requirements, the instructions depend on the stage through
        # the COPY's owner alone. A variant that includes many others builds their custom builders again
        # in each of its stages: they are made once per builder and owner, and the stages share them (so
        # the renderer, which keeps the text of an instruction it has seen, writes them once too).
        key = (ctx.chown, ctx.workdirs.get(LOCAL))  # a variant named like the context would resolve paths
        made = self.__dict__.setdefault("_made", {})  # written directly: a frozen value refuses setattr
        if key not in made:
            made[key] = self._instructions(ctx)
        return list(made[key])

    def _instructions(self, ctx: StageContext) -> list[Instruction]:
        result: list[Instruction] = list(artifacts.requirement_copies(self.requirements, ctx))
        if isinstance(self.command, str):
            cmds: tuple[Cmd, ...] = (Cmd(_escape_percent(self.command.rstrip("\n"))),)
        elif self.command:
            cmds = (Cmd(_escape_percent(self.command[0]), self.command[1:], expand=True),)
        elif self.script:
            script = self.script if self.script.startswith("#!") else "#!/bin/sh\n" + self.script
            content = script.replace("\\", "\\\\").replace("\n", "\\n")
            cmds = (
                Cmd("printf '%%b' %s > %s", (content, SCRIPT_FILE)),
                Cmd("chmod +x %s", (SCRIPT_FILE,)),
                Cmd("%s", (SCRIPT_FILE,)),
                Cmd("rm -f %s", (SCRIPT_FILE,)),
            )
        else:
            return result
        result.append(Run(cmds, self._mounts(ctx)))
        return result

    def check_expanded(self, c: Checker, at: YamlPath, workdir: str, variables: dict[str, str]) -> None:
        """Mount flags as they will be written: variables substituted, relative paths joined to `workdir`.

        A variable's value (or the working directory) can bring a space or comma into a flag that the
        check of the written value could not see; it is refused here, at the config's line.
        """
        for key, i, fields in self._flag_values(workdir, variables):
            for name, written, value in fields:
                if value is None or is_flag_safe(value):
                    continue
                shown = f'"{written}" becomes "{value}", which' if written != value else f'"{value}"'
                c.add(
                    (*at, key, i, name),
                    f"{shown} cannot be used in a mount",
                    "no spaces, commas, quotes or backslashes, also in the arguments, runs.environment and"
                    " lives.in it uses",
                )

    def _mounts(self, ctx: StageContext) -> tuple[BindMount | CacheMount, ...]:
        workdir = ctx.workdirs.get(ctx.name, "/")
        return tuple(m for _, _, m in self._resolved(workdir, ctx.variables, ctx.lives_uid, ctx.lives_gid))

    def _resolved(self, workdir: str, variables: dict[str, str], uid: int, gid: int):
        """(key, index, mount) for every mount and cache, with its paths as they will be written."""
        for i, m in enumerate(self.mounts or ()):
            target = _absolute(workdir, expand(m.destination or ".", variables))
            source = expand(m.source, variables) if m.source else None
            yield "mounts", i, BindMount(target, None if m.from_ == LOCAL else m.from_, source)
        for i, cache in enumerate(self.caches or ()):
            target = _absolute(workdir, expand(cache.destination, variables))
            yield "caches", i, CacheMount(target, cache.id or target, cache.access or "shared", uid, gid)

    def _flag_values(self, workdir: str, variables: dict[str, str]):
        """(key, index, [(YAML field, value as written, value in the flag)]) for each resolved mount."""
        for key, i, mount in self._resolved(workdir, variables, uid=0, gid=0):  # ids are not user text
            if isinstance(mount, BindMount):
                m = self.mounts[i]  # type: ignore[index]
                fields = [
                    ("destination", m.destination or ".", mount.target),
                    ("source", m.source, mount.source),
                ]
            else:
                cache = self.caches[i]  # type: ignore[index]
                fields = [("destination", cache.destination, mount.target)]
                if cache.id:
                    fields.append(("id", cache.id, mount.id))
            yield key, i, fields


def _absolute(workdir: str, path: str) -> str:
    """Resolve a relative mount path against the working directory; a `$VAR/…` path is left to Docker."""
    if path.startswith("$"):
        return path
    return posixpath.normpath(posixpath.join(workdir, path))


def expand(text: str, variables: dict[str, str]) -> str:
    """Substitute `$NAME`/`${NAME}` for the variables known at compile time; leave the others for Docker."""
    return _VARIABLE.sub(lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), text)


def _escape_percent(template: str) -> str:
    # A user's command is a template with no slots: a literal % must not be taken for one.
    return template.replace("%", "%%")


# `<<WORD` in a RUN line is a Dockerfile heredoc for BuildKit (dockerfile 1.4+): the lines after the RUN,
# up to one reading WORD, would become its text, taking the instructions there (USER …) with them.
# A bash here-string (`<<<`) is not one.
_HEREDOC = re.compile(r"(?<!<)<<(?!<)")


def _check_command(c: Checker, command: str, path: YamlPath) -> None:
    if has_control_chars(command.rstrip("\n")):
        c.add(
            path, "must be a single line without control characters", "use `script:` for multi-line commands"
        )
    elif re.search(r"\\[ \t]*$", command):
        c.add(
            path, "must not end with a backslash", "a trailing backslash would continue the Dockerfile line"
        )
    elif _HEREDOC.search(command):
        c.add(
            path,
            'must not contain a heredoc ("<<")',
            "Docker would read the next lines of the Dockerfile as its text; use `script:` instead",
        )


def _check_flag(c: Checker, value: str | None, path: YamlPath) -> None:
    if value and not is_flag_safe(value):
        c.add(path, f'"{value}" cannot be used in a mount', "no spaces, commas, quotes or backslashes")
