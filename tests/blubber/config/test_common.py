from __future__ import annotations

from blubber.config.common import Common
from tests.blubber.helpers import expanded


def test_worked_merge_example_from_the_spec() -> None:
    e = expanded(
        """
        lives: {as: appuser, uid: 1000}
        variants:
          aaa: {lives: {gid: 2000}, runs: {environment: {AA: xx}}}
          bbb: {includes: [aaa], runs: {environment: {BB: yy}}, entrypoint: [a]}
          ccc: {includes: [bbb], entrypoint: [c], runs: {as: runner, environment: {AA: zz}}}
        """,
        "ccc",
    )
    c = e.common
    assert (c.lives.as_, c.lives.uid, c.lives.gid) == ("appuser", 1000, 2000)
    assert (c.runs.as_, c.runs.environment, c.entrypoint) == ("runner", {"AA": "zz", "BB": "yy"}, ("c",))


def test_base_cannot_be_reset_to_scratch() -> None:
    # Quirk 9, replicated: `base: ~` means "not set", so the inherited base stays.
    assert (
        expanded("base: debian:bookworm\nvariants:\n  app: {base: ~}", "app").common.base == "debian:bookworm"
    )
    assert expanded("variants:\n  app: {}", "app").common.base is None


def test_entrypoint_replaced_even_by_empty_list() -> None:
    assert Common(entrypoint=("a",)).merge(Common(entrypoint=())).entrypoint == ()
    assert Common(entrypoint=("a",)).merge(Common()).entrypoint == ("a",)


def test_last_include_wins() -> None:
    e = expanded(
        """
        variants:
          lizardman: {includes: [human, lizard]}
          human: {base: moral, includes: [mammal]}
          mammal: {base: neutral}
          lizard: {base: immoral}
        """,
        "lizardman",
    )
    assert e.common.base == "immoral"


def test_shared_includes_apply_once() -> None:
    e = expanded(
        """
        apt: {packages: [top]}
        variants:
          aaa: {apt: {packages: [pa]}}
          bbb: {includes: [aaa], apt: {packages: [pb]}}
          ccc: {includes: [bbb, aaa], apt: {packages: [pc]}}
        """,
        "ccc",
    )
    assert e.common.apt.packages == {"default": ("top", "pa", "pb", "pc")}
