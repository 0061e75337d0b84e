"""deployer.tools.git.source against real throwaway repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deployer.tools import git


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    sh(tmp_path, "git", "init", "-q", "-b", "main")
    sh(tmp_path, "git", "config", "user.email", "t@example.invalid")
    sh(tmp_path, "git", "config", "user.name", "t")
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "app.js").write_text("1\n")
    (tmp_path / "other.txt").write_text("1\n")
    (tmp_path / ".gitignore").write_text("*.log\n")
    sh(tmp_path, "git", "add", ".")
    sh(tmp_path, "git", "commit", "-q", "-m", "init")
    return tmp_path


def test_clean_service_directory(repo):
    src = git.source(repo / "svc")
    assert src.sha == sh(repo, "git", "rev-parse", "HEAD").strip()
    assert src.is_repo
    assert not src.is_dirty
    assert src.short_sha == src.sha[:12]


def test_changes_in_the_service_directory_make_it_dirty(repo):
    (repo / "svc" / "app.js").write_text("2\n")
    (repo / "svc" / "new file.js").write_text("x\n")
    src = git.source(repo / "svc")
    assert src.dirty_files == ("svc/app.js", "svc/new file.js")


def test_changes_elsewhere_and_ignored_files_do_not(repo):
    (repo / "other.txt").write_text("2\n")
    (repo / "svc" / "debug.log").write_text("x\n")
    assert not git.source(repo / "svc").is_dirty


def test_a_rename_lists_the_new_path_once(repo):
    sh(repo, "git", "mv", "svc/app.js", "svc/main.js")
    assert git.source(repo / "svc").dirty_files == ("svc/main.js",)


def test_outside_git(tmp_path):
    (tmp_path / "plain").mkdir()
    src = git.source(tmp_path / "plain")
    assert src.sha is None
    assert not src.is_repo
    assert not src.is_dirty


def test_a_repository_without_commits(tmp_path):
    sh(tmp_path, "git", "init", "-q")
    assert git.source(tmp_path).sha is None


def test_a_deleted_and_a_staged_file_are_changes(repo):
    (repo / "svc" / "app.js").unlink()
    (repo / "svc" / "staged.js").write_text("x\n")
    sh(repo, "git", "add", "svc/staged.js")
    src = git.source(repo / "svc")
    assert src.sha == sh(repo, "git", "rev-parse", "HEAD").strip()
    assert src.dirty_files == ("svc/app.js", "svc/staged.js")


def test_a_detached_head_is_its_commit(repo):
    sha = sh(repo, "git", "rev-parse", "HEAD").strip()
    sh(repo, "git", "checkout", "-q", "--detach")
    assert git.source(repo / "svc").sha == sha
