"""The one renderer: instruction values → Dockerfile text. Never decides *what* to emit, only how."""

from __future__ import annotations

import re
from collections.abc import Iterable

from blubber.dockerfile.instructions import (
    Arg,
    BindMount,
    CacheMount,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    From,
    Instruction,
    Label,
    Run,
    User,
    Workdir,
)
from blubber.dockerfile.quoting import dockerfile_quote, flag_value, guard_line, shell_quote

# A %-verb in a command template (`%%` is a literal percent, not a slot).
_VERB = re.compile(r"%%|%s")


def render_cmd(cmd: Cmd) -> str:
    """Fill the template's `%s` slots with the first quoted arguments, append the rest space-separated."""
    quoted = [shell_quote(a, expand=cmd.expand) for a in cmd.args]
    if "%" not in cmd.template:  # no slots (most commands): the arguments follow the template
        return " ".join([cmd.template, *quoted]) if quoted else cmd.template
    slots = sum(1 for m in _VERB.finditer(cmd.template) if m.group(0) == "%s")
    filled, rest = quoted[:slots], quoted[slots:]
    it = iter(filled)
    text = _VERB.sub(lambda m: "%" if m.group(0) == "%%" else next(it, '""'), cmd.template)
    return " ".join([text, *rest]) if rest else text


def _pairs(values: Iterable[tuple[str, str]]) -> str:
    return " ".join(f"{k}={dockerfile_quote(v)}" for k, v in values)


def _mount(m: BindMount | CacheMount) -> str:
    if isinstance(m, CacheMount):
        opts = [
            "type=cache",
            f"id={flag_value(m.id)}",
            f"target={flag_value(m.target)}",
            f"sharing={flag_value(m.sharing)}",
            f"uid={m.uid}",
            f"gid={m.gid}",
        ]
    else:
        opts = ["type=bind"]
        if m.from_:
            opts.append(f"from={flag_value(m.from_)}")
        opts += [f"source={flag_value(m.source or '/')}", f"target={flag_value(m.target)}", "rw"]
    return "--mount=" + ",".join(opts)


def render_instruction(ins: Instruction) -> str:
    """Render one instruction as exactly one Dockerfile line (without the newline)."""
    match ins:  # the most frequent kinds first (each case is one isinstance test)
        case Run(commands=commands, mounts=mounts):
            flags = "".join(_mount(m) + " " for m in mounts)
            line = "RUN " + flags + " && ".join(render_cmd(c) for c in commands)
        case Copy():
            line = "COPY " + _copy_flags(ins) + _copy_paths(ins)
        case From(image=image, stage=stage):
            line = f"FROM {image or 'scratch'} AS {stage}"
        case User(uid=uid):
            line = f"USER {uid}"
        case Env(values=values):
            line = f"ENV {_pairs(values)}"
        case Label(values=values):
            line = f"LABEL {_pairs(values)}"
        case Arg(name=name, default=default):
            value = str(default) if isinstance(default, int) else dockerfile_quote(default)
            line = f"ARG {name}={value}"
        case Workdir(path=path):
            line = f"WORKDIR {dockerfile_quote(path)}"
        case Entrypoint(argv=argv):
            line = "ENTRYPOINT [" + ", ".join(dockerfile_quote(a) for a in argv) + "]"
        case _:
            raise TypeError(f"not an instruction: {ins!r}")
    return guard_line(line)


def _copy_flags(c: Copy) -> str:
    flags = ""
    if c.chown:
        flags += f"--chown={c.chown} "
    if c.from_:
        flags += f"--from={flag_value(c.from_)} "
    for pattern in c.excludes:
        flags += f"--exclude={flag_value(pattern)} "
    return flags


def _copy_paths(c: Copy) -> str:
    dest = c.destination
    # Docker requires a directory destination (trailing slash) when copying several sources.
    if len(c.sources) > 1 and not dest.endswith("/"):
        dest += "/"
    return "[" + ", ".join(dockerfile_quote(p) for p in (*c.sources, dest)) + "]"


def render_stage(instructions: Iterable[Instruction], seen: dict[int, str] | None = None) -> str:
    """Render a stage: one line per instruction, newline-terminated.

    `seen`: the lines of instructions rendered before, by id (the caller keeps those instructions alive);
    stages of one Dockerfile share the instruction objects of the builders they have in common."""
    if seen is None:
        return "".join(render_instruction(i) + "\n" for i in instructions)
    lines = []
    for i in instructions:
        line = seen.get(id(i))
        if line is None:
            line = seen[id(i)] = render_instruction(i) + "\n"
        lines.append(line)
    return "".join(lines)
