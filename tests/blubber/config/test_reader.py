"""Reading layers: YAML → version → schema → names → typed parse → rules → defaults."""

from __future__ import annotations

import pytest

from blubber.config.common import Common
from blubber.config.reader import read, read_text
from blubber.config.runs import Runs
from blubber.errors import ConfigError
from tests.blubber.helpers import config


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("base: foo", '"version" is required', "add `version: v4` as the first line"),
        ("version: foo\nnewphone: whodis", 'config version "foo" is unsupported', "use `version: v4`"),
        ("version: vX", 'config version "vX" is unsupported', "use `version: v4`"),
        ("version: 4", 'config version "4" is unsupported', "use `version: v4`"),
        ("- version: v4", "expected a mapping at the top level, got a list", "start with `version: v4`"),
        ("", "expected a mapping at the top level, got null (empty)", "start with `version: v4`"),
    ],
)
def test_version_is_checked_first(text: str, message: str, hint: str) -> None:
    with pytest.raises(ConfigError) as e:
        read_text(text, "blubber.yaml")
    assert (e.value.message, e.value.hint, e.value.file) == (message, hint, "blubber.yaml")


def test_bad_variant_names() -> None:
    with pytest.raises(ConfigError) as e:
        config("variants:\n  build foo: {}\n  ci: {}\n  good: {}")
    assert [str(p).splitlines()[0] for p in e.value.problems] == [
        'blubber.yaml:3: variants.build foo: "build foo" is not a valid variant name',
        'blubber.yaml:4: variants.ci: "ci" is not a valid variant name',
    ]


def test_unknown_includes() -> None:
    with pytest.raises(ConfigError) as e:
        config("variants:\n  foo: {includes: [build, foobuild, foo_build, local]}\n  build: {}")
    assert [(p.path, p.message) for p in e.value.problems] == [
        ("variants.foo.includes[1]", 'references an unknown variant "foobuild"'),
        ("variants.foo.includes[2]", 'references an unknown variant "foo_build"'),
        ("variants.foo.includes[3]", '"local" is the build context, not a variant, and cannot be included'),
    ]
    assert e.value.problems[0].hint == "did you mean 'build'?"


def test_base_must_be_an_image_reference() -> None:
    with pytest.raises(ConfigError) as e:
        config("base: foo fighter")
    assert str(e.value) == (
        'blubber.yaml:2: base: "foo fighter" is not a valid image reference\n'
        "  hint: e.g. 127.0.0.1:5000/base/bookworm:12"
    )


def test_defaults_layering() -> None:
    policy_defaults = Common(
        runs=Runs("/srv/service", "runuser", 666, 666, None, {"APP_BASE_PATH": "/srv/service"})
    )
    cfg = config("runs: {uid: 1000, environment: {FOO: bar}}", defaults=policy_defaults)
    assert cfg.common.runs == Runs("/srv/service", "runuser", 1000, 666, None,
                                   {"APP_BASE_PATH": "/srv/service", "FOO": "bar"})  # fmt: skip
    assert cfg.common.lives.in_ == "/srv/app"
    assert cfg.raw_top.runs == Runs(uid=1000, environment={"FOO": "bar"})


def test_read_from_file(tmp_path) -> None:
    path = tmp_path / "blubber.yaml"
    path.write_text("version: v4\nvariants:\n  app: {}\n")
    cfg = read(path)
    assert (cfg.file, sorted(cfg.variants)) == (str(path), ["app"])
