"""Which helm test hooks a ship creates early, and how (deployer.tools.testpod.early_manifests: pure).

Creating, attaching and watching run against the real cluster (e2e/test_smoke_image.py, the ship e2e
tests); the chart's script and its go signal run under the real bash in
tests/integration/test_test_pod_script.py.
"""

from __future__ import annotations

import pytest
import yaml

from deployer.tools.testpod import ANNOTATION, AWAIT_GO, early_manifests

TEST_POD = """\
---
# Source: hello/templates/tests/test-http.yaml
apiVersion: v1
kind: Pod
metadata:
  name: hello-test-http
  labels: {app.kubernetes.io/instance: hello, app.kubernetes.io/component: test}
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation
    team: web
spec:
  restartPolicy: Never
  containers:
    - name: http-check
      image: 127.0.0.1:5000/staging/hello@sha256:0
      env:
        - {name: TARGET_NAME, value: hello}
        - {name: TEST_AWAIT_GO_SECONDS, value: "0"}
      command: [bash, -c, "exit 0"]
"""

MIGRATION = """\
---
apiVersion: batch/v1
kind: Job
metadata:
  name: hello-migrate
  annotations: {helm.sh/hook: pre-upgrade}
spec: {template: {spec: {restartPolicy: Never, containers: [{name: m, image: x}]}}}
"""


def test_the_test_pod_waits_for_go_and_is_no_hook_while_it_waits() -> None:
    (pod,) = early_manifests(MIGRATION + TEST_POD, "web-ns", 300)  # type: ignore[misc]
    meta = pod["metadata"]
    assert (meta["name"], meta["namespace"]) == ("hello-test-http", "web-ns")
    # the rollout watch judges helm hook pods; this one is the smoke stage's, marked as made from the hook
    assert meta["annotations"] == {"team": "web", ANNOTATION: "test"}
    assert meta["labels"] == {"app.kubernetes.io/instance": "hello", "app.kubernetes.io/component": "test"}
    (container,) = pod["spec"]["containers"]
    assert (container["stdin"], container["stdinOnce"]) == (True, True)
    assert container["env"] == [{"name": "TARGET_NAME", "value": "hello"}, {"name": AWAIT_GO, "value": "300"}]
    assert container["command"] == ["bash", "-c", "exit 0"]  # the check itself is the chart's
    original = yaml.safe_load(TEST_POD)
    assert original["metadata"]["annotations"]["helm.sh/hook"] == "test"  # the input is left as it was


def test_a_hook_that_is_also_a_test_counts() -> None:
    (pod,) = early_manifests(
        TEST_POD.replace("helm.sh/hook: test", "helm.sh/hook: pre-install, test"), "n", 5
    )  # type: ignore[misc]
    assert pod["metadata"]["annotations"][ANNOTATION] == "pre-install, test"


@pytest.mark.parametrize(
    ("hooks", "reason"),
    [
        (MIGRATION, "the chart has no test hook"),
        ("", "the chart has no test hook"),
        (
            MIGRATION.replace("pre-upgrade", "test"),
            "test hook hello-migrate is not a one-container Pod with restartPolicy Never",
        ),
        (
            TEST_POD.replace("restartPolicy: Never", "restartPolicy: OnFailure"),
            "test hook hello-test-http is not a one-container Pod with restartPolicy Never",
        ),
        (
            TEST_POD.replace('- {name: TEST_AWAIT_GO_SECONDS, value: "0"}', "- {name: X, value: y}"),
            "test hook hello-test-http does not wait for a go signal (TEST_AWAIT_GO_SECONDS)",
        ),
        (
            TEST_POD
            + TEST_POD.replace("hello-test-http", "hello-test-2").replace(
                "restartPolicy: Never", "restartPolicy: Always"
            ),
            "test hook hello-test-2 is not a one-container Pod with restartPolicy Never",
        ),
    ],
    ids=["no test", "nothing", "a Job", "restarts", "no go signal", "one of two"],
)
def test_hooks_that_cannot_wait_for_go_are_left_to_helm_test(hooks: str, reason: str) -> None:
    assert early_manifests(hooks, "n", 5) == reason
