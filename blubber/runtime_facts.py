"""What a deployment needs to know about the running image of a variant (`blubber.runtime`).

A module of its own: `Runtime` is a dataclass (callers use dataclasses.replace on it), and a `blubber`
process, which never asks for it, does not import dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass

from blubber.config.root import Config
from blubber.expand import Expander


@dataclass(frozen=True)
class Runtime:
    """What a deployment needs to know about the running image of a variant.

    `user`/`uid`/`gid`: the runs user, or the lives user when `insecure` (runs.insecurely); a scratch image
    has no users and runs as root (uid 0). `workdir`: runs.in, else lives.in ("/" for scratch).
    `environment`: runs.environment plus NODE_ENV when the node builder sets it.
    """

    variant: str
    base: str | None
    user: str
    uid: int
    gid: int
    workdir: str
    environment: dict[str, str]
    entrypoint: tuple[str, ...]
    insecure: bool


def runtime(config: Config, variant: str) -> Runtime:
    """The runtime facts of `variant`'s image. Raises ConfigError for an unknown variant."""
    e = Expander(config).validate(variant)
    c = e.common
    entrypoint = tuple(c.entrypoint or ())
    if c.base is None:
        return Runtime(variant, None, "root", 0, 0, "/", {}, entrypoint, False)
    insecure = c.runs.is_insecure
    owner = c.lives if insecure else c.runs
    env = dict(c.runs.environment)
    nodes = [c.node] + [b.section for b in c.builders or () if b.kind == "node"]
    for node in nodes:
        if node.requirements or node.env:
            env["NODE_ENV"] = node.env or ""
    return Runtime(
        variant=variant,
        base=c.base,
        user=owner.as_,
        uid=owner.uid,
        gid=owner.gid,
        workdir=c.runs.in_ or c.lives.in_,
        environment=dict(sorted(env.items())),
        entrypoint=entrypoint,
        insecure=insecure,
    )
