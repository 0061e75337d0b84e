"""The two quoting functions, one per target. Every value the user wrote goes through exactly one of them.

What may expand, per target (decided here, tested in tests/blubber/dockerfile/test_quoting.py):

* Dockerfile (`dockerfile_quote`): a JSON string, like upstream's Go `strconv.Quote`. Control characters,
  including newline and carriage return, become escapes, so a value can never end the instruction line.
  Docker still expands `$NAME` inside the quotes (ENV, COPY, WORKDIR); that is variable expansion only,
  never command execution, and it is what makes `PATH="/opt/lib/venv/bin:$PATH"` work.
* Shell (`shell_quote`, inside RUN): double quotes with `\\`, `"`, `` ` `` and `$` escaped, so a package name,
  path or argument is passed literally: no command substitution, no variable expansion. With
  `expand=True` (builder command arguments only) a `$NAME`/`${NAME}` reference still expands, matching
  upstream's build-argument expansion; `$(…)` and backticks stay literal.
  A raw newline inside shell quotes is legal shell but would end the Dockerfile line; the renderer's line
  guard turns it into the two characters `\\n` (upstream's injection guard), and config validation
  rejects control characters in names and paths before that.
* Flag values (`--from=`, `--exclude=`, `--mount=…`) cannot be quoted in a Dockerfile; `flag_value`
  refuses anything that could split or end the flag instead of guessing.
"""

from __future__ import annotations

import json
import re


class UnsafeValue(ValueError):
    """A value that cannot be expressed safely in the target. Validation should have refused it earlier."""


_SHELL_SPECIAL = re.compile(r'[\\"`]|\$(?![A-Za-z_{])')
_SHELL_ALL = re.compile(r'[\\"`$]')
_FLAG_UNSAFE = re.compile(r"[\s,\"'\\\x00-\x1f\x7f]")  # also control characters (\s has only some)
_CONTINUATION = re.compile(r"\\[ \t]*$")
# One encoder for every value: json.dumps with an option builds a new one per call (a compile of the
# 50-variant config quotes 600 values).
_JSON_STRING = json.JSONEncoder(ensure_ascii=False).encode


def dockerfile_quote(value: str) -> str:
    """Quote `value` as a Dockerfile JSON string: `a "b"` → `"a \\"b\\""`; newline → `\\n`."""
    return _JSON_STRING(value)


def shell_quote(value: str, *, expand: bool = False) -> str:
    """Quote `value` as one POSIX shell word in double quotes; nothing expands unless `expand`."""
    pattern = _SHELL_SPECIAL if expand else _SHELL_ALL
    return '"' + pattern.sub(lambda m: "\\" + m.group(0), value) + '"'


def is_flag_safe(value: str) -> bool:
    """True if `value` can stand unquoted in a Dockerfile flag (config validation asks the same question)."""
    return bool(value) and not _FLAG_UNSAFE.search(value)


def flag_value(value: str) -> str:
    """Return `value` for use in an unquoted Dockerfile flag, or raise UnsafeValue."""
    if not is_flag_safe(value):
        raise UnsafeValue(f"{value!r} cannot be used in a Dockerfile flag")
    return value


def guard_line(line: str) -> str:
    """Keep one instruction on one line: escape raw CR/LF, refuse a trailing line-continuation backslash."""
    line = line.replace("\r", "\\r").replace("\n", "\\n")
    if _CONTINUATION.search(line):
        raise UnsafeValue(f"instruction would continue onto the next line: {line!r}")
    return line
