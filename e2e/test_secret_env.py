"""deploy.yaml `secretEnv` through the real `deployer ship` CLI, on the real cluster, registry and docker.

A copy of node-hello is shipped with `secretEnv: {GREETING_TOKEN: {secret: app, key: token}}`:

- with the Secret created beforehand in the release's namespace: exit 0, the running pod's container env
  reads the Secret by `valueFrom.secretKeyRef` (names only in the Deployment, the chart's values and the
  helm release), and the Secret's value appears nowhere in the ship's output, report or JUnit file, nor
  in what helm stored;
- then an upgrade that names a key the Secret does not have: the kubelet's CreateContainerConfigError
  (`couldn't find key … in Secret <ns>/app`) fails the rollout at once: exit 16, rolled back to revision 1;
- a first install that names a Secret that does not exist: `secret "…" not found`, exit 16, uninstalled.

Fast probes and short deadlines (as in test_ship_failures.py) keep each ship to seconds after the build.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from deployer.errors import ExitCode
from e2e.conftest import Registry
from e2e.shipping import ServiceCopy, Ship, service_copy

pytestmark = [pytest.mark.cluster, pytest.mark.registry, pytest.mark.docker, pytest.mark.slow]

FAST = """namespace: {namespace}
probes:
  readiness: {{path: /healthz, periodSeconds: 1, timeoutSeconds: 1, failureThreshold: 3}}
  liveness: {{path: /healthz, initialDelaySeconds: 5, periodSeconds: 5}}
smoke:
  helmTest: false
  checks:
    - {{name: root, path: /, body: hello from node-hello}}
timeouts: {{progressDeadline: 30, rollout: 45, helm: 60, smoke: 15}}
secretEnv:
  GREETING_TOKEN: {{secret: {secret}, key: {key}}}
"""


class Service(ServiceCopy):
    """node-hello with fast probes and a secretEnv entry; each ship's texts are checked for `secret_value`."""

    secret_value = ""

    def deploy_yaml(self, secret: str = "app", key: str = "token") -> None:
        self.write(".pipeline/deploy.yaml", FAST.format(namespace=self.namespace, secret=secret, key=key))

    def ship(self, *args: str) -> Ship:
        ship = super().ship("--timeout", "240", *args)
        assert_value_absent(self.secret_value, {"stdout": ship.stdout, "stderr": ship.stderr, **ship.files})
        return ship

    def create_secret(self, name: str, data: dict[str, str]) -> None:
        core = client.CoreV1Api(self.api)
        try:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=self.namespace)))
        except client.ApiException as e:
            if e.status != 409:  # already there
                raise
        core.create_namespaced_secret(
            self.namespace, client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data)
        )


def assert_value_absent(value: str, texts: dict[str, str]) -> None:
    """Neither the value nor its base64 form (as a Secret's `data` holds it) is in any of `texts`."""
    assert value, "no secret value to look for"
    forms = {value, base64.b64encode(value.encode()).decode()}
    for where, text in texts.items():
        for form in forms:
            assert form not in text, f"the Secret's value appears in {where}"


@pytest.fixture
def service(
    cluster_kubeconfig: Path, kube: client.ApiClient, registry: Registry, tmp_path: Path
) -> Iterator[Service]:
    where = dict(kubeconfig=cluster_kubeconfig, api=kube, registry=registry, tmp_path=tmp_path)
    with service_copy(Service, "node-hello", "esec", **where) as svc:
        svc.secret_value = f"tok-{uuid.uuid4().hex}"
        svc.deploy_yaml()
        svc.commit("node-hello with a secret env")
        yield svc


def _app_env(pod: client.V1Pod) -> dict[str, client.V1EnvVar]:
    (container,) = [c for c in pod.spec.containers if c.name == "app"]
    return {e.name: e for e in container.env or []}


def _assert_rolled_back_or_uninstalled(ship: Ship, action: str) -> dict:
    assert ship.returncode == ExitCode.ROLLOUT == 16, ship.output[-4000:]
    assert ship.report["outcome"]["failed_stage"] == "watch", ship.report["outcome"]
    rollout = ship.report["rollout"]
    assert rollout["verdict"] == "failed" and rollout["rolled_back"] is True, rollout
    assert rollout["rollback"]["action"] == action, rollout
    assert "CreateContainerConfigError" in rollout["reason"], rollout
    hint = ship.report["outcome"]["hint"] or ""
    assert "kubectl create secret generic" in hint and "-n <namespace>" in hint, ship.report["outcome"]
    return rollout


def test_secret_env_reaches_the_pod_by_reference_and_a_missing_key_rolls_back(
    service: Service, kube: client.ApiClient
) -> None:
    service.create_secret("app", {"token": service.secret_value})

    v1 = service.ship()

    assert v1.returncode == 0, v1.output[-4000:]
    assert v1.report["rollout"]["verdict"] == "healthy"
    core = client.CoreV1Api(kube)
    pods = core.list_namespaced_pod(
        service.namespace, label_selector=f"app.kubernetes.io/instance={service.name}"
    ).items
    running = [p for p in pods if p.metadata.deletion_timestamp is None and p.status.phase == "Running"]
    assert running, [(p.metadata.name, p.status.phase) for p in pods]
    for pod in running:
        token = _app_env(pod)["GREETING_TOKEN"]
        assert token.value is None
        ref = token.value_from.secret_key_ref
        assert (ref.name, ref.key) == ("app", "token")
    # what helm stored (values, manifest) names the Secret and key but never holds the value
    stored = service.helm().get_all(
        service.name, service.namespace, 1, template="{{ .Release.Config }}{{ .Release.Manifest }}"
    )
    assert "secretKeyRef" in stored and "GREETING_TOKEN" in stored
    assert_value_absent(service.secret_value, {"helm release": stored})
    assert service.get("/").body.strip() == b"hello from node-hello"

    # v2 names a key the Secret does not have
    service.deploy_yaml(key="no-such-key")
    service.commit("v2: a key the Secret lacks")
    v2 = service.ship()

    rollout = _assert_rolled_back_or_uninstalled(v2, "rollback")
    assert f"couldn't find key no-such-key in Secret {service.namespace}/app" in rollout["reason"], rollout
    assert rollout["rollback"]["to_revision"] == 1 and rollout["rollback"]["verified"] is True, rollout
    assert "no-such-key" in v2.stdout  # the diagnosis is in the CI log too
    v2.assert_traced("secretEnv.GREETING_TOKEN.key", "service", ".pipeline/deploy.yaml", 11)
    assert service.get("/").body.strip() == b"hello from node-hello"


def test_a_secret_that_does_not_exist_fails_the_first_install_and_uninstalls_it(
    service: Service, kube: client.ApiClient
) -> None:
    service.secret_value = f"tok-{uuid.uuid4().hex}"  # in a Secret under another name: never referenced
    service.create_secret("other", {"token": service.secret_value})
    service.deploy_yaml(secret="missing-app")
    service.commit("a Secret that does not exist")

    ship = service.ship()

    rollout = _assert_rolled_back_or_uninstalled(ship, "uninstall")
    assert 'secret "missing-app" not found' in rollout["reason"], rollout
    assert 'secret "missing-app" not found' in ship.stdout
    ship.assert_traced("secretEnv.GREETING_TOKEN.secret", "service", ".pipeline/deploy.yaml", 11)
    assert service.helm().status(service.name, service.namespace) is None
    assert client.AppsV1Api(kube).list_namespaced_deployment(service.namespace).items == []
