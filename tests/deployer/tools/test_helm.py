"""helm argv building, output parsing, pending-release recovery and manifest diff, with a fake runner.

The runner is the process boundary (deployer.tools.command.run); here it records argv and answers like helm.
The real binary is exercised in tests/integration/test_chart_helm.py and the e2e ship tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from deployer.errors import DeployFailed
from deployer.tools.helm import Helm, diff_manifests
from tests.deployer.helmfakes import HelmSaid, helm_failures_are_helm_said  # noqa: F401 - autouse fixture


class FakeHelm:
    def __init__(self, answers: dict[str, Callable[[list[str]], str] | str]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []
        self.kwargs: list[dict[str, Any]] = []

    def __call__(self, argv: list[str], **kwargs: Any) -> SimpleNamespace:
        self.calls.append(argv)
        self.kwargs.append(kwargs)
        sub = argv[1]
        answer = self.answers.get(sub, "")
        text = answer(argv) if callable(answer) else answer
        if sub == "push":  # helm push reports on stderr
            return SimpleNamespace(stdout="", stderr=text)
        return SimpleNamespace(stdout=text, stderr="")

    def subcommands(self) -> list[str]:
        return [c[1] for c in self.calls]


def make(fake: FakeHelm, **kw: Any) -> Helm:
    return Helm(
        binary="helm", kubeconfig="/k/config", context="staging", registry_config="/r.json", runner=fake, **kw
    )


def release_json(status: str, version: int) -> str:
    return json.dumps(
        {
            "name": "hello",
            "namespace": "ns",
            "version": version,
            "info": {"status": status},
            "chart": {"metadata": {"name": "hello", "version": "0.0.5", "appVersion": "t"}},
        }
    )


def test_upgrade_install_argv_has_no_wait_and_targets_the_cluster() -> None:
    fake = FakeHelm({"upgrade": release_json("deployed", 3)})
    release = make(fake, timeout=120).upgrade_install(
        "hello", "ns", "/c/hello", values_file="/c/hello/values.yaml"
    )
    assert fake.calls[0] == [
        "helm", "upgrade", "--install", "hello", "/c/hello", "--namespace", "ns", "--create-namespace",
        "--reset-values", "--history-max", "10", "--timeout", "120s", "--values", "/c/hello/values.yaml",
        "--output", "json",
        "--kubeconfig", "/k/config", "--kube-context", "staging", "--registry-config", "/r.json",
    ]  # fmt: skip
    assert "--wait" not in fake.calls[0] and "--atomic" not in fake.calls[0]
    assert (release.revision, release.status, release.chart, release.pending) == (
        3,
        "deployed",
        "hello-0.0.5",
        False,
    )
    # helm's own deadline is inside the runner's, so helm reports its timeout before we kill it
    assert fake.kwargs[0]["timeout"] > 120
    assert not any(k.startswith("HELM_") and k != "HELM_CACHE_HOME" for k in fake.kwargs[0]["env"])


def test_upgrade_install_leaves_an_existing_namespace_alone() -> None:
    # a ship's release lock made sure the namespace exists; a namespaced identity may not POST namespaces
    fake = FakeHelm({"upgrade": release_json("deployed", 1)})
    make(fake).upgrade_install("hello", "ns", "/c/hello", create_namespace=False)
    assert "--create-namespace" not in fake.calls[0]
    assert fake.calls[0][:7] == ["helm", "upgrade", "--install", "hello", "/c/hello", "--namespace", "ns"]


def test_failures_become_deploy_failed_with_stderr_tail() -> None:
    def fail(argv: list[str]) -> str:
        raise HelmSaid("Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress")

    with pytest.raises(DeployFailed, match="helm upgrade --install failed: .*another operation") as info:
        make(FakeHelm({"upgrade": fail})).upgrade_install("hello", "ns", "/c")
    assert isinstance(info.value.__cause__, HelmSaid)


def not_found(argv: list[str]) -> str:
    raise HelmSaid("Error: release: not found")


def test_missing_release_is_none_not_an_error() -> None:
    helm = make(
        FakeHelm({"status": not_found, "history": not_found, "get": not_found, "uninstall": not_found})
    )
    assert helm.status("hello", "ns") is None
    assert helm.history("hello", "ns") == []
    assert helm.get_manifest("hello", "ns") == ""
    helm.uninstall("hello", "ns")  # already gone: fine


def history(*rows: tuple[int, str]) -> str:
    return json.dumps(
        [
            {"revision": r, "status": s, "chart": "hello-0.0.1", "app_version": "", "description": ""}
            for r, s in rows
        ]
    )


def test_recover_pending_upgrade_rolls_back_to_last_good_revision() -> None:
    fake = FakeHelm(
        {
            "status": release_json("pending-upgrade", 4),
            "history": history((1, "superseded"), (2, "deployed"), (3, "failed"), (4, "pending-upgrade")),
        }
    )
    recovery = make(fake).recover_pending("hello", "ns")
    assert (recovery.action, recovery.stuck_status, recovery.stuck_revision, recovery.to_revision) == (
        "rolled-back", "pending-upgrade", 4, 2,
    )  # fmt: skip
    rollback = fake.calls[-1]
    assert rollback[:4] == ["helm", "rollback", "hello", "2"]
    assert "pending-upgrade" in recovery.describe()


def test_recover_pending_install_uninstalls() -> None:
    fake = FakeHelm(
        {"status": release_json("pending-install", 1), "history": history((1, "pending-install"))}
    )
    recovery = make(fake).recover_pending("hello", "ns")
    assert recovery.action == "uninstalled"
    assert fake.subcommands()[-1] == "uninstall"


def test_recover_pending_rollback_without_good_revision_uninstalls() -> None:
    fake = FakeHelm(
        {
            "status": release_json("pending-rollback", 2),
            "history": history((1, "failed"), (2, "pending-rollback")),
        }
    )
    assert make(fake).recover_pending("hello", "ns").action == "uninstalled"


@pytest.mark.parametrize("status", ["deployed", "failed", None])
def test_recover_leaves_non_pending_releases_alone(status: str | None) -> None:
    fake = FakeHelm({"status": release_json(status, 2) if status else not_found})
    recovery = make(fake).recover_pending("hello", "ns")
    assert recovery.action == "none"
    assert fake.subcommands() == ["status"]
    # the state it read comes back, so a caller need not run `helm status` again
    if status:
        assert recovery.release is not None
        assert (recovery.release.revision, recovery.release.status) == (2, status)
    else:
        assert recovery.release is None


def test_a_repaired_release_does_not_claim_its_state() -> None:
    fake = FakeHelm(
        {
            "status": release_json("pending-upgrade", 4),
            "history": history((1, "superseded"), (2, "deployed"), (4, "pending-upgrade")),
        }
    )
    assert make(fake).recover_pending("hello", "ns").release is None  # changed by the rollback


def test_registry_login_password_goes_to_stdin_only() -> None:
    fake = FakeHelm({})
    make(fake).registry_login("127.0.0.1:5000", "ci", "s3cret")
    assert "s3cret" not in " ".join(fake.calls[0])
    assert fake.kwargs[0]["input"] == "s3cret"
    assert "--password-stdin" in fake.calls[0]


def test_package_and_push_parse_helm_output() -> None:
    digest = "sha256:" + "c" * 64
    fake = FakeHelm(
        {
            "package": "Successfully packaged chart and saved it to: /out/hello-0.0.1.tgz\n",
            "push": f"Pushed: 127.0.0.1:5000/staging/charts/hello:0.0.1\nDigest: {digest}\n",
        }
    )
    helm = make(fake)
    tgz = helm.package("/c/hello", "/out")
    assert str(tgz) == "/out/hello-0.0.1.tgz"
    assert helm.push(tgz, "oci://127.0.0.1:5000/staging/charts", plain_http=True) == digest
    assert fake.calls[-1][1:5] == [
        "push",
        "/out/hello-0.0.1.tgz",
        "oci://127.0.0.1:5000/staging/charts",
        "--plain-http",
    ]
    with pytest.raises(DeployFailed, match="did not report a digest"):
        make(FakeHelm({"push": "odd output"})).push(tgz, "oci://x")


def test_test_runs_with_logs_and_lint_is_strict() -> None:
    fake = FakeHelm({"test": "Phase: Succeeded\n"})
    helm = make(fake)
    assert "Succeeded" in helm.test("hello", "ns", timeout=60)
    helm.lint("/c/hello")
    assert fake.calls[0][1:4] == ["test", "hello", "--namespace"] and "--logs" in fake.calls[0]
    assert fake.calls[1][1:4] == ["lint", "--strict", "/c/hello"]


LIVE = """---
# Source: x/templates/service.yaml
apiVersion: v1
kind: Service
metadata: {name: hello}
spec: {ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec: {replicas: 1, template: {spec: {containers: [{name: app, image: "r/x@sha256:aa"}]}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: old}
"""

NEW = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
spec:
  replicas: 1
  template: {spec: {containers: [{name: app, image: "r/x@sha256:bb"}]}}
---
kind: Service
apiVersion: v1
metadata: {name: hello}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Secret
metadata: {name: new}
"""


def test_diff_manifests_per_resource_ignoring_formatting() -> None:
    diffs = diff_manifests(LIVE, NEW)
    assert [(d.kind, d.name, d.change) for d in diffs] == [
        ("ConfigMap", "old", "removed"),
        ("Deployment", "hello", "changed"),
        ("Secret", "new", "added"),
    ]
    changed = diffs[1].diff
    removed = [line for line in changed.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line for line in changed.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert len(removed) == len(added) == 1
    assert "sha256:aa" in removed[0] and "sha256:bb" in added[0]
    assert diff_manifests(LIVE, LIVE) == []
    assert [d.change for d in diff_manifests("", NEW)] == ["added"] * 3


def test_failed_helm_test_carries_the_test_pod_logs() -> None:
    def fail(argv: list[str]) -> str:
        error = HelmSaid("Error: 1 error occurred:\n\t* pod hello-test-http failed")
        error.stdout_tail = (
            "POD LOGS: hello-test-http\nGET http://hello:80/ -> HTTP/1.1 500 Internal Server Error\n"
        )
        raise error

    with pytest.raises(DeployFailed) as info:
        make(FakeHelm({"test": fail})).test("hello", "ns")
    assert "pod hello-test-http failed" in info.value.message
    assert "500 Internal Server Error" in info.value.message


def test_missing_helm_binary_is_an_environment_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from deployer.errors import EnvironmentMissing

    fake = FakeHelm({})
    helm = Helm(binary=str(tmp_path / "no-helm"), runner=fake)
    with pytest.raises(EnvironmentMissing, match="helm not found") as info:
        helm.status("hello", "ns")
    assert "e2e/tools.sh" in (info.value.hint or "")
    assert fake.calls == []


def test_get_hooks_reads_the_release_hooks() -> None:
    fake = FakeHelm({"get": "---\n# Source: hello/templates/tests/test-http.yaml\nkind: Pod\n"})
    assert make(fake).get_hooks("hello", "ns").startswith("---\n# Source: hello/templates/tests/")
    assert fake.calls[0][1:6] == ["get", "hooks", "hello", "--namespace", "ns"]
