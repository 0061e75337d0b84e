"""`deployer ship` with a namespace-scoped ServiceAccount (e2e/rbac): the least a ship needs, nothing more.

The namespace exists beforehand (created with the admin identity, as a cluster admin would for a team);
e2e/rbac/kubeconfig gives its ServiceAccount the Role of e2e/rbac/deployer-role.yaml and writes a
kubeconfig with a TokenRequest token, which `deployer ship --kubeconfig` uses, as CI would run it.

- With the Role alone the first ship fails at deploy (exit 15): helm's `--create-namespace` asks for a
  cluster-scoped `create namespaces` (the gap phase 2 closes; the test says so exactly).
- With that one cluster-scoped workaround bound too (e2e/rbac/helm-create-namespace.yaml), a first ship
  (install, helm test and an HTTP smoke check through a port-forward) and a second one (upgrade)
  succeed, the identity cannot read anything outside its namespace, and the namespace is the one that
  was there (same uid, not re-created).
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
    # deployer takes the identity from --kubeconfig (else $KUBECONFIG); it has no DEPLOYER_KUBECONFIG.
    # The admin identity must not be reachable through the environment, so a pass proves the Role.
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "DEPLOYER_KUBECONFIG")}
    env["CI"] = "true"
    argv = [DEPLOYER, "ship", str(svc.root), "--kubeconfig", str(kubeconfig)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)


def _make_kubeconfig(svc: ServiceCopy, out: Path, helm_create_namespace: bool) -> None:
    env = {**os.environ, "HELM_CREATE_NAMESPACE": "1" if helm_create_namespace else "0"}
    env["ADMIN_KUBECONFIG"] = str(svc.kubeconfig)  # the cluster under test, whichever provider made it
    namespace = svc.namespace
    made = subprocess.run(
        [str(MAKE_KUBECONFIG), namespace, str(out)], capture_output=True, text=True, env=env, timeout=120
    )
    assert made.returncode == 0, made.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o600"


@pytest.fixture
def existing_namespace(svc: ServiceCopy) -> Iterator[client.V1Namespace]:
    """The service's namespace, made by the admin before any ship (as a cluster admin does for a team)."""
    core = client.CoreV1Api(svc.api)
    yield core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=svc.namespace)))
    rbac = client.RbacAuthorizationV1Api(svc.api)
    try:
        rbac.delete_cluster_role_binding(f"deployer-helm-create-namespace-{svc.namespace}")
    except client.ApiException as e:
        if e.status != 404:
            raise


def test_first_ship_with_only_the_role_is_refused_by_helms_create_namespace(
    svc: ServiceCopy, existing_namespace: client.V1Namespace, tmp_path: Path
) -> None:
    """The gap phase 2 closes: deployer passes `--create-namespace`, and helm's first install POSTs the
    namespace even though it exists; a namespaced identity may not, so the ship fails late, at deploy."""
    kubeconfig = tmp_path / "deployer.kubeconfig"
    _make_kubeconfig(svc, kubeconfig, helm_create_namespace=False)
    svc.write(".pipeline/deploy.yaml", DEPLOY_YAML.format(style="plain"))
    svc.commit("first")
    refused = _ship(svc, kubeconfig)
    assert refused.returncode == 15, refused.stdout[-3000:]
    assert (
        f'User "system:serviceaccount:{svc.namespace}:deployer" cannot create resource "namespaces"'
        in refused.stdout
    )


def test_ship_with_a_namespaced_service_account(
    svc: ServiceCopy, existing_namespace: client.V1Namespace, tmp_path: Path
) -> None:
    core = client.CoreV1Api(svc.api)
    kubeconfig = tmp_path / "deployer.kubeconfig"
    # With the one cluster-scoped workaround for helm's --create-namespace (rbac/helm-create-namespace.yaml).
    _make_kubeconfig(svc, kubeconfig, helm_create_namespace=True)

    # Confined to its namespace: it may deploy there and read nothing elsewhere.
    assert _can_i(kubeconfig, "create", "deployments.apps", svc.namespace)
    assert _can_i(kubeconfig, "get", "pods/portforward", svc.namespace)
    assert not _can_i(kubeconfig, "list", "pods", "kube-system")
    assert not _can_i(kubeconfig, "list", "secrets", "default")
    assert not _can_i(kubeconfig, "delete", "namespaces", svc.namespace)
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
    assert core.read_namespace(svc.namespace).metadata.uid == existing_namespace.metadata.uid
