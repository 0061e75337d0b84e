"""node-hello shipped to the team registry (TLS with the set-up's CA, bearer tokens) end to end, then rolled
back and pruned there, all through `--env staging` of e2e/testdata/deployer.yaml (issue 11, item 4).

The image and chart go to registry.team.test:5443/staging/ with the `ci` user's credentials from
environment variables (the source the config names); the pods pull with the `deployer-registry`
imagePullSecret the ship makes from the same source. The password is in no output and no report.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from e2e.conftest import REPO
from e2e.shipping import DEPLOYER
from tests.conftest import require
from tests.integration.teamregistry import HOW_TO_START, answers, password

pytestmark = [pytest.mark.cluster, pytest.mark.docker, pytest.mark.registry, pytest.mark.slow]

CONFIG = REPO / "e2e" / "testdata" / "deployer.yaml"
NODE_HELLO = REPO / "examples" / "node-hello"


@pytest.fixture
def release(kube: client.ApiClient) -> Iterator[str]:
    require("the team registry", answers(), HOW_TO_START)
    name = f"e2e-team-{uuid.uuid4().hex[:6]}"
    yield name
    client.CoreV1Api(kube).delete_namespace(name, propagation_policy="Background")


def _deployer(*args: str, secret: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "DEPLOYER_REGISTRY")}
    env |= {"TEAM_REGISTRY_USER": "ci", "TEAM_REGISTRY_PASSWORD": secret, "CI": "true"}
    done = subprocess.run(
        [DEPLOYER, *args, "--config", str(CONFIG), "--env", "staging"],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert secret not in done.stdout + done.stderr
    return done


def test_ship_rollback_and_prune_on_the_team_registry(
    release: str, kube: client.ApiClient, tmp_path: Path
) -> None:
    secret = password("ci")
    where = ["--namespace", release, "--release", release]
    reports = []
    for n in (1, 2):
        report = tmp_path / f"ship{n}.json"
        shipped = _deployer("ship", str(NODE_HELLO), *where, "--report", str(report), secret=secret)
        assert shipped.returncode == 0, shipped.stdout[-3000:] + shipped.stderr[-2000:]
        assert secret not in report.read_text()
        reports.append(json.loads(report.read_text()))
    push = next(s for s in reports[-1]["stages"] if s["name"] == "push")
    assert "registry.team.test:5443/staging/node-hello@sha256:" in json.dumps(push["details"])

    # what runs is the pushed digest, pulled from the team registry with the Secret the ship made
    pods = client.CoreV1Api(kube).list_namespaced_pod(
        release, label_selector=f"app.kubernetes.io/instance={release}"
    )
    running = {s.image_id.split("@")[-1] for p in pods.items for s in (p.status.container_statuses or [])}
    assert any(d in json.dumps(push["details"]) for d in running), (running, push["details"])
    pull = client.CoreV1Api(kube).read_namespaced_secret("deployer-registry", release)
    assert pull.type == "kubernetes.io/dockerconfigjson"

    rolled = _deployer("rollback", str(NODE_HELLO), *where, secret=secret)
    assert rolled.returncode == 0, rolled.stdout[-3000:] + rolled.stderr[-2000:]

    pruned = _deployer(
        "prune", str(NODE_HELLO), *where, "--keep", "1", "--min-age", "0", "--json", secret=secret
    )
    assert pruned.returncode == 0, pruned.stdout[-3000:] + pruned.stderr[-2000:]
    result = json.loads(pruned.stdout)
    assert "registry.team.test:5443" in json.dumps(result)
