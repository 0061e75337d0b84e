"""Shared test rules.

A test that needs Docker, the registry or the cluster *fails* in CI when that part is missing
(CI=true), and skips locally so fast subsets stay usable.
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(part: str, available: bool, how_to_start: str) -> None:
    """Fail (CI) or skip (locally) when a real part the test needs is missing."""
    if available:
        return
    message = f"{part} is not available; start it with: {how_to_start}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
