"""What a POSIX shell would do with a RUN line, found without running it (for the injection test).

`scan(body)` walks the command the way sh reads it (quotes, backslashes, `$`, backticks, operators) and
reports what is *active*: control operators and redirections outside quotes, command substitutions,
parameter expansions, and which characters stand unquoted. The syntax itself is checked by `dash -n`
(see `syntax_errors`); this module only says where the compiler's quoting ends.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field

OPERATORS = ("&&", "||", ";;", ">>", "<<", ">&", "<&", "<>", ">|", "|", "&", ";", "<", ">", "(", ")")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-]")


@dataclass
class Scan:
    operators: list[str] = field(default_factory=list)
    substitutions: list[str] = field(default_factory=list)  # $(…), $((…)) and `…`
    parameters: list[str] = field(default_factory=list)  # $NAME, ${…}
    unquoted: set[int] = field(default_factory=set)  # indices of characters outside any quoting
    comment: str | None = None


def scan(body: str) -> Scan:
    s = Scan()
    i, quote, n = 0, None, len(body)
    while i < n:
        c = body[i]
        if quote == "'":
            quote = None if c == "'" else quote
            i += 1
        elif quote == '"':
            if c == "\\" and i + 1 < n and body[i + 1] in '$`"\\\n':
                i += 2
            elif c == '"':
                quote, i = None, i + 1
            elif c in "$`":
                i = _expansion(body, i, s)
            else:
                i += 1
        elif c == "\\":
            i += 2
        elif c in "'\"":
            quote, i = c, i + 1
        elif c in "$`":
            i = _expansion(body, i, s)
        elif c == "#" and (i == 0 or body[i - 1] in " \t;&|()"):
            s.comment = body[i:]
            break
        else:
            op = next((o for o in OPERATORS if body.startswith(o, i)), None)
            if op:
                s.operators.append(op)
                i += len(op)
            else:
                s.unquoted.add(i)
                i += 1
    return s


def _expansion(body: str, i: int, s: Scan) -> int:
    """Record the expansion starting at body[i] (`$` or a backtick); return the index after it."""
    if body[i] == "`":
        end = i + 1
        while end < len(body) and body[end] != "`":
            end += 2 if body[end] == "\\" else 1
        s.substitutions.append(body[i : end + 1])
        return end + 1
    rest = body[i + 1 :]
    if rest.startswith("("):
        depth, end = 0, i + 1
        while end < len(body):
            depth += {"(": 1, ")": -1}.get(body[end], 0)
            if depth == 0:
                break
            end += 1
        s.substitutions.append(body[i : end + 1])
        return end + 1
    if rest.startswith("{"):
        end = body.find("}", i)
        end = len(body) - 1 if end < 0 else end
        s.parameters.append(body[i : end + 1])
        return end + 1
    m = _NAME.match(rest)
    if m:
        s.parameters.append("$" + m.group(0))
        return i + 1 + len(m.group(0))
    return i + 1  # a lone `$` is literal


def unquoted_occurrence(body: str, scanned: Scan, marker: str) -> bool:
    """True if any character of any occurrence of `marker` in `body` stands outside quotes."""
    start = body.find(marker)
    while start >= 0:
        if any(k in scanned.unquoted for k in range(start, start + len(marker))):
            return True
        start = body.find(marker, start + 1)
    return False


SHELL = shutil.which("dash") or shutil.which("sh") or "sh"


def syntax_errors(bodies: list[str]) -> str:
    """`dash -n` over the commands, one per line: empty when every one parses."""
    result = subprocess.run(
        [SHELL, "-n"], input="\n".join(bodies) + "\n", capture_output=True, text=True, check=False
    )
    return "" if result.returncode == 0 else (result.stderr or f"exit {result.returncode}")
