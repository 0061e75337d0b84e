"""`deployer promote` on the real parts (issue 11, item 6): node-hello shipped to `staging` of
e2e/testdata/deployer.yaml (the team registry's staging/ namespace, TLS + bearer tokens; the local cluster),
then promoted to `production` (the registry's production/ namespace; namespace `<release>-production`),
then from production to `mirror`, an environment on another registry (the local stack's, plain HTTP and
Basic auth; namespace `<release>-mirror`): there the blobs are streamed across, not mounted.

Once a ship's smoke checks pass in staging, the promote copies the image and chart by digest (blobs
mounted on the same registry, never pulled or rebuilt) and production runs exactly the digest staging
tested. A digest with no pass recorded in staging (what a ship with --skip-smoke leaves) is refused (exit
11, naming --force) and production is left alone. The ci user's password is in no output, report or JUnit
file.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml
from kubernetes import client

from deployer.release import passed
from deployer.reporting.report import report_schema
from e2e.shipping import DEPLOYER, delete_pushed
from e2e.test_team_ship import CONFIG, NODE_HELLO  # the same environments and service as a team ship
from tests.conftest import require
from tests.integration.teamregistry import HOW_TO_START, answers, password

pytestmark = [pytest.mark.cluster, pytest.mark.docker, pytest.mark.registry, pytest.mark.slow]


@pytest.fixture
def release(kube: client.ApiClient) -> Iterator[str]:
    """A fresh release name; afterwards its namespaces in both environments and its charts are gone."""
    require("the team registry", answers(), HOW_TO_START)
    name = f"e2e-promote-{uuid.uuid4().hex[:6]}"
    yield name
    for namespace in (name, f"{name}-production", f"{name}-mirror"):  # the rules in `config`
        try:
            client.CoreV1Api(kube).delete_namespace(namespace, propagation_policy="Background")
        except client.ApiException as e:
            if e.status != 404:
                raise
    _delete_pushed([f"staging/charts/{name}", f"production/charts/{name}"])
    delete_pushed(f"mirror/charts/{name}")  # the mirror's chart, on the local stack's registry


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """e2e/testdata/deployer.yaml and `mirror`: the local stack's registry, another host than the team's."""
    data = yaml.safe_load(CONFIG.read_text())
    for env in data["environments"].values():  # its relative paths, from the copy
        env["policies"] = {k: str(CONFIG.parent / v) for k, v in env.get("policies", {}).items()}
    data["environments"]["mirror"] = {
        "registry": {
            "host": "127.0.0.1:5000",
            "tls": "insecure",
            "namespace": "mirror",
            "credentials": {"file": {"path": "/var/lib/deployer/registry/credentials.env"}},
        },
        "cluster": {
            "kubeconfig": "/var/lib/deployer/cluster/kubeconfig",
            "namespace": "{release}-mirror",
            "serviceMayChooseNamespace": False,
        },
    }  # the shipped deploy policy: the team's allows only the team registry
    path = tmp_path / "deployer.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _delete_pushed(repositories: list[str]) -> None:
    """Remove the charts this test pushed, through deployer's own registry client (ci may delete)."""
    from deployer.target import resolve
    from deployer.tools.registry_api import Credentials, RegistryClient

    registry = resolve("production", config=CONFIG).registry
    api = RegistryClient(registry, Credentials("ci", password("ci"), "test"))
    for repository in repositories:
        for tag in api.tags(repository):
            digest = api.digest(repository, tag)
            if digest:
                api.delete_manifest(repository, digest)


def _deployer(*args: str, secret: str, report: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "DEPLOYER_REGISTRY")}
    env |= {"TEAM_REGISTRY_USER": "ci", "TEAM_REGISTRY_PASSWORD": secret, "CI": "true"}
    junit = report.with_suffix(".xml")
    done = subprocess.run(
        [DEPLOYER, *args, "--config", str(config), "--report", str(report), "--junit", str(junit)],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert secret not in done.stdout + done.stderr + report.read_text() + junit.read_text()
    jsonschema.Draft202012Validator(report_schema()).validate(json.loads(report.read_text()))
    return done


def _stage(report: Path, name: str) -> dict:
    return next(s for s in json.loads(report.read_text())["stages"] if s["name"] == name)


def _running(kube: client.ApiClient, namespace: str, release: str) -> set[str]:
    """The digests the release's pods run, as the kubelet pulled them."""
    pods = client.CoreV1Api(kube).list_namespaced_pod(
        namespace, label_selector=f"app.kubernetes.io/instance={release}"
    )
    return {
        s.image_id.split("@")[-1]
        for p in pods.items
        if p.metadata.deletion_timestamp is None
        for s in p.status.container_statuses or []
    }


def test_promote_runs_in_production_exactly_the_digest_staging_tested(
    release: str, kube: client.ApiClient, config: Path, tmp_path: Path
) -> None:
    secret = password("ci")
    ship = ["ship", str(NODE_HELLO), "--env", "staging", "--release", release]
    promote = ["promote", str(NODE_HELLO), "--from", "staging", "--to", "production", "--release", release]

    tested = _deployer(*ship, secret=secret, report=tmp_path / "ship.json", config=config)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]
    smoke = _stage(tmp_path / "ship.json", "smoke")
    digest = smoke["details"]["passed"]["digest"]
    assert smoke["details"]["passed"]["recorded"] is True
    assert _running(kube, release, release) == {digest}

    promoted = _deployer(*promote, secret=secret, report=tmp_path / "promote.json", config=config)
    assert promoted.returncode == 0, promoted.stdout[-3000:] + promoted.stderr[-2000:]
    copy = _stage(tmp_path / "promote.json", "copy")
    assert copy["details"]["images"][0]["digest"] == digest
    # the same registry: every blob mounted from staging/ or already in production/, none uploaded
    assert set(copy["details"]["blobs"]["image"]) <= {"mounted", "present"}
    production = f"{release}-production"
    assert _running(kube, production, release) == {digest}
    apps = client.AppsV1Api(kube)
    deployment = apps.read_namespaced_deployment(release, production)
    image = deployment.spec.template.spec.containers[0].image
    assert image == f"registry.team.test:5443/production/node-hello@{digest}"
    assert passed.passed_in(passed.parse(deployment.metadata.annotations), digest, "production")

    # Onward to another registry: the same bytes, streamed (no common registry to mount from).
    mirror = ["promote", str(NODE_HELLO), "--from", "production", "--to", "mirror", "--release", release]
    mirrored = _deployer(*mirror, secret=secret, report=tmp_path / "mirror.json", config=config)
    assert mirrored.returncode == 0, mirrored.stdout[-3000:] + mirrored.stderr[-2000:]
    copy = _stage(tmp_path / "mirror.json", "copy")
    assert copy["details"]["images"][0]["digest"] == digest
    assert "mounted" not in copy["details"]["blobs"]["image"]
    assert set(copy["details"]["blobs"]["image"]) <= {"copied", "present"}
    assert _running(kube, f"{release}-mirror", release) == {digest}
    image = (
        apps.read_namespaced_deployment(release, f"{release}-mirror").spec.template.spec.containers[0].image
    )
    assert image == f"127.0.0.1:5000/mirror/node-hello@{digest}"

    # What a ship with --skip-smoke leaves: a running digest with no pass recorded in staging. (A second
    # ship would cost a minute here; the record is what the decision reads.)
    forget = {"metadata": {"annotations": {passed.ANNOTATION: None}}}
    apps.patch_namespaced_deployment(release, release, forget)
    refused = _deployer(*promote, secret=secret, report=tmp_path / "refused.json", config=config)
    assert refused.returncode == 11, refused.stdout[-3000:] + refused.stderr[-2000:]
    source = _stage(tmp_path / "refused.json", "source")
    assert source["reason"] == (
        f"refusing to promote {digest} from staging: it has no record of passing smoke checks in staging "
        "(shipped with --skip-smoke, without smoke checks, or they failed)"
    )
    assert source["hint"].endswith("or promote it untested with --force")
    assert _stage(tmp_path / "refused.json", "copy")["status"] == "not-run"
    after = apps.read_namespaced_deployment(release, production)
    assert after.metadata.generation == deployment.metadata.generation  # production untouched
