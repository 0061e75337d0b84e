"""Failing ships through the real `deployer ship` CLI in CI mode, on the real cluster, registry and docker.

Each test ships a copy of node-hello under its own name (so its own image repository and release) from a
clean git work tree (`CI=true` refuses a dirty one), into its own namespace, with `--report` and `--junit`;
every report is validated against deployer/schema/report.schema.json, every JUnit file read with a JUnit
reader, and every output scanned for the registry password. Short probe periods and deadlines in
deploy.yaml keep each scenario well under a minute.

- a crashing image: exit 16, the crash diagnosed with the log tail, rolled back, the old version serves;
  then `deployer status` names the rolled-back ship, `deployer rollback --revision <broken>` exits 16 and
  `deployer rollback` brings the good version back;
- an image the kubelet cannot pull (a pull secret with wrong registry credentials): exit 16,
  ErrImagePull/ImagePullBackOff diagnosed with the registry's 401, a first install uninstalled, an upgrade
  rolled back with the old version serving;
- a readiness probe that never passes: exit 16 by the probe's grace (not a deadline), rolled back;
- a failing test variant: exit 12 with the failing test's lines, nothing pushed, nothing deployed;
- `deployer diff` / `status` / `rollback` around a configuration change.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from junitparser import Error, Failure
from kubernetes import client

from deployer.errors import ExitCode
from e2e.conftest import Registry
from e2e.shipping import ServiceCopy, Ship, service_copy, tags

pytestmark = [pytest.mark.cluster, pytest.mark.registry, pytest.mark.docker, pytest.mark.slow]

HELLO = b"hello from node-hello"

# Fast probes and short deadlines: a healthy pod is ready in ~1 s, a broken one is recognised in seconds.
FAST = """
probes:
  readiness: {{path: {readiness}, periodSeconds: 1, timeoutSeconds: 1, failureThreshold: 3}}
  liveness: {{path: /healthz, initialDelaySeconds: 5, periodSeconds: 5}}
smoke:
  helmTest: false
  checks:
    - {{name: root, path: /, body: hello from node-hello}}
timeouts: {{progressDeadline: 30, rollout: 45, helm: 60, smoke: 15}}
"""

CRASH = """'use strict';
// Broken on purpose: exits before listening, as an app with a missing setting would.
console.error('node-hello: fatal: DATABASE_URL is not set, refusing to start');
process.exit(3);
"""


class Service(ServiceCopy):
    """node-hello with fast probes and short deadlines (FAST), shipped with a 240 s overall deadline."""

    def deploy_yaml(self, readiness: str = "/healthz", extra: str = "") -> None:
        self.write(
            ".pipeline/deploy.yaml", f"namespace: {self.namespace}\n{FAST.format(readiness=readiness)}{extra}"
        )

    def ship(self, *args: str) -> Ship:
        return super().ship("--timeout", "240", *args)


@pytest.fixture
def service(
    cluster_kubeconfig: Path, kube: client.ApiClient, registry: Registry, tmp_path: Path
) -> Iterator[Service]:
    with service_copy(
        Service,
        "node-hello",
        "e8f",
        kubeconfig=cluster_kubeconfig,
        api=kube,
        registry=registry,
        tmp_path=tmp_path,
    ) as svc:
        svc.deploy_yaml()
        svc.commit("node-hello copy")
        yield svc


def _pushed_image(ship: Ship) -> str:
    (image,) = [i for i in ship.report["images"] if i.get("pushed")]
    return f"{image['repository']}@{image['digest']}"


def _ship_healthy(svc: Service) -> Ship:
    ship = svc.ship()
    assert ship.returncode == 0, ship.output[-4000:]
    assert ship.report["rollout"]["verdict"] == "healthy"
    return ship


def _assert_rolled_back_failure(ship: Ship) -> dict[str, Any]:
    assert ship.returncode == ExitCode.ROLLOUT, ship.output[-4000:]
    assert (ship.report["outcome"]["failed_stage"], ship.stage("watch")["status"]) == ("watch", "failed")
    rollout = ship.report["rollout"]
    assert rollout["verdict"] == "failed" and rollout["rolled_back"] is True, rollout
    cases = ship.cases()
    assert cases[f"{ship.report['service']['name']}.ship/watch"] == "failure", cases
    assert cases[f"{ship.report['service']['name']}.ship/smoke"] == "skipped", cases
    return rollout


# --- a) a crashing image ----------------------------------------------------------------------------------


def test_crashing_image_is_diagnosed_rolled_back_and_the_old_version_serves(service: Service) -> None:
    v1 = _ship_healthy(service)
    good = _pushed_image(v1)

    service.write("server.js", CRASH)
    service.commit("v2: exits on start")
    v2 = service.ship()

    rollout = _assert_rolled_back_failure(v2)
    # The crash is diagnosed as a container exit / crash loop, with the app's own last words as evidence.
    assert any(word in rollout["reason"] for word in ("exit code 3", "CrashLoopBackOff", "Error")), rollout
    assert any("DATABASE_URL is not set" in line for line in rollout["evidence"]), rollout["evidence"]
    assert "DATABASE_URL is not set" in v2.stdout  # the log tail is in the CI log, not only the report
    # the line to fix: the production variant's entrypoint in blubber.yaml
    v2.assert_traced("variants.production.entrypoint", "service", ".pipeline/blubber.yaml", 27)
    assert rollout["rollback"] == {
        "action": "rollback",
        "to_revision": 1,
        "verified": True,
        "detail": "rolled back to revision 1, which serves again",
    }
    assert _pushed_image(v2) != good
    # The old version serves again: the pods run v1's digest and answer v1's body.
    assert service.running_images() == {good}
    response = service.get("/")
    assert (response.status, response.body.strip()) == (200, HELLO)

    # `deployer status` tells what happened.
    status = service.release_command("status", "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert (data["revision"], data["status"], data["image"], data["healthy"]) == (3, "deployed", good, True)
    assert data["last_ship"].startswith(
        f"revision 2 ({_pushed_image(v2)}) did not roll out and was rolled back"
    )
    assert data["lock"] is None

    # Rolling back to the broken revision by hand fails the same way: exit 16, diagnosed.
    broken = service.release_command("rollback", "--revision", "2", "--timeout", "45")
    assert broken.returncode == ExitCode.ROLLOUT, broken.stdout[-3000:] + broken.stderr[-3000:]
    assert "rollback to revision 2 (now revision 4) did not become healthy" in broken.stderr
    assert "DATABASE_URL is not set" in broken.stderr
    # ... and `deployer rollback` with no revision skips revisions that were rolled back away from.
    back = service.release_command("rollback")
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    assert "from revision 4 to 1 (now revision 5)" in back.stdout
    assert service.running_images() == {good}
    assert service.get("/").body.strip() == HELLO


# --- b) an image that cannot be pulled --------------------------------------------------------------------


def _stale_pull_secret(kube: client.ApiClient, namespace: str) -> None:
    """A pull secret with a wrong password for the registry. Pods that name it are pulled with it instead
    of the node's own credentials, and the registry refuses the pull (as after a rotated token)."""
    core = client.CoreV1Api(kube)
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    except client.ApiException as e:
        if e.status != 409:  # the namespace exists already after an earlier ship
            raise
    auth = base64.b64encode(b"deployer:not-the-password").decode()
    config = {"auths": {"127.0.0.1:5000": {"auth": auth}}}
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="stale-pull-secret"),
            type="kubernetes.io/dockerconfigjson",
            string_data={".dockerconfigjson": json.dumps(config)},
        ),
    )
    _hold_the_secret_on_the_node(core, namespace)


def _hold_the_secret_on_the_node(core: client.CoreV1Api, namespace: str) -> None:
    """Keep a pod that names the secret, and wait until the kubelet pulled with it (and was refused).

    The kubelet starts watching a secret only when the first pod naming it arrives; a pull that comes
    before that watch has synced goes without the secret ("FailedToRetrieveImagePullSecret"), with the
    node's own good credentials, and succeeds. This pod makes the watch exist before the ship; it stays
    until the namespace is deleted, so the watch is never dropped in between.
    """
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="pull-secret-holder"),
            spec=client.V1PodSpec(
                image_pull_secrets=[client.V1LocalObjectReference(name="stale-pull-secret")],
                containers=[
                    client.V1Container(
                        name="hold",
                        image="127.0.0.1:5000/base/bookworm:12",
                        image_pull_policy="Always",
                        command=["sleep", "3600"],
                    )
                ],
            ),
        ),
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        events = core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=pull-secret-holder"
        ).items
        if any(e.reason == "Failed" and "401" in (e.message or "") for e in events):
            return
        time.sleep(0.5)
    pytest.fail("the kubelet never pulled with the stale pull secret", pytrace=False)


@pytest.mark.parametrize("upgrade", [False, True], ids=["first-install", "upgrade"])
def test_image_that_cannot_be_pulled_is_diagnosed_and_undone(
    service: Service, kube: client.ApiClient, upgrade: bool
) -> None:
    good = _pushed_image(_ship_healthy(service)) if upgrade else None
    _stale_pull_secret(kube, service.namespace)
    service.deploy_yaml(extra="imagePullSecrets: [stale-pull-secret]\n")
    # A new image (never pulled to the node yet, so the kubelet must pull it, with the stale secret).
    service.write("app.js", (service.root / "app.js").read_text() + "// v2\n")
    service.commit("pull with a stale secret")

    ship = service.ship()

    rollout = _assert_rolled_back_failure(ship)
    assert "ImagePullBackOff" in rollout["reason"] or "ErrImagePull" in rollout["reason"], rollout
    assert any("401" in line or "nauthorized" in line for line in rollout["evidence"]), rollout["evidence"]
    assert "ImagePullBackOff" in ship.stdout or "ErrImagePull" in ship.stdout
    # refused with the pull secret deploy.yaml names: that line (after FAST's ten)
    ship.assert_traced("imagePullSecrets", "service", ".pipeline/deploy.yaml", 11)
    # The image itself was pushed: it is the pull that fails, not the push.
    assert ship.stage("push")["status"] == "success" and _pushed_image(ship) != good
    if not upgrade:  # the first install is removed
        assert rollout["rollback"]["action"] == "uninstall", rollout
        assert service.helm().status(service.name, service.namespace) is None
        assert client.AppsV1Api(kube).list_namespaced_deployment(service.namespace).items == []
        return
    assert rollout["rollback"] == {
        "action": "rollback",
        "to_revision": 1,
        "verified": True,
        "detail": "rolled back to revision 1, which serves again",
    }
    assert service.running_images() == {good}
    assert service.get("/").body.strip() == HELLO


# --- c) a readiness probe that never passes ---------------------------------------------------------------


def test_readiness_that_never_passes_fails_by_the_probe_grace_and_rolls_back(service: Service) -> None:
    v1 = _ship_healthy(service)

    service.deploy_yaml(readiness="/never-ready")  # 404: the pod runs but is never ready
    service.commit("v2: readiness on a path that 404s")
    v2 = service.ship()

    rollout = _assert_rolled_back_failure(v2)
    # Recognised by the readiness rule (probe window: 3 failures x 1 s + 1 s timeout + 1 s slack), not by
    # the Deployment's progress deadline (30 s) or the watch deadline (45 s).
    assert "Readiness" in rollout["reason"] or "readiness" in rollout["reason"], rollout
    assert "ProgressDeadlineExceeded" not in rollout["reason"] and rollout["verdict"] != "timeout"
    assert any("Readiness probe failed" in line and "404" in line for line in rollout["evidence"]), rollout
    origin = v2.assert_traced("probes.readiness.path", "service", ".pipeline/deploy.yaml", 4)
    assert origin["text"] == "/never-ready" and "404" in origin["why"], origin
    assert rollout["rollback"]["to_revision"] == 1 and rollout["rollback"]["verified"] is True
    assert service.running_images() == {_pushed_image(v1)}
    assert service.get("/").body.strip() == HELLO
    print(f"readiness failure recognised after {v2.stage('watch')['duration_seconds']:.1f}s of watching")


# --- d) a failing test variant ----------------------------------------------------------------------------


def test_failing_test_variant_pushes_and_deploys_nothing(service: Service) -> None:
    tests = service.root / "test" / "app.test.js"
    tests.write_text(
        tests.read_text()
        + "\ntest('GET / greets in French', async () => {\n"
        + "  const res = await request(app).get('/');\n"
        + "  assert.strictEqual(res.text, 'bonjour de node-hello\\n');\n"
        + "});\n"
    )
    service.commit("a test the app does not pass")

    ship = service.ship()

    assert ship.returncode == ExitCode.TEST_FAILED, ship.output[-4000:]
    assert ship.report["outcome"]["failed_stage"] == "test"
    evidence = ship.stage("test")["evidence"]
    # the failing test's own line (node's spec reporter marks it ✖, TAP with "not ok") and its assertion
    failing = [line for line in evidence if "greets in French" in line]
    assert any("✖" in line or "not ok" in line for line in failing), evidence
    assert any("bonjour de node-hello" in line for line in evidence), evidence
    assert "greets in French" in ship.stdout
    assert [s["status"] for s in ship.report["stages"][2:]] == ["not-run"] * 6, ship.report["stages"]
    assert not any(i.get("pushed") for i in ship.report["images"])
    cases = ship.cases()
    assert cases[f"{service.name}.test-variant/test variant"] == "failure", cases
    (case,) = [c for s in ship.junit if s.name == f"{service.name}.test-variant" for c in s]
    (failure,) = [r for r in case.result if isinstance(r, Failure | Error)]
    assert "greets in French" in (failure.text or "")
    # Nothing pushed: the service's repository has no tag at all; nothing deployed: no release.
    assert tags(f"staging/{service.name}") == [] and tags(f"staging/charts/{service.name}") == []
    assert service.helm().status(service.name, service.namespace) is None


# --- deployer diff / status / rollback around a config change ---------------------------------------------


def test_diff_status_and_rollback_of_a_configuration_change(service: Service) -> None:
    _ship_healthy(service)

    same = service.release_command("diff")
    assert same.returncode == 0, same.stderr
    assert same.stdout.rstrip().endswith("no changes"), same.stdout

    service.deploy_yaml(extra="env: {GREETING_STYLE: loud}\n")
    service.commit("v2: a new environment variable")
    changed = service.release_command("diff")
    assert changed.returncode == 0, changed.stderr
    assert f"changed: Deployment {service.name}" in changed.stdout
    assert "+        - name: GREETING_STYLE" in changed.stdout
    assert "+          value: loud" in changed.stdout
    assert "Service" not in changed.stdout.split("changed:", 1)[1]  # only the Deployment changes

    v2 = _ship_healthy(service)
    again = service.release_command("diff")
    assert again.stdout.rstrip().endswith("no changes"), again.stdout

    status = service.release_command("status")
    assert status.returncode == 0, status.stderr
    assert "revision:  2 (deployed)" in status.stdout
    assert f"image:     {_pushed_image(v2)}" in status.stdout
    assert "pods:      1/1 ready, 1 updated, 1 available" in status.stdout
    assert "last ship: revision 2 (" in status.stdout and "shipped, now deployed" in status.stdout

    back = service.release_command("rollback")
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    assert "from revision 2 to 1 (now revision 3)" in back.stdout
    deployment = client.AppsV1Api(service.api).read_namespaced_deployment(service.name, service.namespace)
    env = {e.name for e in deployment.spec.template.spec.containers[0].env or []}
    assert "GREETING_STYLE" not in env
    # After the rollback the service's config (v2) differs from the live release (v1) again.
    after = service.release_command("diff")
    assert "+          value: loud" in after.stdout

    missing = service.deployer("status", str(service.root), "--namespace", f"{service.namespace}-none")
    assert missing.returncode == ExitCode.DEPLOY
    assert "no release" in missing.stderr
