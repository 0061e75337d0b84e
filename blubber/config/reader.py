"""Read a config in layers, one function per layer (spec §2.1), keeping YAML line marks for every error:

YAML → version (checked first, so a bad version is reported even when other keys are unknown) → JSON Schema
(types, unknown keys) → variant names → typed parse → semantic rules → defaults (built-in, then the
policy's) merged under the top level.
"""

from __future__ import annotations

from pathlib import Path

from blubber import schema
from blubber.checks import CONFIG_VERSION, problem
from blubber.config._base import Checker
from blubber.config.common import COMMON_KEYS, Common
from blubber.config.root import BUILTIN_DEFAULTS, Config
from blubber.config.variant import Variant
from blubber.errors import ConfigError, raise_all
from blubber.source import Source, parse, read_file


def read(path: str | Path, *, defaults: Common | None = None, policy: object | None = None) -> Config:
    """Read and validate the config at `path`; `defaults` (a policy's) go under the file."""
    return read_text(read_file(path), str(path), defaults=defaults, policy=policy)


def read_text(
    text: str, file: str, *, defaults: Common | None = None, policy: object | None = None
) -> Config:
    """Same as `read`, from text (`file` names it in errors)."""
    source = parse(text, file)
    check_version(source)
    schema.check(source)
    data: dict = source.data  # type: ignore[assignment]
    variants_raw: dict = data.get("variants") or {}
    c = Checker(source, frozenset(variants_raw))
    for name in variants_raw:
        message = problem("variantname", name)
        if message:
            c.add(
                ("variants", name),
                message,
                "letter first, letters/digits/-/. inside, letter or digit last, 3+ long",
            )
    raise_all(c.problems)

    top = Common.parse({k: v for k, v in data.items() if k in COMMON_KEYS})
    variants = {name: Variant.parse(raw) for name, raw in variants_raw.items()}
    top.check(c, ())
    for name, variant in variants.items():
        variant.check(c, ("variants", name), (variants_raw[name] or {}).get("includes"))
    raise_all(c.problems)

    base = BUILTIN_DEFAULTS if defaults is None else BUILTIN_DEFAULTS.merge(defaults)
    return Config(source=source, common=base.merge(top), variants=variants, policy=policy, raw_top=top)


def check_version(source: Source) -> None:
    """The document is a mapping with `version: v4`."""
    data = source.data
    if not isinstance(data, dict):
        kind = schema.type_name(data)
        raise source.error((), f"expected a mapping at the top level, got {kind}", "start with `version: v4`")
    if "version" not in data or data["version"] in (None, ""):
        raise ConfigError(
            '"version" is required',
            file=source.file,
            line=1,
            path="version",
            hint="add `version: v4` as the first line",
        )
    version = data["version"]
    if version != CONFIG_VERSION:
        raise source.error(("version",), f'config version "{version}" is unsupported', "use `version: v4`")
