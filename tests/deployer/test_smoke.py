"""Smoke checks as data: one result per check, every check runs, any failure raises SmokeFailed."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.deploy_config import DeployPolicy, load
from deployer.errors import DeployFailed, SmokeFailed
from deployer.smoke import SmokeReport, evaluate, run_checks


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
    from deployer.portforward import ready_pod

    core = FakeCore(
        ("web-c", True, False), ("web-a", True, True), ("web-b", False, False), ("web-d", True, False)
    )
    assert ready_pod(None, "ns", "app=web", core=core) == "web-c"
    assert core.asked == [("ns", "app=web")]
    with pytest.raises(SmokeFailed, match="no Ready pod matches app=web in namespace ns") as info:
        ready_pod(None, "ns", "app=web", core=FakeCore(("web-a", True, True), ("web-b", False, False)))
    assert info.value.hint == "kubectl --namespace ns get pods -l app=web"
