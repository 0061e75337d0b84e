"""What git says about a service's source: the commit it is at and whether its files are changed.

Every call goes through `deployer.tools.command.run`. "Dirty" is judged for the service directory only
(tracked changes and untracked files not ignored), because only that directory goes into the image:
a change elsewhere in the repository does not make the image differ from the commit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from deployer.tools import command
from deployer.tools.command import ToolFailed

__all__ = ["GIT_BIN", "Source", "source"]

GIT_BIN = os.environ.get("DEPLOYER_GIT", "git")


@dataclass(frozen=True)
class Source:
    """The git state of a directory. `sha` is None when the directory is not in a git work tree."""

    sha: str | None
    dirty_files: tuple[str, ...] = ()

    @property
    def is_repo(self) -> bool:
        return self.sha is not None

    @property
    def is_dirty(self) -> bool:
        return bool(self.dirty_files)

    @property
    def short_sha(self) -> str | None:
        return self.sha[:12] if self.sha else None


def _git(directory: Path, *args: str) -> str:
    return command.run(
        "git",
        [GIT_BIN, "-C", str(directory), *args],
        # GIT_* from the caller's shell (GIT_DIR, GIT_WORK_TREE, ...) would point us at another repo.
        env={"GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"},
        timeout=60,
        missing_hint="install git (apt-get install git)",
    ).stdout


def source(directory: Path) -> Source:
    """The commit `directory` is at and the changed files under it (paths relative to the repository root)."""
    try:
        sha = _git(directory, "rev-parse", "--verify", "HEAD").strip()
    except ToolFailed:
        return Source(sha=None)  # not a work tree, or a repository without commits yet
    # -z: paths verbatim (no quoting of unusual names); "--" ".": only this directory.
    out = _git(directory, "status", "--porcelain=v1", "-z", "--untracked-files=normal", "--", ".")
    entries = [e for e in out.split("\0") if e]
    files: list[str] = []
    skip = False
    for entry in entries:
        if skip:  # the second path of a rename/copy record
            skip = False
            continue
        status, path = entry[:2], entry[3:]
        files.append(path)
        skip = "R" in status or "C" in status
    return Source(sha=sha, dirty_files=tuple(sorted(files)))
