"""`deployer ship` with a namespace-scoped ServiceAccount (e2e/rbac): the least a ship needs, nothing more.

The namespace exists beforehand (created with the admin identity, as a cluster admin would for a team);
e2e/rbac/kubeconfig gives its ServiceAccount the Role of e2e/rbac/deployer-role.yaml and writes a
kubeconfig with a TokenRequest token, which `deployer ship --kubeconfig` uses, as CI would run it.

With the Role alone (no cluster-scoped grant: deployer runs helm without `--create-namespace`, since the
release lock found the namespace), a first ship (install, helm test and an HTTP smoke check through a
port-forward) and a second one (upgrade) succeed, the identity cannot read anything outside its
namespace, and the namespace is the one that was there (same uid, not re-created). status, diff and
rollback work with the same identity; `deployer prune` with it, which may not list helm's release Secrets
in all namespaces, reads its namespace's releases only, says so, and keeps every push a revision there
references.
"""

from __future__ import annotations

import json
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


def _can_i(kubeconfig: Path, verb: str, resource: str, namespace: str, subresource: str = "") -> bool:
    # `can-i VERB pods/portforward` would ask about a pod named "portforward": a subresource is a flag
    sub = [f"--subresource={subresource}"] if subresource else []
    done = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "auth", "can-i", verb, resource, *sub, "-n", namespace],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() in ("yes", "no"), done.stderr
    return done.stdout.strip() == "yes"


def _deployer(*argv: str) -> subprocess.CompletedProcess[str]:
    # deployer takes the identity from --kubeconfig (else $KUBECONFIG); it has no DEPLOYER_KUBECONFIG.
    # The admin identity must not be reachable through the environment, so a pass proves the Role.
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "DEPLOYER_KUBECONFIG")}
    env["CI"] = "true"
    return subprocess.run([DEPLOYER, *argv], capture_output=True, text=True, env=env, timeout=900)


def _ship(svc: ServiceCopy, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    return _deployer("ship", str(svc.root), "--kubeconfig", str(kubeconfig))


def _make_kubeconfig(svc: ServiceCopy, out: Path) -> None:
    env = {**os.environ, "ADMIN_KUBECONFIG": str(svc.kubeconfig)}  # the cluster under test, any provider
    namespace = svc.namespace
    made = subprocess.run(
        [str(MAKE_KUBECONFIG), namespace, str(out)], capture_output=True, text=True, env=env, timeout=120
    )
    assert made.returncode == 0, made.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o600"


@pytest.fixture
def existing_namespace(svc: ServiceCopy) -> client.V1Namespace:
    """The service's namespace, made by the admin before any ship (as a cluster admin does for a team)."""
    core = client.CoreV1Api(svc.api)
    return core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=svc.namespace)))


def test_ship_and_prune_with_a_namespaced_service_account(
    svc: ServiceCopy, existing_namespace: client.V1Namespace, tmp_path: Path
) -> None:
    core = client.CoreV1Api(svc.api)
    kubeconfig = tmp_path / "deployer.kubeconfig"
    _make_kubeconfig(svc, kubeconfig)

    # Confined to its namespace: it may deploy there and read nothing elsewhere, nor make namespaces.
    assert _can_i(kubeconfig, "create", "deployments.apps", svc.namespace)
    assert _can_i(kubeconfig, "get", "pods", svc.namespace, subresource="portforward")
    assert not _can_i(kubeconfig, "create", "pods", svc.namespace, subresource="portforward")
    assert not _can_i(kubeconfig, "list", "pods", "kube-system")
    assert not _can_i(kubeconfig, "list", "secrets", "default")
    assert not _can_i(kubeconfig, "create", "namespaces", svc.namespace)
    assert not _can_i(kubeconfig, "delete", "namespaces", svc.namespace)
    assert not _can_i(kubeconfig, "create", "roles.rbac.authorization.k8s.io", svc.namespace)

    svc.write(".pipeline/deploy.yaml", DEPLOY_YAML.format(style="plain"))
    svc.commit("first")
    first = _ship(svc, kubeconfig)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "2 of 2 checks passed" in first.stdout  # helm test and the HTTP check (port-forward)
    # The Role has no pods/attach: the test pod is not started early, `helm test` runs it (docs/deploy.md)
    assert "this identity may not attach to pods (pods/attach get): helm test instead" in first.stdout

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

    # the release commands, with the same identity
    release_args = (str(svc.root), "--kubeconfig", str(kubeconfig))
    status = _deployer("status", *release_args)
    assert status.returncode == 0, status.stdout[-2000:] + status.stderr[-2000:]
    diff = _deployer("diff", *release_args)
    assert diff.returncode == 0, diff.stdout[-2000:] + diff.stderr[-2000:]
    assert "no changes" in diff.stdout
    rolled = _deployer("rollback", *release_args)
    assert rolled.returncode == 0, rolled.stdout[-2000:] + rolled.stderr[-2000:]
    deployment = client.AppsV1Api(svc.api).read_namespaced_deployment(svc.name, svc.namespace)
    env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env or []}
    assert env["GREETING_STYLE"] == "plain"  # revision 1's, now revision 3

    # prune: helm's records in all namespaces are refused (403), so it reads this namespace's only
    pruned = _deployer(
        "prune", str(svc.root), "--kubeconfig", str(kubeconfig), "--keep", "1", "--min-age", "0", "--json"
    )
    assert pruned.returncode == 0, pruned.stdout[-3000:] + pruned.stderr[-3000:]
    result = json.loads(pruned.stdout)
    assert result["namespaces_checked"] == [svc.namespace]
    assert result["revisions"] == 3
    for repository in result["repositories"]:  # both ships' image and chart: each a revision's
        assert repository["pushes"], repository
        for push in repository["pushes"]:
            assert push["action"] == "keep", push
            assert any(r.startswith(f"in use: release {svc.name} revision ") for r in push["reasons"]), push
    assert result["deleted"] == []
