from __future__ import annotations

import os

import pytest
import yaml

from blubber.errors import ConfigError
from blubber.source import _construct, _Loader, format_path, parse, read_file
from tests.blubber.mutate import mutants


def test_lines_for_every_key_and_item() -> None:
    s = parse("version: v4\nvariants:\n  app:\n    copies:\n      - local\n      - {from: x}\n", "f.yaml")
    assert s.line(("variants", "app", "copies", 1)) == 6
    assert s.line(("variants", "app", "copies", 1, "from")) == 6
    assert s.line(("variants", "app", "nothing", "here")) == 3  # nearest ancestor
    assert s.line(()) == 1


def test_format_path() -> None:
    assert format_path(("variants", "build", "copies", 0, "from")) == "variants.build.copies[0].from"
    assert format_path(()) == ""


def test_yaml_1_1_booleans_and_json() -> None:
    assert parse("a: yes\nb: off\nc: 010", "f").data == {"a": True, "b": False, "c": 8}
    assert parse('{"version": "v4"}', "f").data == {"version": "v4"}


# Messages from libyaml (the C parser PyYAML uses when available; the same one upstream's Go parser ports).
@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a: b: c", 1, "invalid YAML: mapping values are not allowed in this context"),
        ("a:\n  - b\n c: d", 3, "invalid YAML: while parsing a block mapping did not find expected key"),
        ("a: [b", 2, "invalid YAML: while parsing a flow sequence did not find expected ',' or ']'"),
        ("a: *nothing", 1, "invalid YAML: found undefined alias"),
    ],
)
def test_syntax_errors(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(text, "f.yaml")
    assert (e.value.file, e.value.line, e.value.message) == ("f.yaml", line, message)
    assert e.value.hint


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(ConfigError) as e:
        parse("version: v4\nbase: a\nbase: b\n", "f.yaml")
    assert str(e.value) == (
        "f.yaml:3: base: duplicate key 'base'\n  hint: each key may appear once per mapping; merge the two entries"  # noqa: E501
    )


def test_alias_bombs_and_recursion_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for name, prev in zip("bcdefgh", "abcdefg", strict=True):
        bomb += f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]\n"
    with pytest.raises(ConfigError) as e:
        parse(bomb, "f")
    assert e.value.message.startswith("document too large")
    with pytest.raises(ConfigError):
        parse("a: &a [*a]", "f")


def test_empty_document() -> None:
    assert parse("", "f").data is None


def test_unreadable_files(tmp_path) -> None:
    with pytest.raises(ConfigError) as e:
        read_file(tmp_path / "missing.yaml")
    assert e.value.message == "file not found"
    with pytest.raises(ConfigError) as e:
        read_file(tmp_path)
    assert e.value.message == "is a directory, not a file"
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"version: v4\n\xff\xfe")
    with pytest.raises(ConfigError) as e:
        read_file(binary)
    assert e.value.message == "not UTF-8 text (invalid start byte at byte 12)"
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.yaml"
        locked.write_text("version: v4")
        locked.chmod(0)
        with pytest.raises(ConfigError) as e:
            read_file(locked)
        assert e.value.message == "permission denied"


@pytest.mark.parametrize(
    ("text", "line", "path", "message"),
    [
        ("version: v4\nbase: !!timestamp x\n", 2, "base", "'x' is not a valid !!timestamp"),
        ("version: v4\nbase: !!bool x\n", 2, "base", "'x' is not a valid !!bool"),
        ("version: v4\nvariants:\n  app:\n    entrypoint: [a, !!int '']\n", 4, "variants.app.entrypoint[1]",
         "'' is not a valid !!int"),
        ("version: v4\nruns:\n  uid: !!float ''\n", 3, "runs.uid", "'' is not a valid !!float"),
    ],
)  # fmt: skip
def test_mistagged_scalars_are_located_config_errors(text: str, line: int, path: str, message: str) -> None:
    # PyYAML's constructors raised AttributeError / KeyError / IndexError for these (an internal error).
    with pytest.raises(ConfigError) as e:
        parse(text, "f.yaml")
    assert (e.value.file, e.value.line, e.value.path) == ("f.yaml", line, path)
    assert e.value.message == f"invalid YAML: {message}"
    assert e.value.hint == "quote the value to make it a string (and drop any `!!tag` before it)"


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("version: v4\nvariants:\n  build:\n    apt: {packages: [a, b}\n", "variants.build.apt.packages[2]"),
        ("a: [b", "a[1]"),
        ("- x\n- {y: *nothing}\n", "[1].y"),
        ("a: b: c", "(top level)"),
    ],
)
def test_syntax_errors_name_the_yaml_path_being_read(text: str, path: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(text, "f.yaml")
    assert e.value.path == path


def test_a_control_character_is_located() -> None:
    # PyYAML's ReaderError has no mark: the error had neither line nor path.
    with pytest.raises(ConfigError) as e:
        parse("version: v4\nbase: a\x00b\n", "f.yaml")
    assert (e.value.line, e.value.path) == (2, "base")
    assert e.value.message.startswith("invalid YAML: unacceptable character '\\x00'")


def _build(text: str, direct: bool) -> tuple[str, object]:
    """("ok", data) or ("error", message) of constructing `text` directly or by PyYAML's own construction."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return ("ok", _construct(loader, node)[0] if direct else loader.construct_document(node))
    except yaml.YAMLError as e:
        return ("error", str(e))
    finally:
        loader.dispose()


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: [yes, no, ~, 1.5, 0x1F, '2', !!str 3]\nc: {d: e}\n",
        "base: &b {x: [1, 2]}\none: *b\ntwo: *b\n",
        "base: &b {x: 1}\nmerged: {<<: *b, y: 2}\n",  # a merge key: left to PyYAML
        "s: !!set {a, b}\no: !!omap [{a: 1}]\nd: 2001-12-14\nbin: !!binary aGk=\n",
        "? [complex, key]\n: v\n",  # unhashable key: PyYAML's error
        "a: !!int x\nb: !!float y\n",  # two bad scalars: PyYAML's first
        "r: &r [*r]\n",  # recursive alias
        "a: !custom x\n",
    ],
)
def test_direct_construction_is_pyyaml_s(text: str) -> None:
    assert repr(_build(text, direct=True)) == repr(_build(text, direct=False))


def test_direct_construction_on_mutated_configs() -> None:
    for index, text in enumerate(mutants(seed=14, count=400)):
        assert repr(_build(text, direct=True)) == repr(_build(text, direct=False)), (index, text)


def test_aliases_are_shared_as_pyyaml_shares_them() -> None:
    data = parse("a: &x {k: [1]}\nb: *x\n", "f.yaml").data
    assert data["a"] is data["b"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("version: v4\nvariants:\n  a: {copies: [local], includes: [b]}\n  b: {}\n", True),
        ("a: &x [1]\nb: *x\n", False),  # an alias: the walk counts its nodes again
        ("a: 1\na: 2\n", False),  # a repeated key
        ('"1": a\n1: b\n', False),  # a key that is not a plain string (same text, other value)
        ("yes: a\ntrue: b\n", False),  # two texts, one value
        ("base: &b {x: 1}\nmerged: {<<: *b, y: 2}\n", False),  # built by PyYAML
    ],
)
def test_only_a_plain_document_is_left_unwalked(text: str, plain: bool) -> None:
    loader = _Loader(text)
    try:
        assert _construct(loader, loader.get_single_node())[1] is plain
    finally:
        loader.dispose()


def test_lines_worked_out_later_are_the_walk_s() -> None:
    # A plain document's lines are computed on first use; the same as a document walked at once.
    text = "version: v4\nvariants:\n  app:\n    copies:\n      - local\n      - {from: x}\n"
    walked = parse(text + "anchor: &a [1]\nalias: *a\n", "f.yaml")
    lazy = parse(text, "f.yaml")
    assert "lines" not in lazy.__dict__ and "lines" in walked.__dict__
    assert lazy.lines == {k: v for k, v in walked.lines.items() if k[:1] not in (("anchor",), ("alias",))}
    assert lazy.line(("variants", "app", "copies", 1, "from")) == 6


def test_a_repeated_key_inside_a_plain_looking_document_is_still_refused() -> None:
    # `"1"` and `1` are different keys to Python but the same text to a reader of the file.
    with pytest.raises(ConfigError) as e:
        parse('version: v4\nx:\n  "1": a\n  1: b\n', "f.yaml")
    assert (e.value.line, e.value.path, e.value.message) == (4, "x.1", "duplicate key '1'")
