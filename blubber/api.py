"""The public API other parts (deployer) use. Small on purpose; everything else is internal.

    config = load("svc/.pipeline/blubber.yaml", policy=p)  # validated, the policy's defaults applied
    text = compile_dockerfile(config, "production")         # policy enforcements checked first
    rt = runtime(config, "production")                      # user/uid/workdir/env/entrypoint of the image

Builds use the service directory as the docker build context (`docker build -f - <service dir>`).
"""

from __future__ import annotations

import gc

from blubber import compiler
from blubber.config.reader import read
from blubber.config.root import Config
from blubber.expand import Expander

TYPE_CHECKING = False  # not typing's: importing typing is a measurable part of a `blubber` process
if TYPE_CHECKING:
    from pathlib import Path

    from blubber.runtime_facts import Runtime, runtime

__all__ = ["Config", "Runtime", "compile_dockerfile", "load", "runtime"]


def __getattr__(name: str) -> object:
    # Runtime is a dataclass (deployer and its tests use dataclasses.replace on it); importing dataclasses
    # cost a `blubber` process, which never needs it, about 15 ms. So it comes from its module on first use.
    if name in ("Runtime", "runtime"):
        from blubber import runtime_facts

        return getattr(runtime_facts, name)
    raise AttributeError(f"module 'blubber.api' has no attribute {name!r}")


def load(config_path: str | Path, *, policy: str | Path | None = None) -> Config:
    """Read and validate a config; apply the policy's defaults. `policy=None` means no policy.

    As upstream Blubber, the compiler knows no default policy: which ops policy applies is the caller's
    choice (deployer takes it from the environment it ships to).

    Raises ConfigError (bad config or bad/unreadable policy file).
    """
    with _CollectorPaused():
        if policy is None:
            return read(config_path)
        from blubber import policy as policy_module  # a `blubber` process without --policy needs it not

        loaded = policy_module.load(policy)
        return read(config_path, defaults=loaded.defaults, policy=loaded)


def compile_dockerfile(config: Config, variant: str) -> str:
    """The Dockerfile for `variant`. Raises ConfigError (unknown variant, cycles) or PolicyViolation."""
    with _CollectorPaused():
        expander = Expander(config)  # one for the policy check and the compile: each variant expands once
        check_policy(config, variant, expander)
        return compiler.render(config, variant, expander)


class _CollectorPaused:
    """Python's cycle collector paused for a load or a compile, as it was before afterwards.

    Both build thousands of small objects (YAML nodes, values, instructions) that live until they return,
    so the collector, which runs every few hundred new objects, walked them again and again and found
    nothing to free: they hold no cycles and go by reference counting. That was about a seventh of loading
    and compiling the 50-variant config, measured over blocks of calls (the collector's deferred work
    inside). A caller that had paused it finds it still paused.
    """

    def __enter__(self) -> None:
        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *_: object) -> None:
        if self.was_enabled:
            gc.enable()


def check_policy(config: Config, variant: str, expander: Expander | None = None) -> None:
    """Run the config's policy enforcements against the expanded `variant` (no-op without a policy)."""
    if config.policy is not None:
        expander = expander or Expander(config)
        expander.validate(variant)
        config.policy.check(config, variant, expander)  # type: ignore[attr-defined]
