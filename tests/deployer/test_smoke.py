"""Smoke checks as data: one result per check, every check runs, any failure raises SmokeFailed."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from deployer.deploy_config import DeployPolicy, load
from deployer.errors import DeployFailed, SmokeFailed
from deployer.smoke import (
    BASH_HINT,
    SmokeReport,
    diagnose_helm_test,
    evaluate,
    read_test_pods,
    run_checks,
)
from deployer.tools.kube import KubeForbidden


def config(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    root = tmp_path / "hello"
    (root / ".pipeline").mkdir(parents=True)
    (root / ".pipeline" / "deploy.yaml").write_text(text)
    return load(root, DeployPolicy(defaults={}, enforcements={}))


CHECKS = """
smoke:
  checks:
    - {name: root, path: /, body: hello}
    - {name: health, path: /healthz}
    - {name: gone, path: /gone, status: 404}
"""


def server(routes: dict[str, tuple[int, bytes]]):  # type: ignore[no-untyped-def]
    asked: list[str] = []

    def get(path: str, timeout: float) -> tuple[int, bytes]:
        asked.append(path)
        if path not in routes:
            raise SmokeFailed("connection refused")
        return routes[path]

    return get, asked


def test_all_checks_pass(tmp_path: Path) -> None:
    get, asked = server({"/": (200, b"hello world"), "/healthz": (200, b"ok"), "/gone": (404, b"")})
    tests: list[tuple[str, str, int]] = []

    def helm_test(release: str, namespace: str, timeout: int) -> str:
        tests.append((release, namespace, timeout))
        return "POD: hello-test-http\nGET http://hello:80/ -> HTTP/1.1 200 OK\n"

    results = run_checks(config(tmp_path, CHECKS), helm_test=helm_test, http_get=get)
    assert [(r.name, r.kind, r.passed) for r in results] == [
        ("helm-test", "helm-test", True),
        ("root", "http", True),
        ("health", "http", True),
        ("gone", "http", True),
    ]
    assert tests == [("hello", "hello", 30)]
    assert asked == ["/", "/healthz", "/gone"]
    assert results[1].message == "GET /: status 200 and body contains 'hello'"


def test_failures_are_collected_not_short_circuited(tmp_path: Path) -> None:
    get, asked = server({"/": (200, b"goodbye"), "/gone": (200, b"still here")})

    def helm_test(release: str, namespace: str, timeout: int) -> str:
        raise DeployFailed("helm test failed: pod hello-test-http failed\nGET / -> no response")

    with pytest.raises(SmokeFailed) as info:
        run_checks(config(tmp_path, CHECKS), helm_test=helm_test, http_get=get)
    report = info.value
    assert isinstance(report, SmokeReport)
    assert [(r.name, r.passed) for r in report.results] == [
        ("helm-test", False),
        ("root", False),
        ("health", False),
        ("gone", False),
    ]
    assert asked == ["/", "/healthz", "/gone"]  # every check ran
    assert report.message == "4 of 4 smoke checks failed: helm-test, root, health, gone"
    assert "root: GET /: status 200 but body does not contain 'hello'" in report.evidence
    assert "health: GET /healthz: connection refused" in report.evidence
    assert report.exit_code == SmokeFailed.exit_code
    assert report.details["smoke"][1]["output"] == "goodbye"


def test_helm_test_can_be_turned_off(tmp_path: Path) -> None:
    def helm_test(release: str, namespace: str, timeout: int) -> str:
        raise AssertionError("helm test must not run")

    get, _ = server({"/": (200, b"hello")})
    results = run_checks(
        config(tmp_path, "smoke:\n  helmTest: false\n  checks: [{path: /}]\n"),
        helm_test=helm_test,
        http_get=get,
    )
    assert [(r.name, r.passed) for r in results] == [("http-1", True)]


@pytest.mark.parametrize(
    ("status", "body", "passed"),
    [
        (200, b"say hello", True),
        (201, b"hello", False),
        (200, b"HELLO", False),
        (200, "héllo".encode(), False),
    ],
)
def test_evaluate(status: int, body: bytes, passed: bool, tmp_path: Path) -> None:
    check = config(tmp_path, "smoke: {checks: [{path: /, body: hello}]}\n").smoke_checks[0]
    assert evaluate(check, status, body)[0] is passed


def ready_condition(ready: bool):  # type: ignore[no-untyped-def]
    from kubernetes import client

    return client.V1PodCondition(type="Ready", status=str(ready))


class FakeCore:
    def __init__(self, *pods: tuple[str, bool, bool]) -> None:
        self.pods = pods
        self.asked: list[tuple[str, str]] = []

    def list_namespaced_pod(self, namespace: str, label_selector: str) -> object:
        from kubernetes import client

        self.asked.append((namespace, label_selector))
        deleted = "2026-11-27T07:00:00Z"
        items = [
            client.V1Pod(
                metadata=client.V1ObjectMeta(name=name, deletion_timestamp=deleted if gone else None),
                status=client.V1PodStatus(conditions=[ready_condition(ready)]),
            )
            for name, ready, gone in self.pods
        ]
        return client.V1PodList(items=items)


def test_ready_pod_skips_unready_and_terminating_pods() -> None:
    from deployer.tools.portforward import ready_pod

    core = FakeCore(
        ("web-c", True, False), ("web-a", True, True), ("web-b", False, False), ("web-d", True, False)
    )
    assert ready_pod(None, "ns", "app=web", core=core) == "web-c"
    assert core.asked == [("ns", "app=web")]
    with pytest.raises(SmokeFailed, match="no Ready pod matches app=web in namespace ns") as info:
        ready_pod(None, "ns", "app=web", core=FakeCore(("web-a", True, True), ("web-b", False, False)))
    assert info.value.hint == "kubectl --namespace ns get pods -l app=web"


# --- a helm test pod whose image has no bash ---------------------------------------------------------------

# What `helm test --logs` gives (through deployer.tools.helm's DeployFailed) when the test pod never ran its
# script: helm's error on stderr, then stdout's tail ending in an empty log section. Recorded from the
# local cluster with a test image that has no bash.
SILENT_FAILURE = """helm test failed: Error: 1 error occurred:
\t* pod hello-test-http failed
NAME: hello
LAST DEPLOYED: Fri Nov 27 09:15:43 2026
NAMESPACE: hello
STATUS: deployed
REVISION: 1
TEST SUITE:     hello-test-http
Last Started:   Fri Nov 27 09:15:44 2026
Last Completed: Fri Nov 27 09:15:46 2026
Phase:          Failed
NOTES:
Check it:   helm test hello --namespace hello --logs

POD LOGS: hello-test-http"""

# The same failure when the script ran and the service said no.
ANSWERED_FAILURE = (
    SILENT_FAILURE + "\nattempt 1 (0s): GET http://hello:80/ -> HTTP/1.1 500 Internal Server Error"
)

STARTERROR = (
    "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create "
    'failed: unable to start container process: exec: "bash": executable file not found in $PATH: unknown'
)

# The test pod as the API server returned it (trimmed), recorded from the local cluster (containerd).
TEST_POD: dict[str, Any] = {
    "metadata": {
        "name": "hello-test-http",
        "namespace": "hello",
        "annotations": {"helm.sh/hook": "test", "helm.sh/hook-delete-policy": "before-hook-creation"},
        "labels": {"app.kubernetes.io/component": "test", "app.kubernetes.io/instance": "hello"},
    },
    "spec": {
        "containers": [
            {"name": "http-check", "image": "127.0.0.1:5000/e2e/no-bash:catatonit", "command": ["bash", "-c"]}
        ]
    },
    "status": {
        "phase": "Failed",
        "containerStatuses": [
            {
                "image": "127.0.0.1:5000/e2e/no-bash:catatonit",
                "lastState": {},
                "name": "http-check",
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": {
                    "terminated": {
                        "exitCode": 128,
                        "finishedAt": "2026-11-27T09:15:44Z",
                        "message": STARTERROR,
                        "reason": "StartError",
                        "startedAt": "1970-01-01T00:00:00Z",
                    }
                },
            }
        ],
    },
}


def pod_with(**state: Any) -> dict[str, Any]:
    """TEST_POD with its container's `state` replaced."""
    pod = copy.deepcopy(TEST_POD)
    pod["status"]["containerStatuses"][0]["state"] = state
    return pod


def failing_helm_test(output: str):  # type: ignore[no-untyped-def]
    def helm_test(release: str, namespace: str, timeout: int) -> str:
        raise DeployFailed(output)

    return helm_test


def smoke_report(tmp_path: Path, output: str, test_pods: Any = None) -> SmokeReport:
    with pytest.raises(SmokeReport) as info:
        run_checks(
            config(tmp_path, "smoke: {}\n"),
            helm_test=failing_helm_test(output),
            http_get=None,
            test_pods=test_pods,
        )
    return info.value


def test_missing_bash_is_named_from_the_test_pods_status(tmp_path: Path) -> None:
    asked: list[tuple[str, str]] = []

    def test_pods(release: str, namespace: str) -> list[dict[str, Any]]:
        asked.append((release, namespace))
        return [TEST_POD]

    report = smoke_report(tmp_path, SILENT_FAILURE, test_pods)
    assert asked == [("hello", "hello")]
    assert report.exit_code == SmokeFailed.exit_code == 17
    assert report.hint == BASH_HINT
    assert report.hint == (
        "the test pod's image has no bash: set smoke.testImage in .pipeline/deploy.yaml to an image "
        "with bash (e.g. the base image), or smoke.helmTest: false"
    )
    (result,) = report.results
    assert result.message == (
        "helm test failed: the test pod's image 127.0.0.1:5000/e2e/no-bash:catatonit has no bash: "
        "its container could not start"
    )
    assert report.message == (
        "1 of 1 smoke checks failed: helm-test; helm-test: the test pod's image "
        "127.0.0.1:5000/e2e/no-bash:catatonit has no bash: its container could not start"
    )
    # The kubelet's own words are evidence, after helm's output (the tail of the output is what is kept).
    assert report.evidence[-1] == f"pod hello-test-http, container http-check: StartError: {STARTERROR}"
    assert "\t* pod hello-test-http failed" in report.evidence


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        # dockerd's wording for the same failure
        (
            "ContainerCannotRun",
            'OCI runtime create failed: runc create failed: unable to start container process: exec: "bash": '
            "executable file not found in $PATH: unknown",
        ),
        # an absolute path to bash that the image does not have
        (
            "StartError",
            'failed to create containerd task: ... unable to start container process: exec: "/bin/bash": '
            "stat /bin/bash: no such file or directory: unknown",
        ),
    ],
)
def test_missing_bash_in_other_wordings(reason: str, message: str) -> None:
    pod = pod_with(terminated={"exitCode": 128, "reason": reason, "message": message})
    found = diagnose_helm_test(SILENT_FAILURE, [pod])
    assert found is not None
    assert found.hint == BASH_HINT
    assert "has no " in found.message and "bash" in found.message
    assert found.evidence == (f"pod hello-test-http, container http-check: {reason}: {message}",)


def test_another_missing_executable_is_named_as_itself() -> None:
    message = STARTERROR.replace('"bash"', '"sh"')
    found = diagnose_helm_test(
        "", [pod_with(terminated={"exitCode": 128, "reason": "StartError", "message": message})]
    )
    assert found is not None
    assert "has no sh" in found.message
    assert found.hint.startswith("the test pod's image has no sh: set smoke.testImage")
    assert "bash" not in found.hint


def test_other_start_errors_and_pull_failures_are_explained() -> None:
    denied = 'exec: "bash": permission denied: unknown'
    found = diagnose_helm_test(
        "", [pod_with(terminated={"exitCode": 128, "reason": "StartError", "message": denied})]
    )
    assert found is not None
    assert found.message == (
        "the test pod's container could not start in image 127.0.0.1:5000/e2e/no-bash:catatonit (StartError)"
    )
    assert "smoke.testImage" in found.hint and "smoke.helmTest: false" in found.hint
    assert found.evidence == (f"pod hello-test-http, container http-check: StartError: {denied}",)

    pull = 'failed to pull and unpack image "127.0.0.1:5000/e2e/no-bash:catatonit": not found'
    found = diagnose_helm_test("", [pod_with(waiting={"reason": "ErrImagePull", "message": pull})])
    assert found is not None
    assert (
        found.message
        == "the test pod cannot pull its image 127.0.0.1:5000/e2e/no-bash:catatonit (ErrImagePull)"
    )
    assert found.hint.startswith("check smoke.testImage in .pipeline/deploy.yaml")


def test_a_test_pod_that_ran_is_not_explained_away(tmp_path: Path) -> None:
    """The script ran and the service answered 500: the log tells that story, no bash hint."""
    ran = pod_with(terminated={"exitCode": 1, "reason": "Error"})
    assert diagnose_helm_test(ANSWERED_FAILURE, [ran]) is None
    report = smoke_report(tmp_path, ANSWERED_FAILURE, lambda release, namespace: [ran])
    assert report.hint == "helm test hello --namespace hello --logs"
    assert report.results[0].message == "helm test failed"
    assert report.message == "1 of 1 smoke checks failed: helm-test"
    assert "attempt 1 (0s): GET http://hello:80/ -> HTTP/1.1 500 Internal Server Error" in report.evidence


def test_a_started_test_pod_with_an_empty_log_is_not_blamed_on_bash() -> None:
    killed = pod_with(terminated={"exitCode": 137, "reason": "OOMKilled"})
    assert diagnose_helm_test(SILENT_FAILURE, [killed]) is None
    assert diagnose_helm_test(SILENT_FAILURE, None) is not None  # the log alone would have suggested it


def test_without_the_pods_status_an_empty_test_log_points_at_bash(tmp_path: Path) -> None:
    report = smoke_report(tmp_path, SILENT_FAILURE)  # no test_pods reader
    assert report.hint == (
        "the test pod's image probably has no bash: set smoke.testImage in .pipeline/deploy.yaml to an image "
        "with bash (e.g. the base image), or smoke.helmTest: false "
        "(`kubectl --namespace hello describe pod hello-test-http` shows the kubelet's reason)"
    )
    assert report.results[0].message == (
        "helm test failed: the test pod hello-test-http failed without printing a line: its command (bash) "
        "did not start"
    )
    # Only a failed pod with an empty log counts: helm failing otherwise (a timeout) is not explained.
    assert diagnose_helm_test("helm test failed: Error: timed out waiting for the condition") is None
    assert diagnose_helm_test(SILENT_FAILURE.replace("* pod hello-test-http failed", "")) is None


def test_an_unreadable_pod_status_does_not_hide_the_failure(tmp_path: Path) -> None:
    def test_pods(release: str, namespace: str) -> list[dict[str, Any]]:
        raise KubeForbidden("cannot list the test pods of hello in hello: pods is forbidden", status=403)

    report = smoke_report(tmp_path, SILENT_FAILURE, test_pods)
    assert report.exit_code == 17
    assert "probably has no bash" in (report.hint or "")  # the log-based explanation still applies
    assert (
        "(could not read the test pod's status: cannot list the test pods of hello in hello: "
        "pods is forbidden)" in report.results[0].output
    )


class Response:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.data = json.dumps({"items": items}).encode()


class FakePodList:
    """CoreV1Api.list_namespaced_pod with `_preload_content=False`: the raw JSON response."""

    def __init__(self, *pods: dict[str, Any]) -> None:
        self.pods = pods
        self.asked: list[tuple[str, str, bool]] = []

    def list_namespaced_pod(
        self, namespace: str, label_selector: str, _preload_content: bool = True
    ) -> Response:
        self.asked.append((namespace, label_selector, _preload_content))
        return Response(list(self.pods))


def test_read_test_pods_keeps_only_helm_test_hooks() -> None:
    app = {"metadata": {"name": "hello-5d9c-abcde", "labels": {"app.kubernetes.io/instance": "hello"}}}
    hook = copy.deepcopy(TEST_POD)
    hook["metadata"]["name"] = "hello-migrate"
    hook["metadata"]["annotations"]["helm.sh/hook"] = "pre-upgrade"
    both = copy.deepcopy(TEST_POD)
    both["metadata"]["name"] = "hello-test-2"
    both["metadata"]["annotations"]["helm.sh/hook"] = "pre-install,test"
    early = copy.deepcopy(TEST_POD)  # made by a ship from the hook (deployer.tools.testpod)
    early["metadata"]["name"] = "hello-test-3"
    early["metadata"]["annotations"] = {"deployer/helm-test": "test"}
    core = FakePodList(app, TEST_POD, hook, both, early)
    pods = read_test_pods(None, "hello", "hello", core=core)
    assert [p["metadata"]["name"] for p in pods] == ["hello-test-http", "hello-test-2", "hello-test-3"]
    assert core.asked == [("hello", "app.kubernetes.io/instance=hello", False)]
    found = diagnose_helm_test(SILENT_FAILURE, pods)
    assert found is not None and found.hint == BASH_HINT


def test_http_checks_run_while_the_helm_test_pod_lives(tmp_path: Path) -> None:
    """The pod's life is most of the stage: the HTTP checks do not wait for it, and the results keep
    their order (helm test first), each timed on its own."""
    import threading

    deploy = config(
        tmp_path, "smoke:\n  helmTest: true\n  checks:\n    - {name: root, path: /, body: hello}\n"
    )
    asked = threading.Event()

    def helm_test(release: str, namespace: str, timeout: int) -> str:
        assert asked.wait(10), "the HTTP checks waited for the helm test pod"
        return "attempt 1 (0s): GET http://hello:80/ -> HTTP/1.1 200 OK"

    def get(path: str, timeout: float) -> tuple[int, bytes]:
        asked.set()
        return 200, b"hello"

    results = run_checks(deploy, helm_test=helm_test, http_get=get)
    assert [(r.name, r.kind, r.passed) for r in results] == [
        ("helm-test", "helm-test", True),
        ("root", "http", True),
    ]


def test_a_failed_helm_test_beside_passing_http_checks_fails_the_smoke_stage(tmp_path: Path) -> None:
    deploy = config(tmp_path, "smoke:\n  helmTest: true\n  checks:\n    - {name: root, path: /}\n")

    def helm_test(release: str, namespace: str, timeout: int) -> str:
        raise DeployFailed("helm test failed: pod hello-test-http failed")

    with pytest.raises(SmokeReport) as info:
        run_checks(deploy, helm_test=helm_test, http_get=lambda path, timeout: (200, b""))
    assert [(r.name, r.passed) for r in info.value.results] == [("helm-test", False), ("root", True)]
    assert info.value.message.startswith("1 of 2 smoke checks failed: helm-test")
