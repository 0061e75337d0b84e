"""The one error type hierarchy for what users did wrong.

A `UserError` carries a message, where it happened (file, line, YAML path), a hint and an exit code.
CLIs print it without a traceback; anything that is not a `UserError` is an internal error.
Exit codes are part of the interface (CI reads them). `ExitCode` holds the compiler's; deployer's own
codes (test failed, build, push, ...) live in `deployer.errors.ExitCode`, which repeats these values.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    INTERNAL = 1  # a bug: printed with a traceback
    USAGE = 2  # argparse's (and click's) code for bad command-line usage
    CONFIG = 10  # bad blubber.yaml / deploy.yaml / unreadable file
    POLICY = 11  # a policy enforcement was violated


class UserError(Exception):
    """Something the user can fix. Printed as one message with location and hint, never a traceback."""

    # an int: a tool built on the compiler (deployer) extends the table with its own codes
    exit_code: int = ExitCode.CONFIG

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.path = path
        self.hint = hint

    def location(self) -> str:
        """`file:line: path` with whatever parts are known."""
        where = ""
        if self.file:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.path:
            where = f"{where}: {self.path}" if where else self.path
        return where

    def __str__(self) -> str:
        where = self.location()
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ConfigError(UserError):
    """The config (or a file it names) is malformed, invalid or unreadable."""

    exit_code = ExitCode.CONFIG


class PolicyViolation(UserError):
    """The config is valid but an ops policy enforcement rejects it."""

    exit_code = ExitCode.POLICY


class ConfigErrors(ConfigError):
    """Several problems found in one pass; printed one per line. Location fields are the first problem's."""

    def __init__(self, problems: list[ConfigError]) -> None:
        first = problems[0]
        super().__init__(first.message, file=first.file, line=first.line, path=first.path, hint=first.hint)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


def raise_all(problems: list[ConfigError]) -> None:
    """Raise nothing, the one problem, or all of them (sorted by line) as ConfigErrors."""
    if not problems:
        return
    problems = sorted(problems, key=lambda p: (p.line or 0, p.path or ""))
    if len(problems) == 1:
        raise problems[0]
    raise ConfigErrors(problems)
