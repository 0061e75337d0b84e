"""Read a YAML document and remember where every node came from, so errors can say file:line and YAML path.

YAML 1.1 semantics (PyYAML's SafeLoader, like upstream's Go yaml.v2): unquoted `yes`/`no`/`on`/`off` are
booleans and bare numbers are numbers. JSON is accepted too. Duplicate mapping keys are refused (upstream
silently keeps the last one, which hides typos).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import yaml

from blubber.errors import ConfigError
from blubber.values import field, frozen

YamlPath = tuple[str | int, ...]

# libyaml's parser when available (about 10x faster); same YAML 1.1 semantics and marks.
_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BASE_LOADER):  # type: ignore[misc,valid-type]
    """SafeLoader whose scalar constructors cannot escape with a bare Python error.

    PyYAML's constructors trust the tag: `!!timestamp x`, `!!bool x`, `!!int ''` raise AttributeError,
    KeyError or IndexError instead of a YAML error. Re-raised as a ConstructorError at the node's mark.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> object:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError):
            value = node.value if isinstance(node, yaml.ScalarNode) else "…"
            raise yaml.constructor.ConstructorError(
                None, None, f"{value!r} is not a valid {_tag_name(node.tag)}", node.start_mark
            ) from None


def _tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


# How an error about the document as a whole names its YAML path.
TOP_LEVEL = "(top level)"


def format_path(path: YamlPath) -> str:
    """`("variants", "build", "copies", 0, "from")` → `variants.build.copies[0].from`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@frozen
class Source:
    """A loaded document: the plain data plus the 1-based line of every mapping key / list item.

    `lines` is worked out from the document's node tree when first asked for (an error, a policy
    violation, deployer's origin of a setting): a config that compiles cleanly never needs it, and
    walking the tree for it was about a tenth of loading the 50-variant config.
    """

    file: str
    data: object
    node: yaml.Node | None = field(default=None, compare=False)  # the composed document, for `lines`

    @cached_property
    def lines(self) -> dict[YamlPath, int]:
        """Path → line for every mapping key and list item (and `()` → the document's first line)."""
        lines: dict[YamlPath, int] = {}
        if self.node is not None:
            lines[()] = self.node.start_mark.line + 1
            _walk(self.node, (), lines, self.file, [0])  # parse() made sure this cannot fail
        return lines

    def line(self, path: YamlPath) -> int | None:
        """Line of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)  # an empty document: its first line

    def error(self, path: YamlPath, message: str, hint: str | None = None) -> ConfigError:
        """A ConfigError located at `path` in this document."""
        return ConfigError(
            message, file=self.file, line=self.line(path), path=format_path(path) or TOP_LEVEL, hint=hint
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
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data, plain = _construct(loader, node) if node is not None else (None, True)
        source = Source(file=file, data=data, node=node)
        if not plain:  # the walk may refuse it (a repeated key, too many nodes): find out now
            source.lines  # noqa: B018 (computed for its errors)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = " ".join(p for p in (e.context, e.problem) if p)
        hint = (
            "quote the value to make it a string (and drop any `!!tag` before it)"
            if isinstance(e, yaml.constructor.ConstructorError)
            else "check indentation, colons and quoting on this line and the one before"
        )
        path = format_path(path_at(text, mark.index)) if mark else ""
        raise ConfigError(
            f"invalid YAML: {problem}",
            file=file,
            line=mark.line + 1 if mark else None,
            path=path or TOP_LEVEL,
            hint=hint,
        ) from None
    except yaml.reader.ReaderError as e:
        # A character YAML does not allow (NUL, other control characters): no mark, only a position.
        line = text.count("\n", 0, e.position) + 1
        char = chr(e.character) if isinstance(e.character, int) else str(e.character)
        raise ConfigError(
            f"invalid YAML: unacceptable character {char!r} (control characters are not allowed)",
            file=file,
            line=line,
            # libyaml refuses the whole text before any event: find the path with the character blanked.
            path=format_path(path_at(text.replace(char, " "), e.position)) or TOP_LEVEL,
            hint="remove it, or write it as an escape in a double-quoted string",
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}", file=file) from None
    except (ValueError, TypeError, RecursionError) as e:
        # e.g. a timestamp out of range, or an unhashable (mapping) key
        raise ConfigError(f"invalid YAML: {e}", file=file) from None
    finally:
        loader.dispose()
    return source


_STR, _MAP, _SEQ = (f"tag:yaml.org,2002:{kind}" for kind in ("str", "map", "seq"))


class _Unusual(Exception):
    """Something the direct construction leaves to PyYAML (a recursive alias, another collection tag)."""


def _construct(loader: _Loader, root: yaml.Node) -> tuple[object, bool]:
    """PyYAML's construction of the document at `root`, about twice as fast for what configs are made of;
    and whether the document is plain: no alias, every mapping key a plain string and none repeated, not
    more than MAX_NODES nodes. Only a document that is not plain can fail the walk for `lines` (a
    repeated key, an alias bomb), so only that one is walked before it is handed on.

    PyYAML builds every node through generic, generator-based machinery (about a fifth of loading the
    50-variant config). Plain strings, mappings and lists are built here directly, every other scalar by the
    loader itself, aliases shared as PyYAML shares them. If anything else comes up, or anything fails, the
    document is built again by PyYAML alone, so its values and its errors (and which error comes first)
    are exactly PyYAML's.
    """
    built: dict[int, object] = {}
    open_: set[int] = set()
    unusual: list[str] = []  # why the document is not plain (empty: it is)

    def key_of(node: yaml.Node) -> object:
        unusual.append("key")
        return direct(node)

    def direct(node: yaml.Node) -> object:
        key = id(node)
        if key in built:  # an alias: the same object, as PyYAML gives
            unusual.append("alias")
            return built[key]
        if key in open_:
            raise _Unusual("recursive alias")
        kind, tag = node.__class__, node.tag
        value: object
        if kind is _SCALAR:
            value = node.value if tag == _STR else loader.construct_object(node)
        elif kind is _MAPPING and tag == _MAP:
            open_.add(key)
            pairs = node.value
            # A plain string key is its own text: no call, and equal texts are equal keys.
            value = {
                (k.value if k.__class__ is _SCALAR and k.tag == _STR else key_of(k)): direct(v)
                for k, v in pairs
            }
            if len(value) != len(pairs):
                unusual.append("repeated key")
            open_.discard(key)
        elif kind is _SEQUENCE and tag == _SEQ:
            open_.add(key)
            value = [direct(item) for item in node.value]
            open_.discard(key)
        else:
            raise _Unusual(tag)
        built[key] = value
        return value

    try:
        data = direct(root)
    except Exception:  # whatever it was, PyYAML meets it again and reports it as it always did
        loader.constructed_objects, loader.recursive_objects, loader.state_generators = {}, {}, []
        return loader.construct_document(root), False
    # `built` holds every node the walk counts (values and items) once: no alias, so none twice.
    return data, not unusual and len(built) <= MAX_NODES


_SCALAR, _MAPPING, _SEQUENCE = yaml.ScalarNode, yaml.MappingNode, yaml.SequenceNode


def path_at(text: str, index: int) -> YamlPath:
    """The YAML path being read at character `index`, from the parse events before it.

    Used for errors, where no node tree exists (a syntax error) or the tree is not mapped to paths yet.
    Events are re-read up to the error, which the parser reports again, so it is caught here.
    """
    frames: list[list] = []  # [is_mapping, key or index, expecting a key]

    def value_done() -> None:
        if frames:
            top = frames[-1]
            if top[0]:
                top[2] = True
            else:
                top[1] += 1

    try:
        for event in yaml.parse(text, Loader=_BASE_LOADER):
            if event.start_mark.index > index:
                break
            if isinstance(event, yaml.ScalarEvent | yaml.AliasEvent):
                if event.end_mark.index > index or event.start_mark.index == index:
                    break  # the error is in this scalar
                if frames and frames[-1][0] and frames[-1][2]:
                    frames[-1][1], frames[-1][2] = getattr(event, "value", "*"), False
                else:
                    value_done()
            elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                if frames and frames[-1][0] and frames[-1][2]:
                    frames[-1][1], frames[-1][2] = "?", False  # a complex key: no path for what is inside
                is_mapping = isinstance(event, yaml.MappingStartEvent)
                frames.append([is_mapping, None if is_mapping else 0, is_mapping])
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                frames.pop()
                value_done()
    except yaml.YAMLError:
        pass
    path: list[str | int] = []
    for is_mapping, at, expecting_key in frames:
        if is_mapping and expecting_key:
            break
        path.append(str(at) if is_mapping else at)
    return tuple(path)


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
