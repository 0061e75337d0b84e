"""Deployments that roll out well or fail in one known way each, on the local cluster.

Shared by the fixture recorder (`record.py` here), the e2e tests (`e2e/test_rollout.py`) and the benchmark
(`bench/rollout.py`), so all three talk about the same objects. Images come from the build stack's
registry (the cluster's containerd holds its credentials); the base python3 image serves HTTP with the
standard library, so no image has to be built.
"""

from __future__ import annotations

import copy
from typing import Any

REGISTRY = "127.0.0.1:5000"
PYTHON = f"{REGISTRY}/base/python3:12"
MISSING_IMAGE = f"{REGISTRY}/e2e/does-not-exist:never-pushed"

_SERVE = ["python3", "-m", "http.server", "8080"]
_PROBE = {
    "httpGet": {"path": "/", "port": 8080},
    "periodSeconds": 1,
    "failureThreshold": 2,
    "timeoutSeconds": 1,
}

SCENARIOS: dict[str, dict[str, Any]] = {
    # name: container overrides and pod/deployment spec overrides, and the reason the watcher must give
    "healthy": {"container": {"command": _SERVE, "readinessProbe": _PROBE}, "expect": "Available"},
    "crashloop": {
        "container": {"command": ["sh", "-c", "echo starting up; echo 'fatal: no config' >&2; exit 3"]},
        # Two exits fail it (the budget), usually before the kubelet even reports CrashLoopBackOff.
        "expect": "Error",
    },
    "imagepull": {"container": {"image": MISSING_IMAGE, "command": _SERVE}, "expect": "ErrImagePull"},
    "notready": {
        # Serves on 8080, probed on 8081: never ready. The probe allows 0 + 1*2 + 1 (+1 slack) = 4 s.
        "container": {
            "command": _SERVE,
            "readinessProbe": {**_PROBE, "httpGet": {"path": "/", "port": 8081}},
        },
        "expect": "ReadinessProbeFailed",
    },
    "deadline": {
        # Never ready, with a probe that forgives ten minutes: only the Deployment's 5 s deadline fires.
        "container": {
            "command": _SERVE,
            "readinessProbe": {**_PROBE, "httpGet": {"path": "/", "port": 8081}, "initialDelaySeconds": 600},
        },
        "deployment": {"progressDeadlineSeconds": 5},
        "expect": "ProgressDeadlineExceeded",
    },
    "unschedulable": {
        "container": {"command": _SERVE},
        "pod": {"nodeSelector": {"deployer.test/no-such-node": "true"}},
        "expect": "Unschedulable",
    },
    "nocommand": {"container": {"command": ["/no/such/binary"]}, "expect": "RunContainerError"},
    "oom": {
        "container": {
            "command": ["python3", "-c", "print('allocating', flush=True); b = bytearray(256 * 1024 * 1024)"],
            "resources": {"limits": {"memory": "32Mi"}},
        },
        "expect": "OOMKilled",
    },
    # The crashloop container with the exit budget lifted, so the kubelet's back-off is what fails it.
    "crashloop-backoff": {
        "container": {"command": ["sh", "-c", "echo starting up; echo 'fatal: no config' >&2; exit 3"]},
        "policy": {"max_exits": 99},
        "expect": "CrashLoopBackOff",
    },
}


def deployment(name: str, scenario: str, *, replicas: int = 1) -> dict[str, Any]:
    """The Deployment manifest for `scenario`, named `name`, labelled app=<name>."""
    spec = SCENARIOS[scenario]
    labels = {"app": name}
    container = {"name": "app", "image": PYTHON, "ports": [{"containerPort": 8080, "name": "http"}]}
    container.update(copy.deepcopy(spec.get("container", {})))
    pod = {
        "containers": [container],
        "terminationGracePeriodSeconds": 1,
        **copy.deepcopy(spec.get("pod", {})),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
            **copy.deepcopy(spec.get("deployment", {})),
        },
    }
