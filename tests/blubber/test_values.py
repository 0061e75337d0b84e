"""blubber.values' classes behave as @dataclass(frozen=True) does, for what the compiler uses."""

from __future__ import annotations

import dataclasses

import pytest

from blubber.values import FrozenInstanceError, field, fields, frozen, mutable


@frozen
class Point:
    """A docstring."""

    x: int
    y: int = 2
    tags: dict[str, str] = field(default_factory=dict)
    note: str = field(default="", compare=False)

    @property
    def total(self) -> int:
        return self.x + self.y


@dataclasses.dataclass(frozen=True)
class Reference:
    x: int
    y: int = 2
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    note: str = dataclasses.field(default="", compare=False)


@frozen
class Other:
    x: int
    y: int = 2


@frozen
class Single:
    only: tuple[str, ...]


@mutable
class Mutable:
    items: list[int] = field(default_factory=list)


def test_init_defaults_and_factories() -> None:
    p = Point(1)
    assert (p.x, p.y, p.tags, p.note, p.total) == (1, 2, {}, "", 3)
    assert Point(1).tags is not Point(1).tags  # one dict per instance
    assert Point(1, 3, {"a": "b"}, note="n") == Point(x=1, y=3, tags={"a": "b"})
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, z=3)  # type: ignore[call-arg]


def test_class_attributes_as_dataclasses_leave_them() -> None:
    assert Point.y == Reference.y == 2
    assert Point.note == Reference.note == ""
    assert not hasattr(Point, "tags") and not hasattr(Reference, "tags")


def test_repr_eq_and_hash_as_a_dataclass() -> None:
    ours, theirs = Point(1, 5, note="x"), Reference(1, 5, note="x")
    assert repr(ours).removeprefix("Point") == repr(theirs).removeprefix("Reference")
    assert Point(1, 5, note="a") == Point(1, 5, note="b")  # compare=False
    assert Point(1, 5) != Point(1, 6)
    assert Point(1) != Other(1) and Point(1).__eq__(1) is NotImplemented
    assert hash(Other(1, 5)) == hash(dataclasses.make_dataclass("O", ["x", "y"], frozen=True)(1, 5))
    assert hash(Single(("a",))) == hash((("a",),))
    with pytest.raises(TypeError):
        hash(Point(1))  # a dict field, as with a dataclass
    assert Single(("a",)).__match_args__ == ("only",)
    assert fields(Point) == fields(Point(1)) == ("x", "y", "tags", "note") and fields(1) == ()


def test_frozen_and_mutable() -> None:
    p = Point(1)
    with pytest.raises(FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del p.x  # type: ignore[misc]
    with pytest.raises(AttributeError):
        p.new = 1  # type: ignore[attr-defined]
    m = Mutable()
    m.items.append(1)
    m.items = [2]
    assert m == Mutable([2]) and Mutable.__hash__ is None
