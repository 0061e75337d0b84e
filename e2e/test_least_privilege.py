"""`deployer ship` with a namespace-scoped ServiceAccount (e2e/rbac): the least a ship needs, nothing more.

The namespace exists beforehand (created with the admin identity, as a cluster admin would for a team);
e2e/rbac/kubeconfig gives its ServiceAccount the Role of e2e/rbac/deployer-role.yaml and writes a
kubeconfig with a TokenRequest token. With `DEPLOYER_KUBECONFIG` set to it, as CI would run it: a first
ship (install, helm test and an HTTP smoke check through a port-forward) and a second one (upgrade)
succeed, the identity cannot read anything outside its namespace, and the namespace is the one that was
there (same uid, not re-created).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from e2e.conftest import REPO, Registry
from e2e.shipping import DEPLOYER, ServiceCopy, service_copy

pytestmark = [pytest.mark.cluster, pytest.mark.registry, pytest.mark.docker, pytest.mark.slow]

MAKE_KUBECONFIG = REPO / "e2e" / "rbac" / "kubeconfig"
KUBECTL = "/var/cache/deployer/tools/bin/kubectl"

DEPLOY_YAML = """\
probes:
  readiness: {{path: /healthz, periodSeconds: 1}}
env: {{GREETING_STYLE: "{style}"}}
smoke:
  checks:
    - {{name: root, path: /, body: hello from node-hello}}
timeouts: {{progressDeadline: 60, rollout: 90, helm: 60, smoke: 20}}
"""


@pytest.fixture
def svc(
    cluster_kubeconfig: Path, kube: client.ApiClient, registry: Registry, tmp_path: Path
) -> Iterator[ServiceCopy]:
    with service_copy(
        ServiceCopy,
        "node-hello",
        "e2e-rbac",
        kubeconfig=cluster_kubeconfig,
        api=kube,
        registry=registry,
        tmp_path=tmp_path,
    ) as copy:
        yield copy


def _can_i(kubeconfig: Path, verb: str, resource: str, namespace: str) -> bool:
    done = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "auth", "can-i", verb, resource, "-n", namespace],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() in ("yes", "no"), done.stderr
    return done.stdout.strip() == "yes"


def _ship(svc: ServiceCopy, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEPLOYER_KUBECONFIG": str(kubeconfig), "CI": "true"}
    return subprocess.run(
        [DEPLOYER, "ship", str(svc.root)], capture_output=True, text=True, env=env, timeout=900
    )


def test_ship_with_a_namespaced_service_account(svc: ServiceCopy, tmp_path: Path) -> None:
    core = client.CoreV1Api(svc.api)
    created = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=svc.namespace)))
    kubeconfig = tmp_path / "deployer.kubeconfig"
    made = subprocess.run(
        [str(MAKE_KUBECONFIG), svc.namespace, str(kubeconfig)], capture_output=True, text=True, timeout=120
    )
    assert made.returncode == 0, made.stderr
    assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"

    # Confined to its namespace: it may deploy there and read nothing elsewhere.
    assert _can_i(kubeconfig, "create", "deployments.apps", svc.namespace)
    assert _can_i(kubeconfig, "create", "pods/portforward", svc.namespace)
    assert not _can_i(kubeconfig, "list", "pods", "kube-system")
    assert not _can_i(kubeconfig, "list", "secrets", "default")
    assert not _can_i(kubeconfig, "create", "namespaces", svc.namespace)
    assert not _can_i(kubeconfig, "create", "roles.rbac.authorization.k8s.io", svc.namespace)

    svc.write(".pipeline/deploy.yaml", DEPLOY_YAML.format(style="plain"))
    svc.commit("first")
    first = _ship(svc, kubeconfig)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "2 of 2 checks passed" in first.stdout  # helm test and the HTTP check (port-forward)

    svc.write(".pipeline/deploy.yaml", DEPLOY_YAML.format(style="loud"))
    svc.commit("second")
    second = _ship(svc, kubeconfig)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "revision 2" in second.stdout

    # helm's release records are in the namespace, written by the ServiceAccount.
    releases = core.list_namespaced_secret(svc.namespace, label_selector=f"owner=helm,name={svc.name}")
    assert sorted(s.metadata.labels["version"] for s in releases.items) == ["1", "2"]
    deployment = client.AppsV1Api(svc.api).read_namespaced_deployment(svc.name, svc.namespace)
    env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env or []}
    assert env["GREETING_STYLE"] == "loud"
    assert core.read_namespace(svc.namespace).metadata.uid == created.metadata.uid
