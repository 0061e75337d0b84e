"""node-hello shipped to the team registry (TLS with the set-up's CA, bearer tokens) end to end, then rolled
back and pruned there, all through `--env staging` of e2e/testdata/deployer.yaml (issue 11, item 4).

The image and chart go to registry.team.test:5443/staging/ with the `ci` user's credentials from
environment variables (the source the config names); the pods pull with the `deployer-registry`
imagePullSecret the ship makes from the same source. The password (and the Basic token made from it) is
in no output, JSON report, JUnit file, helm release record, nor in what `deployer env show` prints.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from deployer.release.prune import _decode_helm_secret
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
    try:
        client.CoreV1Api(kube).delete_namespace(name, propagation_policy="Background")
    except client.ApiException as e:
        if e.status != 404:  # a test that failed before its first ship made none
            raise


def _deployer(*args: str, secret: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "DEPLOYER_REGISTRY")}
    env |= {"TEAM_REGISTRY_USER": "ci", "TEAM_REGISTRY_PASSWORD": secret, "CI": "true"}
    # `env show NAME` names the environment itself; every other command takes --env
    where = ["staging"] if args[:2] == ("env", "show") else ["--env", "staging"]
    done = subprocess.run(
        [DEPLOYER, *args, "--config", str(CONFIG), *where],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    _assert_no_secret(secret, {f"deployer {args[0]} output": done.stdout + done.stderr})
    return done


def _secrets(secret: str) -> set[str]:
    """The password and the Basic token made from it (what a docker config or an Authorization holds)."""
    return {secret, base64.b64encode(f"ci:{secret}".encode()).decode()}


def _assert_no_secret(secret: str, texts: dict[str, str]) -> None:
    for where, text in texts.items():
        for value in _secrets(secret):
            assert value not in text, f"a registry secret appears in {where}"


def test_ship_rollback_and_prune_on_the_team_registry(
    release: str, kube: client.ApiClient, tmp_path: Path
) -> None:
    secret = password("ci")
    for show in (["env", "show"], ["env", "show", "--json"]):
        shown = _deployer(*show, secret=secret)
        assert shown.returncode == 0 and "$TEAM_REGISTRY_PASSWORD" in shown.stdout, shown.stderr
        _assert_no_secret(secret, {" ".join(show): shown.stdout + shown.stderr})
    where = ["--namespace", release, "--release", release]
    reports = []
    for n in (1, 2):
        report, junit = tmp_path / f"ship{n}.json", tmp_path / f"ship{n}.xml"
        shipped = _deployer(
            "ship", str(NODE_HELLO), *where, "--report", str(report), "--junit", str(junit), secret=secret
        )
        assert shipped.returncode == 0, shipped.stdout[-3000:] + shipped.stderr[-2000:]
        _assert_no_secret(
            secret,
            {
                f"ship {n} output": shipped.stdout + shipped.stderr,
                f"ship {n} report": report.read_text(),
                f"ship {n} JUnit": junit.read_text(),
            },
        )
        reports.append(json.loads(report.read_text()))
    # helm's release records (what `helm get` shows anyone who may read the namespace's Secrets)
    records = client.CoreV1Api(kube).list_namespaced_secret(release, label_selector="owner=helm").items
    assert len(records) == 2
    _assert_no_secret(
        secret, {f"helm record {r.metadata.name}": json.dumps(_decode_helm_secret(r)) for r in records}
    )
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
