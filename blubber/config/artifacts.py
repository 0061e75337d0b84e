"""Artifacts: `copies` items and `*.requirements` items, their shorthand forms, checks and COPY instructions.

Requirements (pre-install) are grouped by `from` then by normalized destination, one COPY per group, so a
dependency layer is rebuilt only when one of its input files changes (spec §4.7). Copies (install phase) are
one COPY per expanded entry, paths as written (spec §4.12).
"""

from __future__ import annotations

import posixpath

from blubber.checks import has_control_chars, is_imageref
from blubber.config._base import LOCAL, SHARED_LIB, Checker, StageContext
from blubber.dockerfile.instructions import Copy
from blubber.source import YamlPath
from blubber.values import frozen


@frozen
class Artifact:
    """Copy `source` from `from_` (local context, a variant or an image) to `destination`."""

    from_: str | None
    source: str | None = None
    destination: str | None = None
    exclude: tuple[str, ...] = ()

    @property
    def is_local(self) -> bool:
        return self.from_ == LOCAL


def _from_mapping(raw: dict) -> Artifact:
    return Artifact(
        from_=raw.get("from"),
        source=raw.get("source"),
        destination=raw.get("destination"),
        exclude=tuple(raw.get("exclude") or ()),
    )


def parse_requirements(raw: list | None) -> tuple[Artifact, ...] | None:
    """A string is a local file (`Makefile` ≡ `{from: local, source: Makefile}`); objects may be mixed in."""
    if raw is None:
        return None
    return tuple(Artifact(LOCAL, item) if isinstance(item, str) else _from_mapping(item) for item in raw)


def parse_copies(raw: list | None) -> tuple[Artifact, ...] | None:
    """A string is a `from` (`local`, a variant or an image): `build` ≡ `{from: build}`."""
    if raw is None:
        return None
    return tuple(Artifact(item) if isinstance(item, str) else _from_mapping(item) for item in raw)


def merge_copies(
    a: tuple[Artifact, ...] | None, b: tuple[Artifact, ...] | None
) -> tuple[Artifact, ...] | None:
    """A's entries equal to one of B's are dropped, then B's appended (re-declared entries move)."""
    if b is None:
        return a
    return tuple(x for x in (a or ()) if x not in b) + b


def check(c: Checker, items: tuple[Artifact, ...] | None, at: YamlPath, *, dedupe_field: str) -> None:
    """Validate artifact entries at `at` (a list path); `dedupe_field` names the list in messages."""
    if not items:
        return
    if len(set(items)) != len(items):
        c.add(at, "cannot contain duplicates", f"remove the repeated entry from {dedupe_field}")
    for i, item in enumerate(items):
        path = (*at, i)
        check_from(c, item.from_, (*path, "from"))
        if item.destination and not item.source:
            c.add((*path, "source"), 'is required if "destination" is also set')
        if item.source is not None:
            c.text(item.source, (*path, "source"), "path")
            if item.is_local and (
                item.source.startswith("/") or posixpath.normpath(item.source).startswith("..")
            ):
                c.add((*path, "source"), 'path must be relative when "from" is "local"')
        c.text(item.destination, (*path, "destination"), "path")
        for j, pattern in enumerate(item.exclude):
            if (
                not pattern
                or has_control_chars(pattern)
                or any(ch.isspace() or ch in ",\"'\\" for ch in pattern)
            ):
                c.add(
                    (*path, "exclude", j),
                    f'"{pattern}" cannot be used as an exclude pattern',
                    "no spaces or quotes",
                )


def check_from(c: Checker, origin: str | None, path: YamlPath) -> None:
    """`from` is `local`, a defined variant, or an image reference (rule `artifactfrom`)."""
    if not origin:
        c.add(path, "is required", "use local, a variant name or an image reference")
    elif origin == LOCAL or origin in c.variants:
        return
    elif not is_imageref(origin):
        c.add(
            path,
            f'"{origin}" is not a valid image reference or known variant',
            _variant_hint(origin, c.variants),
        )
    elif not any(ch in origin for ch in ":/@"):
        # Deviation from upstream: a bare word that is not a variant is almost always a typo of one, and
        # Docker would try to pull an image of that name. Images must be named with a tag, path or digest.
        c.add(path, f'unknown variant "{origin}"', _unknown_hint(origin, c.variants))


def _unknown_hint(name: str, variants: frozenset[str]) -> str:
    import difflib  # an error's hint only: not worth its import in every `blubber` process

    close = difflib.get_close_matches(name, sorted(variants), n=1)
    image = f"to copy from an image, name it with a tag, e.g. {name}:latest"
    return f"did you mean '{close[0]}'? ({image})" if close else f"define it under `variants`, or {image}"


def _variant_hint(name: str, variants: frozenset[str]) -> str | None:
    import difflib  # an error's hint only

    close = difflib.get_close_matches(name, sorted(variants), n=1)
    return f"did you mean '{close[0]}'?" if close else "name a variant defined under `variants`, or an image"


def dependencies(items: tuple[Artifact, ...] | None, variants: frozenset[str]) -> list[str]:
    """Variant names these artifacts copy from (image refs and `local` are not stage dependencies)."""
    return [a.from_ for a in items or () if a.from_ in variants]


def _clean(path: str) -> str:
    cleaned = posixpath.normpath(path)
    return "/" if cleaned == "//" else cleaned


def _is_dir(path: str) -> bool:
    return path.endswith("/") or _clean(path) == "."


def normalized_source(a: Artifact) -> str:
    """`foo/../bar//` → `bar/`; `.` → `./`; directories keep a trailing slash."""
    src = a.source or "."
    cleaned = _clean(src)
    return cleaned + "/" if _is_dir(src) and cleaned != "/" else cleaned


def normalized_destination(a: Artifact) -> str:
    """Where a requirement lands (spec §4.7): a file's own directory by default, `./` for top-level files."""
    src = a.source or "."
    if not a.destination:
        if _is_dir(src):
            return normalized_source(a)
        parent = posixpath.dirname(_clean(src))
        return "./" if parent in ("", ".") else (parent if parent == "/" else parent + "/")
    cleaned = _clean(a.destination)
    if cleaned != "/" and (_is_dir(a.destination) or _is_dir(src)):
        return cleaned + "/"
    return cleaned


def effective_destination(a: Artifact) -> str:
    """The file's path after the copy (used for pip `-r`): `{foo/bar → foo2/bar2/}` → `foo2/bar2/bar`."""
    dest = normalized_destination(a)
    src = normalized_source(a)
    if dest.endswith("/") and not src.endswith("/"):
        base = posixpath.basename(src)
        return base if dest == "./" else dest + base
    return dest


def _source_in(a: Artifact, ctx: StageContext, path: str) -> str:
    # Docker resolves a relative `COPY --from` source against `/`; upstream (HEAD) resolves it against the
    # source variant's working directory, and the acceptance scenarios rely on that (spec §4.17 #1).
    if a.from_ in ctx.workdirs and not path.startswith("/"):
        base = ctx.workdirs[a.from_]
        joined = posixpath.join(base, path)
        cleaned = posixpath.normpath(joined)
        return cleaned + "/" if path.endswith("/") and cleaned != "/" else cleaned
    return path


def requirement_copies(items: tuple[Artifact, ...] | None, ctx: StageContext) -> list[Copy]:
    """Group requirements by `from`, then by normalized destination (first-seen order): one COPY per group."""
    groups: dict[str, dict[str, list[Artifact]]] = {}
    for a in items or ():
        groups.setdefault(a.from_ or LOCAL, {}).setdefault(normalized_destination(a), []).append(a)
    copies = []
    for origin, by_dest in groups.items():
        for dest, members in by_dest.items():
            sources = tuple(_source_in(m, ctx, normalized_source(m)) for m in members)
            excludes = tuple(p for m in members for p in m.exclude)
            from_ = None if origin == LOCAL else origin
            copies.append(Copy(sources, dest, from_=from_, chown=ctx.chown, excludes=excludes))
    return copies


def copies_instructions(items: tuple[Artifact, ...] | None, ctx: StageContext, lives_in: str) -> list[Copy]:
    """One COPY per expanded `copies` entry (install phase)."""
    result = []
    for a in items or ():
        from_ = None if a.is_local else a.from_
        if a.source is None:
            # Shorthand: local → the whole context; a variant/image → this variant's lives.in and /opt/lib
            # (quirk 8, replicated: the *destination* variant's lives.in is used on both sides).
            pairs = [(".", ".")] if a.is_local else [(lives_in, lives_in), (SHARED_LIB, SHARED_LIB)]
        else:
            pairs = [(a.source, a.destination or a.source)]
        for src, dst in pairs:
            src = src if a.is_local else _source_in(a, ctx, src)
            result.append(Copy((src,), dst, from_=from_, chown=ctx.chown, excludes=a.exclude))
    return result
