"""`arguments`: build arguments with defaults (`ARG NAME="default"`), overridable with `--build-arg`.

Privileged phase, first thing after the base image, sorted by name. Treat them as non-secret: their values can
end up in image metadata. Merge: key by key, the more specific config wins.
"""

from __future__ import annotations

from blubber.checks import CHECKS
from blubber.config._base import Checker
from blubber.dockerfile.instructions import Arg, Instruction
from blubber.dockerfile.phases import Phase
from blubber.source import YamlPath


def merge(a: dict[str, str], b: dict[str, str]) -> dict[str, str]:
    return {**a, **b}


def check(c: Checker, arguments: dict[str, str], at: YamlPath) -> None:
    if not c.rule("envvars", arguments, at):
        bad = ", ".join(repr(k) for k in arguments if not _ok(k))
        c.problems[-1].hint = f"invalid: {bad}; use letters, digits and _ (at least 2 characters)"
    c.reserved(arguments, at)


def _ok(name: str) -> bool:
    return CHECKS["envvar"].test(name)


def instructions(arguments: dict[str, str], phase: Phase) -> list[Instruction]:
    if phase != Phase.PRIVILEGED:
        return []
    return [Arg(name, arguments[name]) for name in sorted(arguments)]
