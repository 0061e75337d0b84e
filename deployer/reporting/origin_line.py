"""The one-line text of a failure's origin, the configuration line most likely responsible for it
(deployer/origin.py): the terminal summary, the JUnit message and `Origin.describe` all print it this way.

Reads the report's `origin` mapping (file, line, yaml_path, source, text, why), so the reporters need not
import the tracing itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["WHOSE", "describe"]

WHOSE = {
    "service": "set in the service's file",
    "policy": "the ops policy's default",
    "environment": "the environment's setting",
    "default": "deployer's built-in default",
}
"""How each layer an effective value can come from is said."""


def describe(origin: Mapping[str, Any]) -> str:
    """`deploy.yaml:7: probes.readiness.path is /never-ready (set in the service's file): why`.

    "is", not "=" or ":": redaction masks what follows `secret=` or `token:`, and the setting named may be
    `secretEnv.NAME.secret`, whose value is a Secret's name, not a secret."""
    file, line = origin.get("file"), origin.get("line")
    where = f"{file}:{line}: " if file and line else f"{file}: " if file else ""
    whose = WHOSE.get(str(origin.get("source")), str(origin.get("source")))
    return f"{where}{origin.get('yaml_path')} is {origin.get('text')} ({whose}): {origin.get('why')}"
