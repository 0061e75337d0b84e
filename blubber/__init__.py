"""Blubber: compile a declarative YAML config (v4) into an optimised multi-stage Dockerfile.

Pure: never runs a process, never touches the network; the same input gives the same Dockerfile.
Public API: `load`, `compile_dockerfile`, `runtime`, `Runtime`, `DEFAULT_POLICY` (see blubber.api).
"""

from blubber.api import DEFAULT_POLICY, Config, Runtime, compile_dockerfile, load, runtime
from blubber.errors import ConfigError, PolicyViolation, UserError

__all__ = [
    "DEFAULT_POLICY",
    "Config",
    "ConfigError",
    "PolicyViolation",
    "Runtime",
    "UserError",
    "compile_dockerfile",
    "load",
    "runtime",
]
