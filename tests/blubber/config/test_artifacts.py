from __future__ import annotations

import pytest

from blubber.config.artifacts import (
    Artifact,
    copies_instructions,
    effective_destination,
    merge_copies,
    normalized_destination,
    normalized_source,
    requirement_copies,
)
from blubber.dockerfile.instructions import Copy
from blubber.errors import ConfigError
from tests.blubber.helpers import config, context

CHOWN = "$LIVES_UID:$LIVES_GID"
CTX = context(
    "base: debian:bookworm\nlives: {in: /app/dir}\nvariants:\n  foo: {}\n  bar: {}\n  app: {copies: [foo, bar]}"  # noqa: E501
)


def test_shorthands() -> None:
    v = config(
        "variants:\n  aaa: {copies: [local, bbb], node: {requirements: [x, {from: bbb, source: /y}]}}\n  bbb: {}"  # noqa: E501
    )
    assert v.variants["aaa"].copies == (Artifact("local"), Artifact("bbb"))
    assert v.variants["aaa"].common.node.requirements == (Artifact("local", "x"), Artifact("bbb", "/y"))


@pytest.mark.parametrize(
    ("source", "destination", "effective"),
    [
        ("foo/bar", "foo2/bar2", "foo2/bar2"),
        ("foo/bar/", "foo2/bar2", "foo2/bar2/"),
        ("foo/bar", "foo2/bar2/", "foo2/bar2/bar"),
        ("foo/bar", ".", "bar"),
        ("foo/bar", "/", "/bar"),
        ("/", "foo", "foo/"),
        ("/", "/", "/"),
    ],
)
def test_effective_destination(source: str, destination: str, effective: str) -> None:
    assert effective_destination(Artifact("local", source, destination)) == effective


def test_normalization() -> None:
    assert normalized_source(Artifact("local", "foo/../bar//")) == "bar/"
    assert normalized_source(Artifact("local", ".")) == "./"
    assert normalized_destination(Artifact("local")) == "./"
    assert normalized_destination(Artifact("local", "docs/requirements.txt")) == "docs/"
    assert normalized_destination(Artifact("x", "/srv/app/extra.txt")) == "/srv/app/"


def test_requirement_grouping() -> None:
    assert requirement_copies((Artifact("local", "foo"), Artifact("local", "bar")), CTX) == [
        Copy(("foo", "bar"), "./", chown=CHOWN)
    ]
    assert requirement_copies((Artifact("foo"),), CTX) == [
        Copy(("/app/dir/",), "./", from_="foo", chown=CHOWN)
    ]
    assert requirement_copies((Artifact("bar", "/foo", "/bar/"),), CTX) == [
        Copy(("/foo",), "/bar/", from_="bar", chown=CHOWN)
    ]


def test_twelve_entry_regression_list() -> None:
    names = [".git", "Makefile", "go.mod", "go.sum", "api/", "build/", "cmd/", "config/", "docker/", "meta/",
             "scripts/", "vendor/"]  # fmt: skip
    copies = requirement_copies(tuple(Artifact("local", n) for n in names), CTX)
    assert [(c.sources, c.destination) for c in copies] == [
        ((".git", "Makefile", "go.mod", "go.sum"), "./"),
        *[((d,), d) for d in names[4:]],
    ]


def test_directory_without_trailing_slash_is_flattened() -> None:
    # Quirk 20, replicated (Docker semantics): `vendor` is grouped with files into ./, so its *contents* land in  # noqa: E501
    # the working directory; `vendor/` keeps the directory.
    assert requirement_copies((Artifact("local", "Makefile"), Artifact("local", "vendor")), CTX) == [
        Copy(("Makefile", "vendor"), "./", chown=CHOWN)
    ]
    assert requirement_copies((Artifact("local", "vendor/"),), CTX) == [
        Copy(("vendor/",), "vendor/", chown=CHOWN)
    ]


def test_requirement_exclude_and_whole_context() -> None:
    assert requirement_copies((Artifact("local", exclude=("*.md",)),), CTX) == [
        Copy(("./",), "./", chown=CHOWN, excludes=("*.md",))
    ]


def test_copies_expansion() -> None:
    # Shorthand from a variant copies *this* variant's lives.in and /opt/lib (quirk 8, replicated).
    assert copies_instructions((Artifact("foo"),), CTX, "/app/dir") == [
        Copy(("/app/dir",), "/app/dir", from_="foo", chown=CHOWN),
        Copy(("/opt/lib",), "/opt/lib", from_="foo", chown=CHOWN),
    ]
    assert copies_instructions((Artifact("local"),), CTX, "/app/dir") == [Copy((".",), ".", chown=CHOWN)]
    # A relative source from another variant resolves against that variant's lives.in (quirk 7: HEAD).
    assert copies_instructions((Artifact("bar", "./baz/dir"),), CTX, "/app/dir") == [
        Copy(("/app/dir/baz/dir",), "./baz/dir", from_="bar", chown=CHOWN)
    ]
    image = "docker-registry.wikimedia.org/wikimedia/mediawiki:wmf-1.36.0-wmf.31"
    assert copies_instructions((Artifact(image, "/srv/mediawiki", "/srv/mw"),), CTX, "/app/dir") == [
        Copy(("/srv/mediawiki",), "/srv/mw", from_=image, chown=CHOWN)
    ]


def test_merge_copies() -> None:
    a = (Artifact("local"), Artifact("foo", "/app/dir", "/app"), Artifact("bar"))
    b = (Artifact("foo", "/app/dir", "/app"), Artifact("bar", "/some/dir", "/dir"))
    assert merge_copies(a, b) == (
        Artifact("local"), Artifact("bar"), Artifact("foo", "/app/dir", "/app"), Artifact("bar", "/some/dir", "/dir")  # noqa: E501
    )  # fmt: skip
    assert merge_copies(a, None) == a


@pytest.mark.parametrize(
    ("copies", "path", "message"),
    [
        ("[foo, bar, foo]", "variants.app.copies", "cannot contain duplicates"),
        ("[{from: build, source: /a, exclude: [bar]}, {from: build, source: /a, exclude: [bar]}]",
         "variants.app.copies", "cannot contain duplicates"),
        ("[{from: ~, source: /foo, destination: /bar}]", "variants.app.copies[0].from", "is required"),
        ("[{from: foo bar, source: /a}]", "variants.app.copies[0].from",
         '"foo bar" is not a valid image reference or known variant'),
        ("[{from: nope}]", "variants.app.copies[0].from", 'unknown variant "nope"'),
        ("[{from: build, destination: /bar}]", "variants.app.copies[0].source",
         'is required if "destination" is also set'),
        ("[{from: local, source: /bad/path, destination: ./foo}]", "variants.app.copies[0].source",
         'path must be relative when "from" is "local"'),
        ("[{from: local, source: ./funny/../../business}]", "variants.app.copies[0].source",
         'path must be relative when "from" is "local"'),
        ("[{from: local, exclude: ['a b']}]", "variants.app.copies[0].exclude[0]",
         '"a b" cannot be used as an exclude pattern'),
        ('[{from: local, source: "a\\nb"}]', "variants.app.copies[0].source",
         "path 'a\\nb' contains a control character (newline, tab …)"),
    ],
)  # fmt: skip
def test_errors(copies: str, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(f"variants:\n  build: {{}}\n  foo: {{}}\n  bar: {{}}\n  app:\n    copies: {copies}")
    assert (e.value.path, e.value.message) == (path, message)
    assert e.value.line == 7  # the copies line (version: v4 is line 1)


@pytest.mark.parametrize("entry", ["{from: build}", "{from: build, source: /bar}",
                                   "{from: local, source: ., destination: ./good/path}",
                                   "{from: local, source: ., destination: /good/path}",
                                   "{from: 'debian:bookworm', source: /etc/hosts}"])  # fmt: skip
def test_valid_entries(entry: str) -> None:
    assert config(f"variants:\n  build: {{}}\n  app: {{copies: [{entry}]}}").variants["app"].copies
