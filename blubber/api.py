"""The public API other parts (deployer) use. Small on purpose; everything else is internal.

    config = load("svc/.pipeline/blubber.yaml", policy=p)  # validated, the policy's defaults applied
    text = compile_dockerfile(config, "production")         # policy enforcements checked first
    rt = runtime(config, "production")                      # user/uid/workdir/env/entrypoint of the image

Builds use the service directory as the docker build context (`docker build -f - <service dir>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from blubber import compiler
from blubber.config.reader import read
from blubber.config.root import Config
from blubber.expand import Expander

__all__ = ["Config", "Runtime", "compile_dockerfile", "load", "runtime"]


def load(config_path: str | Path, *, policy: str | Path | None = None) -> Config:
    """Read and validate a config; apply the policy's defaults. `policy=None` means no policy.

    As upstream Blubber, the compiler knows no default policy: which ops policy applies is the caller's
    choice (deployer takes it from the environment it ships to).

    Raises ConfigError (bad config or bad/unreadable policy file).
    """
    if policy is None:
        return read(config_path)
    from blubber import policy as policy_module  # a `blubber` process without --policy does not need it

    loaded = policy_module.load(policy)
    return read(config_path, defaults=loaded.defaults, policy=loaded)


def compile_dockerfile(config: Config, variant: str) -> str:
    """The Dockerfile for `variant`. Raises ConfigError (unknown variant, cycles) or PolicyViolation."""
    expander = Expander(config)  # one for the policy check and the compile: each variant expands once
    check_policy(config, variant, expander)
    return compiler.render(config, variant, expander)


def check_policy(config: Config, variant: str, expander: Expander | None = None) -> None:
    """Run the config's policy enforcements against the expanded `variant` (no-op without a policy)."""
    if config.policy is not None:
        expander = expander or Expander(config)
        expander.validate(variant)
        config.policy.check(config, variant, expander)  # type: ignore[attr-defined]


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
