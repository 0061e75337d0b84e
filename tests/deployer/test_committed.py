"""deployer.committed: the one CI rule for uncommitted changes, as ship --ci and push --ci apply it."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.committed import require_committed
from deployer.errors import ExitCode, PolicyViolation, UncommittedChanges
from deployer.tools.git import Source


def test_a_committed_tree_passes():
    require_committed(Source(sha="a" * 40), Path("svc"), doing="ship")


def test_a_directory_outside_git_is_not_this_rules_business():
    require_committed(Source(sha=None), Path("svc"), doing="push")  # push refuses it itself (exit 14)


def test_uncommitted_changes_are_a_policy_violation_naming_five_paths_and_counting_the_rest():
    changed = tuple(f"svc/f{i}.py" for i in range(7))
    with pytest.raises(UncommittedChanges) as caught:
        require_committed(Source(sha="a" * 40, dirty_files=changed), Path("/src/svc"), doing="push")
    err = caught.value
    assert isinstance(err, PolicyViolation) and err.exit_code == ExitCode.POLICY == 11
    assert err.message == (
        "refusing to push uncommitted changes in CI mode: "
        "svc/f0.py, svc/f1.py, svc/f2.py, svc/f3.py, svc/f4.py and 2 more"
    )
    assert err.next_command == "git -C /src/svc status -- ."
