"""Value classes for the compiler's config sections and Dockerfile instructions, made without `dataclasses`.

    @frozen
    class Copy:
        sources: tuple[str, ...]
        from_: str | None = None
        excludes: dict[str, str] = field(default_factory=dict)

What `@dataclass(frozen=True)` gives, for what blubber uses: `__init__` taking the annotated fields in order
(defaults, `default_factory`), equality and hash over the fields (not the `compare=False` ones) and only
between instances of one class, the same hash and repr as a dataclass, assignment refused, `__match_args__`.
`@mutable` is the mutable kind (`@dataclass`: no hash, assignment allowed).

Why not dataclasses: a `blubber` process defines about 35 of these classes and compiles one small config.
Python 3.11's dataclass compiles six generated functions per frozen class (about 1 ms each class here) and
imports `inspect`; together about a quarter of the process's CPU. Here only `__init__` is generated (one
compile per class; an instance is built as fast as a dataclass's); the other methods are shared.
"""

from __future__ import annotations

from operator import attrgetter

TYPE_CHECKING = False  # not typing's: importing typing is a measurable part of a `blubber` process
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")

__all__ = ["FrozenInstanceError", "field", "fields", "frozen", "mutable"]

_MISSING = object()


class FrozenInstanceError(AttributeError):
    """Assigning to (or deleting) an attribute of a frozen value."""


class _Field:
    __slots__ = ("compare", "default", "default_factory")

    def __init__(self, default: object, default_factory: object, compare: bool) -> None:
        self.default, self.default_factory, self.compare = default, default_factory, compare


def field(
    *, default: Any = _MISSING, default_factory: Callable[[], Any] | Any = _MISSING, compare: bool = True
) -> Any:
    """A field's default (`default` or a `default_factory` called per instance) and whether it is compared."""
    return _Field(default, default_factory, compare)


def fields(obj: object) -> tuple[str, ...]:
    """The field names of a value class or instance, in order (empty for anything else)."""
    return getattr(obj, "__value_fields__", ())


def _repr(self: object) -> str:
    parts = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__value_fields__)  # type: ignore[attr-defined]
    return f"{self.__class__.__qualname__}({parts})"


def _eq(self: object, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented
    key = self.__value_key__  # type: ignore[attr-defined]
    return key(self) == key(other)


def _hash(self: object) -> int:
    return hash(self.__value_key__(self))  # type: ignore[attr-defined]


def _refuse(self: object, name: str, *_: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _key(names: list[str]) -> Callable[[object], tuple]:
    """A function returning the tuple of `names` of an instance (a dataclass hashes that same tuple)."""
    if not names:
        return lambda _: ()
    if len(names) == 1:
        get = attrgetter(names[0])
        return lambda obj: (get(obj),)
    return attrgetter(*names)


def _make(cls: type[T], frozen: bool) -> type[T]:
    names = list(cls.__dict__.get("__annotations__", {}))
    params, body, namespace = [], [], {"_MISSING": _MISSING}
    compared = []
    for name in names:
        declared = cls.__dict__.get(name, _MISSING)
        spec = declared if isinstance(declared, _Field) else _Field(declared, _MISSING, True)
        if spec.compare:
            compared.append(name)
        if spec.default_factory is not _MISSING:
            namespace[f"_factory_{name}"] = spec.default_factory
            params.append(f"{name}=_MISSING")
            body.append(f"    d[{name!r}] = _factory_{name}() if {name} is _MISSING else {name}")
        else:
            if spec.default is not _MISSING:
                namespace[f"_default_{name}"] = spec.default
                params.append(f"{name}=_default_{name}")
            else:
                params.append(name)
            body.append(f"    d[{name!r}] = {name}")
        if isinstance(declared, _Field):  # as dataclasses do: the class attribute is the default, if any
            if spec.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, spec.default)
    # The instance dict is written directly: the one way in, since a frozen value refuses __setattr__.
    source = "\n".join([f"def __init__(self, {', '.join(params)}):", "    d = self.__dict__", *body, ""])
    exec(compile(source, f"<value {cls.__qualname__}.__init__>", "exec"), namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[misc]
    cls.__value_fields__ = tuple(names)  # type: ignore[attr-defined]
    cls.__value_key__ = staticmethod(_key(compared))  # type: ignore[attr-defined]
    cls.__match_args__ = tuple(names)  # type: ignore[attr-defined]
    cls.__repr__ = _repr  # type: ignore[method-assign]
    cls.__eq__ = _eq  # type: ignore[method-assign,assignment]
    if frozen:
        cls.__hash__ = _hash  # type: ignore[method-assign,assignment]
        cls.__setattr__ = _refuse  # type: ignore[method-assign,assignment]
        cls.__delattr__ = _refuse  # type: ignore[method-assign,assignment]
    else:
        cls.__hash__ = None  # type: ignore[assignment]  # mutable and compared by value: unhashable
    return cls


def frozen(cls: type[T]) -> type[T]:
    """Class decorator: an immutable, hashable value class (`@dataclass(frozen=True)`)."""
    return _make(cls, frozen=True)


def mutable(cls: type[T]) -> type[T]:
    """Class decorator: a mutable value class, compared by value and unhashable (`@dataclass`)."""
    return _make(cls, frozen=False)
