"""The one rule for uncommitted changes in CI mode, for every command that builds an image to ship.

In CI a ship (and a push) takes only what git has: the image's tags and the report name the commit, and
that commit must reproduce the image. A service directory with uncommitted changes is refused before
anything is built, as a policy violation (exit 11), whichever command was asked.
"""

from __future__ import annotations

from pathlib import Path

from deployer.errors import UncommittedChanges
from deployer.tools.git import Source

__all__ = ["require_committed"]

_LISTED = 5  # paths named in the message; the rest are counted


def require_committed(source: Source, directory: Path, *, doing: str) -> None:
    """Raise `UncommittedChanges` when `source` (git's view of `directory`) has uncommitted changes.

    `doing` is the verb of the command ("ship", "push"); paths are as git prints them (relative to the
    repository's root).
    """
    if not source.is_dirty:
        return
    changed = list(source.dirty_files)
    more = f" and {len(changed) - _LISTED} more" if len(changed) > _LISTED else ""
    raise UncommittedChanges(
        f"refusing to {doing} uncommitted changes in CI mode: {', '.join(changed[:_LISTED])}{more}",
        hint="commit them (CI ships what git has, so the report's git sha reproduces the image)",
        next_command=f"git -C {directory} status -- .",
    )
