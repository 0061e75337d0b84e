"""Runtime facts (what `blubber.runtime` returns) for tests that render charts without compiling a config."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from blubber import Runtime


def node_hello_runtime(**changes: Any) -> Runtime:
    """blubber's runtime facts for a node-hello-like production variant, with `changes` applied."""
    facts = Runtime(
        variant="production",
        base="127.0.0.1:5000/base/nodejs:12",
        user="runuser",
        uid=900,
        gid=900,
        workdir="/srv/app",
        environment={"NODE_ENV": "production"},
        entrypoint=("node", "server.js"),
        insecure=False,
    )
    return replace(facts, **changes)
