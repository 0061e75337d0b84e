"""Blubber: compile a declarative YAML config (v4) into an optimised multi-stage Dockerfile.

Pure: never runs a process, never touches the network; the same input gives the same Dockerfile.
Public API: `load`, `compile_dockerfile`, `runtime`, `Runtime` (see blubber.api).
The names are loaded on first use (PEP 562), so `import blubber.errors` or `blubber --help` does not pay
for the whole compiler.
"""

from __future__ import annotations

# Not `from typing import TYPE_CHECKING`: importing typing is a measurable part of `blubber --help`.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from blubber.api import Config, compile_dockerfile, load
    from blubber.errors import ConfigError, PolicyViolation, UserError
    from blubber.runtime_facts import Runtime, runtime

_HOME = {
    "Config": "blubber.api",
    "Runtime": "blubber.runtime_facts",
    "compile_dockerfile": "blubber.api",
    "load": "blubber.api",
    "runtime": "blubber.runtime_facts",
    "ConfigError": "blubber.errors",
    "PolicyViolation": "blubber.errors",
    "UserError": "blubber.errors",
}

__all__ = [
    "Config",
    "ConfigError",
    "PolicyViolation",
    "Runtime",
    "UserError",
    "compile_dockerfile",
    "load",
    "runtime",
]


def __getattr__(name: str) -> object:
    if name not in _HOME:
        raise AttributeError(f"module 'blubber' has no attribute {name!r}")
    # __import__ with a fromlist returns the submodule itself; importlib would be one more import at start.
    value = getattr(__import__(_HOME[name], fromlist=[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value
