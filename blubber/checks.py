"""One registry of named checks, shared by config validation and ops policies.

Each check has a name (upstream's validator tag), a predicate and one message template. Config sections call
`problem(name, value)`; policies use the same names in rules (`rule: imageref`).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from blubber.values import frozen

CONFIG_VERSION = "v4"

_VARIANT = r"^[a-zA-Z][a-zA-Z0-9\-.]+[a-zA-Z0-9]$"
# Upstream's last class is literally `[a-z-Az0-9]` (a-z, '-', 'A', 'z', 0-9): replicated (spec §2.8).
_USERNAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9\-.]+[a-z\-Az0-9]$")
_ENVVAR = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]+$")
_NODEENV = r"^[a-zA-Z0-9]+$"
_RELEASE = r"[a-zA-Z](?:[a-zA-Z0-9\-]*[a-zA-Z0-9]+)?"
_DEBVERSION = r"(?:[0-9]+:)?[0-9]+[a-zA-Z0-9.+\-~]*"
_DEBPACKAGE = rf"^[a-z0-9][a-z0-9+.\-]+(?:={_DEBVERSION}|/{_RELEASE})?$"
_DEBRELEASE = rf"^{_RELEASE}$"
_DEBCOMPONENT = r"^[a-z0-9][a-z0-9+./\-]+$"
# Characters an apt source or proxy URL may hold. Narrower than RFC 3986 on purpose: the URL is written
# into an apt.conf directive ("…";) and a sources.list line, where `"`, `;`, braces, quotes or whitespace
# would end the value and start a directive of the user's (apt runs them as root).
_URL_CHARS = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!&()*+,=%]+$")
_PYVER_ITEM = r"(?:<=|>=|==|!=|~=|<|>)[A-Za-z0-9\-_.*+!]+"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PYPKGVER = rf"^{_PYVER_ITEM}(?:,{_PYVER_ITEM})*$"

# Docker's image reference grammar (distribution/reference), anchored.
_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGEREF = re.compile(rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?$")


def is_abspath(value: object) -> bool:
    return isinstance(value, str) and value.startswith("/") and posixpath.normpath(value) not in ("/", "//")


def is_imageref(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 255 and bool(_IMAGEREF.match(value))


def is_httpurl(value: object) -> bool:
    if not isinstance(value, str) or not _URL_CHARS.match(value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _match(pattern: str) -> Callable[[object], bool]:
    """A check that a string matches `pattern`, compiled on first use: a config needs only some of them."""
    match: Callable[[str], object] | None = None

    def check(value: object) -> bool:
        nonlocal match
        if not isinstance(value, str):
            return False
        if match is None:
            match = re.compile(pattern).match
        return match(value) is not None

    return check


def is_envvars(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and _ENVVAR.match(k) for k in value)


def is_username(value: object) -> bool:
    return isinstance(value, str) and value != "root" and bool(_USERNAME.match(value))


@frozen
class Check:
    """A named predicate and its message; `{value}` in the template is the offending value."""

    name: str
    test: Callable[[object], bool]
    message: str


CHECKS: dict[str, Check] = {
    c.name: c
    for c in (
        Check("abspath", is_abspath, '"{value}" is not a valid absolute non-root path'),
        Check("imageref", is_imageref, '"{value}" is not a valid image reference'),
        Check("username", is_username, '"{value}" is not a valid user name'),
        Check("envvars", is_envvars, "contains invalid environment variable names"),
        Check("envvar", _match(_ENVVAR.pattern), '"{value}" is not a valid environment variable name'),
        Check("variantname", _match(_VARIANT), '"{value}" is not a valid variant name'),
        Check("nodeenv", _match(_NODEENV), '"{value}" is not a valid Node environment name'),
        Check("pypkgver", _match(_PYPKGVER), '"{value}" is not a valid Python package version specification'),
        Check("debianpackage", _match(_DEBPACKAGE), '"{value}" is not a valid Debian package name'),
        # Anchored (upstream's search matched any text containing a letter, quirk 2: fixed), so a value
        # cannot add `[trusted=yes]` or another word to the sources.list line.
        Check("debianrelease", _match(_DEBRELEASE), '"{value}" is not a valid Debian release name'),
        Check("debiancomponent", _match(_DEBCOMPONENT), '"{value}" is not a valid Debian component name'),
        Check(
            "httpurl",
            is_httpurl,
            '"{value}" is not a valid HTTP/HTTPS URL (no quotes, ";", braces, "$" or spaces)',
        ),
        Check("currentversion", lambda v: v == CONFIG_VERSION, 'config version "{value}" is unsupported'),
        Check("isfalse", lambda v: v is False or v is None, "must be false"),
        Check("istrue", lambda v: v is True, "must be true"),
    )
}


def problem(name: str, value: object) -> str | None:
    """Run check `name` on `value`: None when it passes, else the message."""
    check = CHECKS[name]
    return None if check.test(value) else check.message.format(value=value)


def has_control_chars(value: str) -> bool:
    """True if `value` has a character (newline, tab, NUL …) that never belongs in a name or path."""
    return _CONTROL.search(value) is not None
