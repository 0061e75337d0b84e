"""How long a started container may stay not-ready before that counts as a failure, from its own probes.

A constant would be wrong both ways: too short for an app that declares a 60 s initial delay, too long for
one that probes every second. Instead, the grace is the time the kubelet itself would need to give up on a
healthy-but-slow container under the probe settings the pod declares, plus one probe period of slack.
Defaults are the API server's (periodSeconds 10, timeoutSeconds 1, failureThreshold 3), and the API
server fills them in, so recorded objects always carry them.
"""

from __future__ import annotations

from typing import Any

# The API server's defaults for a probe's fields (core/v1 SetDefaults_Probe).
_DEFAULTS = {"initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 1, "failureThreshold": 3}


def _field(probe: dict[str, Any], key: str) -> int:
    value = probe.get(key)
    return int(value) if value is not None else _DEFAULTS[key]


def probe_window(probe: dict[str, Any]) -> int:
    """Seconds from container start until the kubelet has seen `failureThreshold` consecutive failures.

    initialDelaySeconds  the kubelet does not probe before this
    + periodSeconds * failureThreshold
                         one failed attempt per period, and the probe only counts as failed after
                         failureThreshold of them in a row
    + timeoutSeconds     the last attempt may take this long before it counts as a failure
    """
    return (
        _field(probe, "initialDelaySeconds")
        + _field(probe, "periodSeconds") * _field(probe, "failureThreshold")
        + _field(probe, "timeoutSeconds")
    )


def readiness_grace(container: dict[str, Any]) -> float:
    """Seconds a running container of this spec may stay not-ready before we call readiness failed.

    No readiness probe: the container is ready as soon as it runs (and started, with a startup probe),
    so the grace covers only a startup probe.
    startupProbe: readiness probing starts only after the startup probe succeeded, which can take up to its
    whole window (failing it restarts the container, which we count as an exit instead).
    readinessProbe: its window, plus one period of slack because the kubelet starts the first probe at a
    random point within the first period, and status updates reach us a little later.
    """
    grace = 0
    startup = container.get("startupProbe")
    if startup:
        grace += probe_window(startup)
    readiness = container.get("readinessProbe")
    if readiness:
        grace += probe_window(readiness) + _field(readiness, "periodSeconds")
    return float(grace)
