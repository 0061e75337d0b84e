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
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from junitparser import Error, Failure, JUnitXml
from kubernetes import client

from deployer import portforward
from deployer.errors import ExitCode
from deployer.helm import Helm
from deployer.report import report_schema
from e2e.conftest import REPO, Registry
from e2e.localcluster.configs import registry_credentials

pytestmark = [pytest.mark.cluster, pytest.mark.registry, pytest.mark.docker, pytest.mark.slow]

DEPLOYER = str(Path(sys.executable).parent / "deployer")
NODE_HELLO = REPO / "examples" / "node-hello"
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


@dataclass
class Ship:
    """One `deployer ship` run: its exit code, output, report and JUnit file."""

    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any]
    junit: JUnitXml
    files: dict[str, str]

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def stage(self, name: str) -> dict[str, Any]:
        return next(s for s in self.report["stages"] if s["name"] == name)

    def cases(self) -> dict[str, str]:
        """'<suite>/<case>' → passed | failure | error | skipped."""
        out = {}
        for suite in self.junit:
            for case in suite:
                kinds = {type(r).__name__.lower() for r in case.result}
                verdict = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
                out[f"{suite.name}/{case.name}"] = verdict
        return out


@dataclass
class Service:
    """A copy of node-hello in its own git repository, shipped to its own namespace."""

    root: Path
    namespace: str
    kubeconfig: Path
    api: client.ApiClient
    runs: int = 0

    @property
    def name(self) -> str:
        return self.root.name  # also the release name and the image repository's last part

    def write(self, relative: str, text: str) -> None:
        (self.root / relative).write_text(text)

    def deploy_yaml(self, readiness: str = "/healthz", extra: str = "") -> None:
        self.write(
            ".pipeline/deploy.yaml", f"namespace: {self.namespace}\n{FAST.format(readiness=readiness)}{extra}"
        )

    def commit(self, message: str) -> None:
        git = ["git", "-C", str(self.root), "-c", "user.email=e2e@test", "-c", "user.name=e2e"]
        subprocess.run([*git, "add", "-A"], check=True, capture_output=True)
        subprocess.run([*git, "commit", "-qm", message], check=True, capture_output=True)

    def ship(self) -> Ship:
        self.runs += 1
        report, junit = self.root.parent / f"ship{self.runs}.json", self.root.parent / f"ship{self.runs}.xml"
        done = self.deployer(
            "ship", str(self.root), "--kubeconfig", str(self.kubeconfig), "--timeout", "240",
            "--report", str(report), "--junit", str(junit),
        )  # fmt: skip
        assert report.exists() and junit.exists(), done.stdout[-3000:] + done.stderr[-3000:]
        data = json.loads(report.read_text())
        # Every report of every outcome validates against the schema, and a JUnit reader reads every file.
        jsonschema.Draft202012Validator(report_schema()).validate(data)
        assert data["outcome"]["exit_code"] == done.returncode
        ship = Ship(
            done.returncode,
            done.stdout,
            done.stderr,
            data,
            JUnitXml.fromfile(str(junit)),
            {"report": report.read_text(), "junit": junit.read_text()},
        )
        _assert_no_secret(ship)
        return ship

    def deployer(self, *args: str) -> subprocess.CompletedProcess[str]:
        # CI mode, as a post-merge job runs it: plain lines, and a dirty work tree would be refused.
        env = {**os.environ, "CI": "true"}
        return subprocess.run([DEPLOYER, *args], capture_output=True, text=True, env=env, timeout=600)

    def release_command(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.deployer(command, str(self.root), "--kubeconfig", str(self.kubeconfig), *args)

    def helm(self) -> Helm:
        return Helm(kubeconfig=self.kubeconfig, timeout=120)

    def get(self, path: str) -> portforward.HttpResponse:
        """GET `path` on a ready pod of the release through a port-forward."""
        pod = portforward.ready_pod(self.api, self.namespace, f"app.kubernetes.io/instance={self.name}")
        return portforward.http_get(self.api, self.namespace, pod, 8080, path, timeout=10)

    def running_images(self) -> set[str]:
        pods = client.CoreV1Api(self.api).list_namespaced_pod(
            self.namespace, label_selector=f"app.kubernetes.io/instance={self.name}"
        )
        return {p.spec.containers[0].image for p in pods.items if p.metadata.deletion_timestamp is None}


def _secrets() -> set[str]:
    creds = registry_credentials()
    assert creds is not None
    user, password = creds
    return {password, base64.b64encode(f"{user}:{password}".encode()).decode()}


def _assert_no_secret(ship: Ship) -> None:
    texts = {"stdout": ship.stdout, "stderr": ship.stderr, **ship.files}
    for where, text in texts.items():
        for secret in _secrets():
            assert secret not in text, f"a registry secret appears in the ship's {where}"


def _registry_get(path: str) -> tuple[int, dict[str, Any]]:
    creds = registry_credentials()
    assert creds is not None
    token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:5000{path}", headers={"Authorization": f"Basic {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _tags(repository: str) -> list[str]:
    status, body = _registry_get(f"/v2/{repository}/tags/list")
    if status == 404:  # NAME_UNKNOWN: nothing was ever pushed to it
        return []
    assert status == 200, body
    return list(body.get("tags") or [])


def _delete_pushed(repository: str) -> None:
    """Remove what the test pushed (manifests; the registry's GC owns the blobs)."""
    creds = registry_credentials()
    assert creds is not None
    token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
    accept = (
        "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
    )
    for tag in _tags(repository):
        url = f"http://127.0.0.1:5000/v2/{repository}/manifests/{tag}"
        head = urllib.request.Request(
            url, method="HEAD", headers={"Authorization": f"Basic {token}", "Accept": accept}
        )
        try:
            with urllib.request.urlopen(head, timeout=10) as r:
                digest = r.headers["Docker-Content-Digest"]
            delete = urllib.request.Request(
                f"http://127.0.0.1:5000/v2/{repository}/manifests/{digest}",
                method="DELETE",
                headers={"Authorization": f"Basic {token}"},
            )
            urllib.request.urlopen(delete, timeout=10).close()
        except urllib.error.HTTPError:
            pass  # already gone (two tags, one manifest)


def _remove_local_images(registry: Registry, name: str) -> None:
    listed = registry.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
    refs = [r for r in listed.stdout.split() if r.split(":")[0].endswith(f"/{name}")]
    if refs:
        registry.docker("image", "rm", "--force", *refs)


@pytest.fixture
def service(
    cluster_kubeconfig: Path, kube: client.ApiClient, registry: Registry, tmp_path: Path
) -> Iterator[Service]:
    suffix = uuid.uuid4().hex[:6]
    root = tmp_path / f"e8f-{suffix}"
    shutil.copytree(NODE_HELLO, root, ignore=shutil.ignore_patterns("node_modules", ".git"))
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    svc = Service(root, f"e8-{suffix}", cluster_kubeconfig, kube)
    svc.deploy_yaml()
    svc.commit("node-hello copy")
    yield svc
    svc.helm().uninstall(svc.name, svc.namespace)
    try:
        client.CoreV1Api(kube).delete_namespace(svc.namespace, propagation_policy="Background")
    except client.ApiException as e:
        if e.status != 404:
            raise
    _delete_pushed(f"staging/{svc.name}")
    _delete_pushed(f"staging/charts/{svc.name}")
    _remove_local_images(registry, svc.name)


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
    assert _tags(f"staging/{service.name}") == [] and _tags(f"staging/charts/{service.name}") == []
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
