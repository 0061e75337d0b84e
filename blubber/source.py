"""Read a YAML document and remember where every node came from, so errors can say file:line and YAML path.

YAML 1.1 semantics (PyYAML's SafeLoader, like upstream's Go yaml.v2): unquoted `yes`/`no`/`on`/`off` are
booleans and bare numbers are numbers. JSON is accepted too. Duplicate mapping keys are refused (upstream
silently keeps the last one, which hides typos).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from blubber.errors import ConfigError

YamlPath = tuple[str | int, ...]

# libyaml's parser when available (about 10x faster); same YAML 1.1 semantics and marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def format_path(path: YamlPath) -> str:
    """`("variants", "build", "copies", 0, "from")` → `variants.build.copies[0].from`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@dataclass(frozen=True)
class Source:
    """A loaded document: the plain data plus the 1-based line of every mapping key / list item."""

    file: str
    data: object
    lines: dict[YamlPath, int]

    def line(self, path: YamlPath) -> int | None:
        """Line of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def error(self, path: YamlPath, message: str, hint: str | None = None) -> ConfigError:
        """A ConfigError located at `path` in this document."""
        return ConfigError(
            message, file=self.file, line=self.line(path), path=format_path(path) or None, hint=hint
        )


def read_file(path: str | Path) -> str:
    """Read a config file as UTF-8 text; any OS or decode problem is a ConfigError."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path), hint="check the path") from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a file", file=str(path)) from None
    except PermissionError:
        raise ConfigError("permission denied", file=str(path), hint="make the file readable") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text ({e.reason} at byte {e.start})", file=str(path)) from None
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror or e}", file=str(path)) from None


def parse(text: str, file: str) -> Source:
    """Parse YAML text into a Source; syntax errors become a ConfigError with the line of the problem."""
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
        lines: dict[YamlPath, int] = {}
        if node is not None:
            lines[()] = node.start_mark.line + 1
            _walk(node, (), lines, file, [0])
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = " ".join(p for p in (e.context, e.problem) if p)
        raise ConfigError(
            f"invalid YAML: {problem}",
            file=file,
            line=mark.line + 1 if mark else None,
            hint="check indentation, colons and quoting on this line and the one before",
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}", file=file) from None
    except (ValueError, TypeError, RecursionError) as e:
        # e.g. a timestamp out of range, or an unhashable (mapping) key
        raise ConfigError(f"invalid YAML: {e}", file=file) from None
    finally:
        loader.dispose()
    return Source(file=file, data=data, lines=lines)


# Aliases let a tiny document expand into a huge (or, with self-reference, infinite) tree.
MAX_NODES = 200_000


def _walk(node: yaml.Node, path: YamlPath, lines: dict[YamlPath, int], file: str, count: list[int]) -> None:
    count[0] += 1
    if count[0] > MAX_NODES:
        raise ConfigError(
            f"document too large: more than {MAX_NODES} nodes after expanding aliases",
            file=file,
            hint="remove recursive or deeply nested YAML aliases (&anchor / *alias)",
        )
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen and key != "<<":
                raise ConfigError(
                    f"duplicate key {key!r}",
                    file=file,
                    line=key_node.start_mark.line + 1,
                    path=format_path((*path, key)),
                    hint="each key may appear once per mapping; merge the two entries",
                )
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines, file, count)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _walk(item, (*path, index), lines, file, count)
