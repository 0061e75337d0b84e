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
    """The commit `directory` is at and the changed files under it (paths relative to the repository root).

    One `git status` says both (its `--branch` header carries the commit): a ship waits for it before
    it loads its config, and a second process (`git rev-parse HEAD`) cost 20-50 ms more there.
    """
    try:
        # -z: paths verbatim (no quoting of unusual names); "--" ".": only this directory.
        out = _git(
            directory, "status", "--porcelain=v2", "--branch", "-z", "--untracked-files=normal", "--", "."
        )
    except ToolFailed:
        return Source(sha=None)  # not a work tree
    sha: str | None = None
    files: list[str] = []
    skip = False
    for entry in out.split("\0"):
        if skip:  # the original path of a rename/copy record
            skip = False
            continue
        kind, _, rest = entry.partition(" ")
        if kind == "#":
            key, _, value = rest.partition(" ")
            if key == "branch.oid" and value != "(initial)":
                sha = value
        elif kind in _PATH_AFTER:  # changed (1), renamed or copied (2), unmerged (u), untracked (?)
            files.append(rest.split(" ", _PATH_AFTER[kind])[-1])
            skip = kind == "2"
    if sha is None:
        return Source(sha=None)  # a repository without commits yet
    return Source(sha=sha, dirty_files=tuple(sorted(files)))


# porcelain v2: how many space-separated fields come before the path, after the record's kind
_PATH_AFTER = {"1": 7, "2": 8, "u": 9, "?": 0}
