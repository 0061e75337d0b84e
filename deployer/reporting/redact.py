"""Mask secrets in any text before it reaches a screen, a log or a report (STYLE 4.4).

Owns one process-wide set of registered secrets (registry password, tokens). Whoever loads a secret
registers it once with `register`; every writer of tool output, events and reports passes text through
`redact`. Besides registered values, a few shapes are always masked because they carry credentials
whatever their value: the password in a URL's user-info (`https://user:pw@host`), HTTP `Authorization:`
header values, and `password=`/`token=`-style assignments.

Never prints and never runs a process.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable, Sequence

__all__ = ["MASK", "clear", "redact", "redact_argv", "register", "registered"]

MASK = "********"
"""What a secret is replaced with."""

# Shorter values would mask ordinary words ("on", "1"); a real password or token is never this short.
_MIN_LENGTH = 4

_lock = threading.Lock()
_secrets: set[str] = set()

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host → keep the user, mask the password.
    (re.compile(r"(?P<keep>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:)[^/\s@]+(?=@)"), rf"\g<keep>{MASK}"),
    # Authorization: Basic xxx / Bearer xxx (headers echoed by curl -v, registry errors, ...).
    (
        re.compile(r"(?P<keep>\bAuthorization:\s*(?:Basic|Bearer|token)\s+)\S+", re.IGNORECASE),
        rf"\g<keep>{MASK}",
    ),
    # password=xxx, token: xxx, REGISTRY_PASSWORD=xxx, --password=xxx, "auth": "xxx" (docker config.json).
    # Not a JSON object or list after such a key (`"API_TOKEN":{"key":…}` in helm's --output json, a
    # secretEnv entry): that is structure, and masking its `{` would leave JSON nobody can parse.
    (
        re.compile(
            r"(?P<keep>(?:\b|_|-)(?:password|passwd|token|secret|auth)\"?\s*[=:]\s*\"?)(?!\*{8})"
            r"(?![{\[][\"{}\[\]])[^\s\"',;&]+",
            re.IGNORECASE,
        ),
        rf"\g<keep>{MASK}",
    ),
)


def register(secret: str | None, *, user: str | None = None) -> None:
    """Mask `secret` from now on in everything `redact` sees.

    With `user`, the base64 of `user:secret` is masked too: that is how Basic auth headers and docker's
    config.json carry it. Values shorter than 4 characters and None are ignored (masking them would
    mangle ordinary text).
    """
    if not secret or len(secret) < _MIN_LENGTH:
        return
    with _lock:
        _secrets.add(secret)
        if user:
            _secrets.add(base64.b64encode(f"{user}:{secret}".encode()).decode())


def registered() -> frozenset[str]:
    """The registered secrets (for tests and for tools that need to pass them on, never for printing)."""
    with _lock:
        return frozenset(_secrets)


def clear() -> None:
    """Forget every registered secret (tests)."""
    with _lock:
        _secrets.clear()


def redact(text: str) -> str:
    """`text` with every registered secret and every credential-shaped value replaced by `MASK`."""
    if not text:
        return text
    with _lock:
        # Longest first, so a secret that contains another is masked whole.
        secrets: Iterable[str] = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_argv(argv: Sequence[str]) -> list[str]:
    """Each argument redacted; the argument after `-p`/`--password`/`--token` is masked whatever it is."""
    out: list[str] = []
    mask_next = False
    for arg in argv:
        if mask_next:
            out.append(MASK)
            mask_next = False
            continue
        out.append(redact(arg))
        mask_next = arg in {"-p", "--password", "--token", "--client-secret"}
    return out
