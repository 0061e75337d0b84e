"""Include order, cycles, unknown variants, and the copies dependency graph."""

from __future__ import annotations

import pytest

from blubber.errors import ConfigError
from blubber.expand import Expander, includes_order
from tests.blubber.helpers import config, dockerfile


def test_include_order_is_post_order_with_first_position_kept() -> None:
    cfg = config(
        """
        variants:
          varA: {includes: [varB, varC]}
          varB: {includes: [varD, varE]}
          varC: {}
          varD: {includes: [varF]}
          varE: {}
          varF: {}
          top: {includes: [mid1, mid2]}
          mid1: {includes: [leaf1, leaf2]}
          mid2: {includes: [leaf2, leaf3]}
          leaf1: {}
          leaf2: {}
          leaf3: {}
        """
    )
    assert includes_order(cfg, "varA") == ["varF", "varD", "varE", "varB", "varC"]
    assert includes_order(cfg, "top") == ["leaf1", "leaf2", "mid1", "leaf3", "mid2"]


def test_duplicate_includes_are_ignored() -> None:
    cfg = config("variants:\n  aaa: {includes: [bbb, bbb]}\n  bbb: {}")
    assert includes_order(cfg, "aaa") == ["bbb"]


def test_include_cycle() -> None:
    with pytest.raises(ConfigError) as e:
        dockerfile("variants:\n  varA: {includes: [varB]}\n  varB: {includes: [varA]}", "varA")
    assert str(e.value) == (
        "blubber.yaml:4: variants.varB.includes: detected dependency graph cycle at 'varA' "
        "(includes: varA → varB → varA)\n  hint: remove one of the includes in this chain"
    )


def test_self_include_cycle() -> None:
    with pytest.raises(ConfigError) as e:
        dockerfile("variants:\n  varA: {includes: [varA]}", "varA")
    assert e.value.message == "detected dependency graph cycle at 'varA' (includes: varA → varA)"


def test_copies_cycle() -> None:
    with pytest.raises(ConfigError) as e:
        dockerfile("base: debian:bookworm\nvariants:\n  one: {copies: [two]}\n  two: {copies: [one]}", "one")
    assert e.value.message == "detected dependency graph cycle at 'one' (copies: one → two → one)"
    assert e.value.path == "variants.two.copies"


def test_unknown_variant() -> None:
    with pytest.raises(ConfigError) as e:
        dockerfile("variants:\n  build: {}\n  production: {}", "prodution")
    assert str(e.value) == (
        "blubber.yaml:2: variants: unknown variant 'prodution'\n  hint: did you mean 'production'?"
    )
    with pytest.raises(ConfigError) as e:
        dockerfile("variants:\n  build: {}", "zzz")
    assert e.value.hint == "defined variants: build"


@pytest.mark.parametrize(
    ("variants", "target", "stages"),
    [
        ("one: {copies: [local]}\n  two: {copies: [one]}\n  three: {copies: [two]}", "three", ["one", "two", "three"]),  # noqa: E501
        ("one: {}\n  two: {copies: [one]}\n  three: {includes: [two]}", "three", ["one", "three"]),
        ("build: {}\n  production: {copies: [{from: build}, {from: build, source: /x}]}", "production",
         ["build", "production"]),
        ("aaa: {}\n  bbb: {}\n  ccc: {copies: [bbb, aaa]}", "ccc", ["bbb", "aaa", "ccc"]),
        ("aaa: {}\n  bbb: {node: {requirements: [{from: aaa, source: /x}]}}", "bbb", ["aaa", "bbb"]),
        ("aaa: {}\n  bbb: {builder: {mounts: [aaa]}}", "bbb", ["aaa", "bbb"]),
        ("aaa: {}\n  bbb: {builders: [{custom: {requirements: [{from: aaa}]}}]}", "bbb", ["aaa", "bbb"]),
        ("solo: {}", "solo", ["solo"]),
    ],
)  # fmt: skip
def test_stage_order(variants: str, target: str, stages: list[str]) -> None:
    cfg = config(f"base: debian:bookworm\nvariants:\n  {variants}")
    assert Expander(cfg).stage_order(target) == stages
    text = dockerfile(f"base: debian:bookworm\nvariants:\n  {variants}", target)
    assert [line.split()[-1] for line in text.splitlines() if line.startswith("FROM")] == stages


def test_dependency_inherited_through_includes_gets_its_stage() -> None:
    # Quirk 6, fixed: upstream read `mid` raw, missed `leaf`, and emitted COPY --from=leaf without a leaf stage.  # noqa: E501
    variants = "leaf: {}\n  base2: {copies: [leaf]}\n  mid: {includes: [base2]}\n  top: {copies: [mid]}"
    cfg = config(f"base: debian:bookworm\nvariants:\n  {variants}")
    assert Expander(cfg).stage_order("top") == ["leaf", "mid", "top"]


def test_expanded_is_memoised_and_includes_are_not_carried() -> None:
    cfg = config("variants:\n  aaa: {}\n  bbb: {includes: [aaa]}")
    expander = Expander(cfg)
    assert expander.expand("bbb") is expander.expand("bbb")


def test_declared_builders_are_not_checked_again_but_merged_ones_are() -> None:
    cfg = config(
        """
        base: debian:bookworm
        builders: [{custom: {command: [make]}}, {python: {version: python3}}]
        variants:
          aaa: {builders: [{custom: {command: [make, aaa]}}]}
          bbb: {includes: [aaa], builders: [{python: {requirements: [r.txt]}}]}
        """
    )
    expander = Expander(cfg)
    entries = expander.expand("bbb").common.builders
    assert entries is not None and [e.kind for e in entries] == ["custom", "custom", "python"]
    declared = expander.declared_builders()
    # The two custom builders are the objects the file declared (checked when it was read); the python
    # one was merged from two declarations, so it is a new section and is checked on the expanded variant.
    assert [id(e.section) in declared for e in entries] == [True, True, False]


def test_a_declared_builder_s_mounts_are_still_checked_after_expansion() -> None:
    # The mount flags depend on the variables of the variant being built: checked after merging.
    with pytest.raises(ConfigError) as e:
        dockerfile(
            """
            base: debian:bookworm
            builders: [{custom: {command: [make], mounts: [{destination: $DIR}]}}]
            variants:
              aaa: {runs: {environment: {DIR: a b}}}
            """,
            "aaa",
        )
    assert e.value.path == "variants.aaa.builders[0].custom.mounts[0].destination"
    assert e.value.hint is not None and "found after merging" in e.value.hint
