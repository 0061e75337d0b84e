"""helm's failure, as the unit tests of deployer.tools.helm and its callers fake it (no helm process runs)."""

from __future__ import annotations

import pytest


class HelmSaid(Exception):
    """Stands in for command.ToolFailed: carries helm's stderr tail."""

    def __init__(self, stderr_tail: str) -> None:
        super().__init__(stderr_tail)
        self.stderr_tail = stderr_tail


@pytest.fixture(autouse=True)
def helm_failures_are_helm_said(monkeypatch: pytest.MonkeyPatch) -> None:
    """deployer.tools.helm treats `HelmSaid` as the failure of a helm process (autouse where imported)."""
    monkeypatch.setattr("deployer.tools.helm._tool_failed_type", lambda: HelmSaid)
