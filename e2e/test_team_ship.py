"""node-hello shipped to the team registry (TLS with the set-up's CA, bearer tokens) end to end, then rolled
back and pruned there, all through `--env staging` of e2e/testdata/deployer.yaml (issue 11, item 4).

The image and chart go to registry.team.test:5443/staging/ with the `ci` user's credentials from
environment variables (the source the config names); the pods pull with the `deployer-registry`
imagePullSecret the ship makes: with `registry.pullCredentials` naming the read-only `puller` user (as a
team hands its cluster a credential that cannot push), the Secret holds puller's and the pods pull with it.
Neither password (nor the Basic token made from it) is in any output, JSON report, JUnit file, helm release
record, nor in what `deployer env show` prints.
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
import yaml
from kubernetes import client

from deployer.release.prune import _decode_helm_secret
from e2e.conftest import REPO
from e2e.shipping import DEPLOYER
from tests.conftest import require
from tests.integration.teamregistry import HOW_TO_START, answers, password

pytestmark = [pytest.mark.cluster, pytest.mark.docker, pytest.mark.registry, pytest.mark.slow]

CONFIG = REPO / "e2e" / "testdata" / "deployer.yaml"
NODE_HELLO = REPO / "examples" / "node-hello"
USERS = {"TEAM_REGISTRY": "ci", "TEAM_REGISTRY_PULL": "puller"}  # variable prefix → team registry user


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


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """e2e/testdata/deployer.yaml with staging's pulls done by the read-only user."""
    data = yaml.safe_load(CONFIG.read_text())
    for env in data["environments"].values():  # its relative paths, from the copy
        env["policies"] = {k: str(CONFIG.parent / v) for k, v in env.get("policies", {}).items()}
    pull = {"env": {"user": "TEAM_REGISTRY_PULL_USER", "password": "TEAM_REGISTRY_PULL_PASSWORD"}}
    data["environments"]["staging"]["registry"]["pullCredentials"] = pull
    path = tmp_path / "deployer.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _deployer(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "DEPLOYER_REGISTRY")}
    for prefix, user in USERS.items():
        env |= {f"{prefix}_USER": user, f"{prefix}_PASSWORD": password(user)}
    env["CI"] = "true"
    # `env show NAME` names the environment itself; every other command takes --env
    where = ["staging"] if args[:2] == ("env", "show") else ["--env", "staging"]
    done = subprocess.run(
        [DEPLOYER, *args, "--config", str(config), *where],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    _assert_no_secret({f"deployer {args[0]} output": done.stdout + done.stderr})
    return done


def _assert_no_secret(texts: dict[str, str]) -> None:
    """Neither user's password, nor the Basic token made from it (what a docker config holds)."""
    secrets = {(user, value) for user in USERS.values() for value in (password(user),)}
    secrets |= {(user, base64.b64encode(f"{user}:{value}".encode()).decode()) for user, value in secrets}
    for where, text in texts.items():
        for user, value in secrets:
            assert value not in text, f"a secret of {user} appears in {where}"


def test_ship_rollback_and_prune_on_the_team_registry(
    release: str, kube: client.ApiClient, config: Path, tmp_path: Path
) -> None:
    for show in (["env", "show"], ["env", "show", "--json"]):
        shown = _deployer(*show, config=config)
        assert shown.returncode == 0, shown.stderr
        assert "$TEAM_REGISTRY_PASSWORD" in shown.stdout and "$TEAM_REGISTRY_PULL_PASSWORD" in shown.stdout
    where = ["--namespace", release, "--release", release]
    reports = []
    for n in (1, 2):
        report, junit = tmp_path / f"ship{n}.json", tmp_path / f"ship{n}.xml"
        shipped = _deployer(
            "ship", str(NODE_HELLO), *where, "--report", str(report), "--junit", str(junit), config=config
        )
        assert shipped.returncode == 0, shipped.stdout[-3000:] + shipped.stderr[-2000:]
        _assert_no_secret({f"ship {n} report": report.read_text(), f"ship {n} JUnit": junit.read_text()})
        reports.append(json.loads(report.read_text()))
    core = client.CoreV1Api(kube)
    # helm's release records (what `helm get` shows anyone who may read the namespace's Secrets)
    records = core.list_namespaced_secret(release, label_selector="owner=helm").items
    assert len(records) == 2
    _assert_no_secret({f"helm record {r.metadata.name}": json.dumps(_decode_helm_secret(r)) for r in records})
    push = next(s for s in reports[-1]["stages"] if s["name"] == "push")
    assert "registry.team.test:5443/staging/node-hello@sha256:" in json.dumps(push["details"])

    # what runs is the pushed digest, pulled from the team registry with the Secret the ship made, which
    # holds the read-only user (that registry refuses it a push: tests/integration/test_team_registry.py)
    pods = core.list_namespaced_pod(release, label_selector=f"app.kubernetes.io/instance={release}")
    running = {s.image_id.split("@")[-1] for p in pods.items for s in (p.status.container_statuses or [])}
    assert any(d in json.dumps(push["details"]) for d in running), (running, push["details"])
    assert all(p.spec.image_pull_secrets[0].name == "deployer-registry" for p in pods.items)
    pull = core.read_namespaced_secret("deployer-registry", release)
    assert pull.type == "kubernetes.io/dockerconfigjson"
    auths = json.loads(base64.b64decode(pull.data[".dockerconfigjson"]))["auths"]
    user, _, _ = base64.b64decode(auths["registry.team.test:5443"]["auth"]).decode().partition(":")
    assert user == "puller"

    rolled = _deployer("rollback", str(NODE_HELLO), *where, config=config)
    assert rolled.returncode == 0, rolled.stdout[-3000:] + rolled.stderr[-2000:]

    pruned = _deployer(
        "prune", str(NODE_HELLO), *where, "--keep", "1", "--min-age", "0", "--json", config=config
    )
    assert pruned.returncode == 0, pruned.stdout[-3000:] + pruned.stderr[-2000:]
    result = json.loads(pruned.stdout)
    assert "registry.team.test:5443" in json.dumps(result)
