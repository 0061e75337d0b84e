"""`smoke.testImage` through the real `deployer ship` CLI (CI mode), on the real cluster, registry and docker.

The chart's `helm test` pod runs a bash script. Each test ships a copy of node-hello from a clean git work
tree into its own namespace, with `--report`, and reads the report (validated against its schema):

- `smoke.testImage: 127.0.0.1:5000/base/bookworm:12`: the test pod runs that image and the ship passes;
- a test image without bash (a one-file image holding Debian's static catatonit, pushed to the registry
  by this module): exit 17, and the output and the report say the test pod's image has no bash and what
  to set; the kubelet's reason is read back from the real test pod;
- a `smoke.testImage` that is no image reference, or one outside the policy's repositories: exit 10 / 11
  before anything is built, naming deploy.yaml's line and `smoke.testImage`.

Short probe periods and deadlines keep each ship to a few seconds.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from deployer import smoke
from deployer.errors import ExitCode
from deployer.tools import testpod
from e2e.conftest import DOCKER, Registry
from e2e.localcluster import pause
from e2e.shipping import ServiceCopy, delete_pushed, service_copy
from tests.conftest import require

pytestmark = [pytest.mark.cluster, pytest.mark.registry, pytest.mark.docker]

BOOKWORM = "127.0.0.1:5000/base/bookworm:12"  # the base image: has bash
FIX = (
    "has no bash: set smoke.testImage in .pipeline/deploy.yaml to an image with bash "
    "(e.g. the base image), or smoke.helmTest: false"
)

DEPLOY_YAML = """namespace: {namespace}
probes:
  readiness: {{path: /healthz, periodSeconds: 1, timeoutSeconds: 1, failureThreshold: 3}}
  liveness: {{path: /healthz, initialDelaySeconds: 5, periodSeconds: 5}}
smoke:
  helmTest: true
  testPath: /healthz
  testImage: {test_image}
timeouts: {{progressDeadline: 30, rollout: 45, helm: 60, smoke: 15}}
"""


class Service(ServiceCopy):
    def configure(self, test_image: str) -> None:
        self.write(
            ".pipeline/deploy.yaml", DEPLOY_YAML.format(namespace=self.namespace, test_image=test_image)
        )
        self.commit(f"test image {test_image}")


@pytest.fixture(scope="module")
def no_bash_image(registry: Registry) -> Iterator[str]:
    """A one-layer image holding only Debian's static catatonit (no shell at all), pushed to the registry."""
    require(
        "catatonit (static, for a bash-less image)", pause.CATATONIT.is_file(), "apt-get install catatonit"
    )
    ref = f"{registry.host}/e2e/no-bash:{uuid.uuid4().hex[:8]}"
    archive = pause.single_file_archive(
        ref, "pause", pause.CATATONIT.read_bytes(), ["/pause", "-P"], "e2e/test_smoke_image.py: no bash"
    )
    loaded = subprocess.run(
        [DOCKER, "load"],
        input=archive,
        capture_output=True,
        env={**os.environ, "DOCKER_CONFIG": str(registry.docker_config)},
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr.decode()
    pushed = registry.docker("push", ref)
    assert pushed.returncode == 0, pushed.stderr
    yield ref
    registry.docker("image", "rm", "--force", ref)
    delete_pushed("e2e/no-bash")


@pytest.fixture
def service(
    cluster_kubeconfig: Path, kube: client.ApiClient, registry: Registry, tmp_path: Path
) -> Iterator[Service]:
    where = dict(kubeconfig=cluster_kubeconfig, api=kube, registry=registry, tmp_path=tmp_path)
    with service_copy(Service, "node-hello", "esi", **where) as svc:
        yield svc


def _test_pods(service: Service, kube: client.ApiClient) -> list[dict[str, Any]]:
    return smoke.read_test_pods(kube, service.namespace, service.name)


def test_a_test_image_with_bash_runs_the_helm_test(service: Service, kube: client.ApiClient) -> None:
    service.configure(BOOKWORM)
    ship = service.ship()
    assert ship.returncode == 0, ship.output[-4000:]
    assert ship.stage("smoke")["status"] == "success"
    assert [(c["name"], c["status"]) for c in ship.stage("smoke")["details"]["smoke"]] == [
        ("helm-test", "passed")
    ]
    # The test pod really ran the base image (not the service's), and succeeded there. The ship made it
    # from the chart's hook during the watch and told it to go after (deployer/tools/testpod.py); its
    # verdict is the container's exit: the phase turns Succeeded only once the sandbox is torn down.
    assert f"go: test pod {service.name}-test-http (created during the watch)" in ship.output
    (pod,) = _test_pods(service, kube)
    assert pod["metadata"]["annotations"] == {testpod.ANNOTATION: "test"}
    (container,) = pod["spec"]["containers"]
    assert container["image"] == BOOKWORM
    assert container["command"][0] == "bash"
    (status,) = pod["status"]["containerStatuses"]
    assert status["state"]["terminated"]["exitCode"] == 0, status
    assert pod["status"]["phase"] in ("Running", "Succeeded")
    (image,) = [i for i in ship.report["images"] if i.get("pushed")]
    deployed = client.AppsV1Api(kube).read_namespaced_deployment(service.name, service.namespace)
    assert deployed.spec.template.spec.containers[0].image == f"{image['repository']}@{image['digest']}"


def test_a_test_image_without_bash_fails_smoke_with_the_fix(
    service: Service, kube: client.ApiClient, no_bash_image: str
) -> None:
    service.configure(no_bash_image)
    ship = service.ship()

    assert ship.returncode == ExitCode.SMOKE == 17, ship.output[-4000:]
    outcome = ship.report["outcome"]
    assert (outcome["failed_stage"], outcome["exit_class"]) == ("smoke", "smoke")
    # The fix is the hint of the failure, in the report and in the CI log.
    assert FIX in outcome["hint"], outcome
    assert FIX in ship.stage("smoke")["hint"]
    assert f"hint: the test pod's image {FIX}" in ship.output, ship.output
    ship.assert_traced("smoke.testImage", "service", ".pipeline/deploy.yaml", 8)  # the line to fix
    (check,) = ship.stage("smoke")["details"]["smoke"]
    assert (check["name"], check["status"]) == ("helm-test", "failed")
    # named from the test pod's own status, which ship reads after a failed helm test
    assert f"the test pod's image {no_bash_image} has no bash" in check["detail"], check
    # The rollout itself was healthy: only the test pod is at fault, and the release stays deployed.
    assert ship.report["rollout"]["verdict"] == "healthy"
    assert ship.stage("watch")["status"] == "success"

    # The kubelet's reason, read back from the real test pod, is what deployer names plainly.
    (pod,) = _test_pods(service, kube)
    (status,) = pod["status"]["containerStatuses"]
    terminated = status["state"]["terminated"]
    assert terminated["reason"] in ("StartError", "ContainerCannotRun"), status
    assert 'exec: "bash": executable file not found in $PATH' in terminated["message"], status
    found = smoke.diagnose_helm_test("", [pod])
    assert found is not None
    assert found.hint == smoke.BASH_HINT == f"the test pod's image {FIX}"
    assert found.message == f"the test pod's image {no_bash_image} has no bash: its container could not start"


@pytest.mark.parametrize(
    ("test_image", "exit_code", "stage", "words"),
    [
        # refused when deploy.yaml is read, before anything is built
        ("'http://127.0.0.1:5000/base/bookworm:12'", ExitCode.CONFIG, "compile", "is not an image reference"),
        # refused with the other policy enforcements, when the chart is rendered: before any deploy
        ("docker.io/library/bash:5", ExitCode.POLICY, "chart", "not in the policy's allowed repositories"),
    ],
)
def test_a_bad_test_image_is_refused_with_its_place_in_deploy_yaml(
    service: Service, test_image: str, exit_code: int, stage: str, words: str
) -> None:
    service.configure(test_image)
    ship = service.ship()
    assert ship.returncode == exit_code, ship.output[-4000:]
    assert ship.report["outcome"]["failed_stage"] == stage, ship.report["outcome"]
    assert ship.stage("deploy")["status"] == "not-run"
    assert words in ship.output
    assert f"{service.root / '.pipeline' / 'deploy.yaml'}:8" in ship.output  # file:line of smoke.testImage
    assert "smoke.testImage" in ship.output


def test_a_test_image_that_cannot_be_pulled_fails_smoke_without_waiting_out_its_timeout(
    service: Service, kube: client.ApiClient
) -> None:
    missing = "127.0.0.1:5000/e2e/no-such-test-image:never-pushed"
    service.configure(missing)
    ship = service.ship()

    assert ship.returncode == ExitCode.SMOKE == 17, ship.output[-4000:]
    assert ship.stage("watch")["status"] == "success"  # the service itself is healthy
    (check,) = ship.stage("smoke")["details"]["smoke"]
    assert (check["name"], check["status"]) == ("helm-test", "failed")
    assert f"the test pod cannot pull its image {missing}" in check["detail"], check
    # The early test pod's wait ends on the kubelet's verdict, not on the smoke timeout (15 s here).
    assert f"pod {service.name}-test-http failed: cannot start (ErrImagePull" in ship.output or (
        f"pod {service.name}-test-http failed: cannot start (ImagePullBackOff" in ship.output
    ), ship.output[-4000:]
    assert "did not start within the smoke timeout" not in ship.output
    assert "check smoke.testImage in .pipeline/deploy.yaml" in ship.stage("smoke")["hint"]
