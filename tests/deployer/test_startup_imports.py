"""A `deployer` process imports only what its command needs (issue 14, item 6): checked in a fresh
interpreter, since this one has imported everything already."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# What `deployer ship` imports before its first build (the CLI, the workflow, the target, a display in CI
# mode); neither the terminal's live table (rich) nor the Kubernetes client (imported beside the test
# run, deployer.ship.context) is among it.
_SHIP_START = """
import json, sys
from deployer import cli, ship
from deployer.reporting.display import make_display
from deployer.target import resolve
make_display(ci=True, color=False)
resolve(None)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def _top_level_modules(code: str, where: Path) -> set[str]:
    # run where no deployer.yaml is found: the built-in target, as a service's repository without one
    argv = [sys.executable, "-c", code]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60, cwd=where)
    return set(json.loads(done.stdout))


def test_a_ship_in_ci_mode_starts_without_rich_or_the_kubernetes_client(tmp_path: Path) -> None:
    loaded = _top_level_modules(_SHIP_START, tmp_path)
    assert {"deployer", "blubber", "click"} <= loaded  # the check itself ran what a ship runs
    assert not loaded & {"rich", "kubernetes"}


def test_the_terminal_display_brings_rich(tmp_path: Path) -> None:
    code = "import io; " + _SHIP_START.replace("ci=True", "ci=False, stream=io.StringIO()")
    assert "rich" in _top_level_modules(code, tmp_path)
