"""Compile one variant of a validated config into Dockerfile text (or into instruction values).

Output: one stage per copies dependency (leaves first), then the requested variant's stage, each followed by
a blank line, then the `LABEL blubber.variant=… blubber.version=…` line.
Deterministic: same config, same text.
"""

from __future__ import annotations

from blubber.config._base import StageContext
from blubber.config.root import Config
from blubber.config.variant import stage
from blubber.dockerfile.instructions import Copy, Instruction, Label
from blubber.dockerfile.render import render_stage
from blubber.expand import Expanded, Expander

VERSION = "0.1.0"

# `COPY --exclude` is not in the Dockerfile frontend built into older engines (Docker 20.10 knows
# dockerfile 1.2); it is GA since dockerfile 1.19. The syntax line makes BuildKit fetch that frontend image,
# so a build using `exclude` needs it to be reachable (on an offline engine, use .dockerignore instead).
EXCLUDE_SYNTAX = "# syntax=docker/dockerfile:1.19\n"


def contexts(config: Config, expander: Expander, names: list[str]) -> dict[str, StageContext]:
    """A StageContext for each stage; `workdirs` covers every stage so cross-stage paths resolve."""
    expanded = {n: expander.validate(n) for n in names}
    workdirs = {n: e.common.lives.in_ for n, e in expanded.items()}
    return {n: _context(config, e, workdirs) for n, e in expanded.items()}


def _context(config: Config, e: Expanded, workdirs: dict[str, str]) -> StageContext:
    c = e.common
    variables = c.variables()
    return StageContext(
        name=e.name,
        variants=config.names,
        workdirs=workdirs,
        lives_uid=c.lives.uid,
        lives_gid=c.lives.gid,
        variables=variables,
        scratch=c.base is None,
    )


def stages(
    config: Config, variant: str, expander: Expander | None = None
) -> list[tuple[str, list[Instruction]]]:
    """(stage name, instructions) for every stage needed to build `variant`, in output order.

    `expander`: one already used on this config (its expansions are re-used)."""
    expander = expander or Expander(config)
    names = expander.stage_order(variant)
    ctxs = contexts(config, expander, names)
    return [(n, stage(expander.expand(n).common, expander.expand(n).copies, ctxs[n])) for n in names]


def render(config: Config, variant: str, expander: Expander | None = None) -> str:
    """The Dockerfile text for `variant`."""
    all_stages = stages(config, variant, expander)
    seen: dict[int, str] = {}  # all_stages keeps every instruction alive, so an id names one while here
    text = "".join(render_stage(instructions, seen) + "\n" for _, instructions in all_stages)
    label = Label((("blubber.variant", variant), ("blubber.version", VERSION)))
    uses_exclude = any(isinstance(i, Copy) and i.excludes for _, ins in all_stages for i in ins)
    return (EXCLUDE_SYNTAX if uses_exclude else "") + text + render_stage([label])
