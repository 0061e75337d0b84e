"""deployer.rollout.probes: the readiness grace from a container's own probe settings."""

from __future__ import annotations

import pytest

from deployer.rollout.probes import probe_window, readiness_grace


@pytest.mark.parametrize(
    ("probe", "window"),
    [
        ({}, 0 + 10 * 3 + 1),  # the API server's defaults
        (
            {"initialDelaySeconds": 5, "periodSeconds": 2, "failureThreshold": 4, "timeoutSeconds": 3},
            5 + 8 + 3,
        ),
        ({"periodSeconds": 1, "failureThreshold": 1, "timeoutSeconds": 1}, 2),
    ],
)
def test_probe_window(probe: dict, window: int) -> None:
    assert probe_window(probe) == window


def test_no_probe_no_grace() -> None:
    assert readiness_grace({"name": "app"}) == 0.0


def test_readiness_adds_one_period_of_slack() -> None:
    probe = {"initialDelaySeconds": 5, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 1}
    assert readiness_grace({"readinessProbe": probe}) == 5 + 30 + 1 + 10


def test_startup_probe_window_comes_first() -> None:
    startup = {"periodSeconds": 5, "failureThreshold": 12, "timeoutSeconds": 1}
    readiness = {"periodSeconds": 1, "failureThreshold": 2, "timeoutSeconds": 1}
    assert readiness_grace({"startupProbe": startup, "readinessProbe": readiness}) == (60 + 1) + (2 + 1 + 1)
