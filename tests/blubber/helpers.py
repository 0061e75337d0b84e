"""Small helpers for blubber tests: inline YAML in, config / instructions / Dockerfile out."""

from __future__ import annotations

import textwrap
from pathlib import Path

from blubber import compiler
from blubber.config.reader import read_text
from blubber.config.root import Config
from blubber.dockerfile.phases import Phase
from blubber.dockerfile.render import render_instruction
from blubber.expand import Expander

# The ops policy deployer ships (the compiler itself knows no default policy).
OPS_POLICY = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"


def config(text: str, **kwargs) -> Config:
    """Read an inline (dedented) YAML config; `version: v4` is added when missing."""
    text = textwrap.dedent(text)
    if not any(line.startswith("version:") for line in text.splitlines()):
        text = "version: v4\n" + text
    return read_text(text, "blubber.yaml", **kwargs)


def dockerfile(text: str, variant: str, **kwargs) -> str:
    return compiler.render(config(text, **kwargs), variant)


def stage_lines(text: str, variant: str, stage: str | None = None) -> list[str]:
    """Rendered lines of one stage (default: the variant's own stage)."""
    for name, instructions in compiler.stages(config(text), variant):
        if name == (stage or variant):
            return [render_instruction(i) for i in instructions]
    raise AssertionError(f"no stage {stage or variant}")


def phase_lines(section, phase: Phase, ctx=None) -> list[str]:
    """Rendered instructions of one section for one phase."""
    return [render_instruction(i) for i in section.instructions(phase, ctx or context())]


def context(text: str = "base: debian:bookworm\nvariants: {app: {}}", variant: str = "app"):
    cfg = config(text)
    expander = Expander(cfg)
    return compiler.contexts(cfg, expander, expander.stage_order(variant))[variant]


def expanded(text: str, variant: str):
    return Expander(config(text)).expand(variant)
