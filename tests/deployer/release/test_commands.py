"""`deployer status`, `rollback` and `diff` at the CLI seam: `release.target.connect` is replaced by a
`Cluster` whose helm runs a fake runner (the process boundary) and whose Kubernetes APIs, watcher and
lock are fakes.

The real helm and cluster are exercised in e2e/test_ship_failures.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from kubernetes.client.exceptions import ApiException

from deployer import cli
from deployer.errors import ExitCode
from deployer.release import status as status_mod
from deployer.release import target as target_mod
from deployer.release.lock import ShipInProgress
from deployer.release.rollback import pick_rollback_revision
from deployer.rollout.diagnosis import RolloutVerdict
from deployer.tools.helm import Helm, Revision
from tests.deployer.helmfakes import HelmSaid, helm_failures_are_helm_said  # noqa: F401 - autouse fixture

IMAGE = "127.0.0.1:5000/staging/node-hello@sha256:" + "a" * 64
OLD_IMAGE = "127.0.0.1:5000/staging/node-hello@sha256:" + "b" * 64


def _rev(n: int, status: str, description: str) -> dict[str, Any]:
    return {
        "revision": n,
        "status": status,
        "chart": f"node-hello-0.0.{n}",
        "app_version": f"tag{n}",
        "description": description,
    }


SHIP = f"deployer ship {IMAGE}"
SHIP_OLD = f"deployer ship {OLD_IMAGE}"


class FakeHelm:
    """Answers like helm for one release whose history is `rows` (newest last)."""

    def __init__(
        self,
        rows: list[dict[str, Any]],
        manifest: str = "",
        rendered: str = "",
        refuse: dict[str, str] | None = None,
    ) -> None:
        self.rows = rows
        self.refuse = refuse or {}  # subcommand → what helm says on stderr when it fails
        self.manifest = manifest
        self.rendered = rendered
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], **_kwargs: Any) -> SimpleNamespace:
        self.calls.append(argv)
        sub = argv[1]
        if sub in self.refuse:
            raise HelmSaid(self.refuse[sub])
        if sub in ("status", "history", "get") and not self.rows:
            raise HelmSaid("Error: release: not found")
        if sub == "status":
            top = self.rows[-1]
            out = json.dumps(
                {"name": "node-hello", "version": top["revision"], "info": {"status": top["status"]}}
            )
        elif sub == "history":
            out = json.dumps(self.rows)
        elif sub == "get":
            out = self.manifest
        elif sub == "template":  # keep what was rendered: the chart directory is gone afterwards
            chart = Path(argv[3])
            self.chart = yaml.safe_load((chart / "Chart.yaml").read_text())
            self.values = yaml.safe_load((chart / "values.yaml").read_text())
            out = self.rendered
        elif sub == "rollback":
            target = int(argv[3])
            self.rows[-1]["status"] = "superseded"
            self.rows.append(_rev(len(self.rows) + 1, "deployed", f"Rollback to {target}"))
            out = ""
        else:
            raise AssertionError(f"unexpected helm call {argv}")
        return SimpleNamespace(stdout=out, stderr="")

    def subcommands(self) -> list[str]:
        return [c[1] for c in self.calls]


def _pod(name: str, ready: bool, waiting: str | None = None, restarts: int = 0) -> SimpleNamespace:
    state = SimpleNamespace(waiting=SimpleNamespace(reason=waiting) if waiting else None)
    return SimpleNamespace(
        metadata=SimpleNamespace(name=name, deletion_timestamp=None),
        spec=SimpleNamespace(containers=[SimpleNamespace(image=IMAGE)]),
        status=SimpleNamespace(
            phase="Running",
            conditions=[SimpleNamespace(type="Ready", status="True" if ready else "False")],
            container_statuses=[SimpleNamespace(state=state, restart_count=restarts)],
        ),
    )


class FakeKube:
    """AppsV1Api, CoreV1Api and CoordinationV1Api in one object, for one Deployment."""

    def __init__(
        self, *, ready: int = 1, pods: list[SimpleNamespace] | None = None, lease: Any = None
    ) -> None:
        self.ready = ready
        self.pods = pods if pods is not None else [_pod("node-hello-1", True)]
        self.lease = lease
        self.selectors: list[str] = []

    def read_namespaced_deployment(self, name: str, namespace: str) -> SimpleNamespace:
        return SimpleNamespace(
            metadata=SimpleNamespace(generation=7),
            spec=SimpleNamespace(
                replicas=1,
                template=SimpleNamespace(spec=SimpleNamespace(containers=[SimpleNamespace(image=IMAGE)])),
                selector=SimpleNamespace(
                    match_labels={"app.kubernetes.io/instance": name, "app.kubernetes.io/name": name}
                ),
            ),
            status=SimpleNamespace(
                ready_replicas=self.ready, updated_replicas=1, available_replicas=self.ready
            ),
        )

    def list_namespaced_pod(self, namespace: str, label_selector: str) -> SimpleNamespace:
        self.selectors.append(label_selector)
        return SimpleNamespace(items=self.pods)

    def read_namespaced_lease(self, name: str, namespace: str) -> Any:
        if self.lease is None:
            raise ApiException(status=404, reason="Not Found")
        return self.lease


class FakeLock:
    def __init__(self, holder: str | None = None) -> None:
        self.taken: list[tuple[str, str, str]] = []
        self.held = False
        self.holder = holder  # someone else's ship holds the lock

    def __call__(self, namespace: str, release: str, command: str) -> FakeLock:
        self.taken.append((namespace, release, command))
        return self

    def __enter__(self) -> FakeLock:
        if self.holder:
            raise ShipInProgress(f"another ship of release 'node-hello' is running: {self.holder}")
        self.held = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.held = False


def _healthy(**_kwargs: Any) -> RolloutVerdict:
    return RolloutVerdict(True, "Available", "", duration=1.5)


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Callable[..., SimpleNamespace]:
    """Install a fake Cluster behind `release.target.connect`; returns a builder (call it before invoking)."""

    def build(
        rows: list[dict[str, Any]],
        *,
        kube: FakeKube | None = None,
        watch: Callable[..., RolloutVerdict] = _healthy,
        manifest: str = "",
        rendered: str = "",
        refuse: dict[str, str] | None = None,
        lock_holder: str | None = None,
    ) -> SimpleNamespace:
        fake_helm = FakeHelm(rows, manifest, rendered, refuse)
        kube = kube or FakeKube()
        lock = FakeLock(lock_holder)
        watched: list[dict[str, Any]] = []

        def watcher(namespace: str, deployment: str, **kwargs: Any) -> RolloutVerdict:
            assert lock.held, "the rollout is watched while holding the release lock"
            watched.append({"namespace": namespace, "deployment": deployment, **kwargs})
            return watch(**kwargs)

        made = target_mod.Cluster(
            helm=Helm(binary="helm", runner=fake_helm),
            apps=kube,
            core=kube,
            coordination=kube,
            watch=watcher,
            lock=lock,
        )
        monkeypatch.setattr(target_mod, "connect", lambda tgt, **_kw: made)
        return SimpleNamespace(helm=fake_helm, kube=kube, lock=lock, watched=watched)

    return build


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


# --- status --------------------------------------------------------------------------------------------


def test_status_shows_revision_image_pods_and_last_ship(cluster: Callable[..., SimpleNamespace]) -> None:
    fake = cluster(
        [_rev(1, "superseded", SHIP_OLD), _rev(2, "deployed", SHIP)],
        kube=FakeKube(pods=[_pod("node-hello-1", True), _pod("node-hello-2", False, "CrashLoopBackOff", 4)]),
    )
    result = _invoke("status", "node-hello", "--namespace", "ns1")

    assert result.exit_code == 0, result.output
    out = result.output
    assert "release:   node-hello in namespace ns1" in out
    assert "revision:  2 (deployed), chart node-hello-0.0.2, app version tag2" in out
    assert f"image:     {IMAGE}" in out
    assert "pods:      1/1 ready, 1 updated, 1 available" in out
    assert "node-hello-2  CrashLoopBackOff  not ready  restarts 4" in out
    assert f"last ship: revision 2 ({IMAGE}) shipped, now deployed" in out
    assert "lock:      free" in out
    assert fake.kube.selectors == ["app.kubernetes.io/instance=node-hello,app.kubernetes.io/name=node-hello"]
    assert all("--namespace" in c and c[c.index("--namespace") + 1] == "ns1" for c in fake.helm.calls)


def test_status_json_says_a_failed_ship_was_rolled_back_and_who_holds_the_lock(
    cluster: Callable[..., SimpleNamespace],
) -> None:
    lease = SimpleNamespace(
        spec=SimpleNamespace(
            holder_identity="ci@runner pid=7",
            renew_time=datetime.now(UTC) - timedelta(seconds=3),
            acquire_time=None,
            lease_duration_seconds=60,
        ),
        metadata=SimpleNamespace(annotations={"deployer/command": "deployer ship node-hello"}),
    )
    cluster(
        [_rev(1, "superseded", SHIP_OLD), _rev(2, "superseded", SHIP), _rev(3, "deployed", "Rollback to 1")],
        kube=FakeKube(ready=0, lease=lease),
    )
    result = _invoke("status", "node-hello", "--json")

    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["revision"], data["status"], data["healthy"]) == (3, "deployed", False)
    assert data["last_ship"] == (
        f"revision 2 ({IMAGE}) did not roll out and was rolled back: revision 3 is a rollback to 1"
    )
    assert data["lock"].startswith("held by ci@runner pid=7 (deployer ship node-hello)")


def test_status_of_a_missing_release_exits_15(cluster: Callable[..., SimpleNamespace]) -> None:
    cluster([])
    result = CliRunner().invoke(cli.main, ["status", "node-hello"])
    assert result.exit_code == ExitCode.DEPLOY
    assert "no release 'node-hello' in namespace 'node-hello'" in result.output


def test_status_of_an_unknown_service_is_a_config_error() -> None:
    result = CliRunner().invoke(cli.main, ["status", "/nonexistent/service"])
    assert result.exit_code == ExitCode.CONFIG
    assert "service directory not found" in result.output


# --- rollback ------------------------------------------------------------------------------------------


def test_rollback_default_skips_the_rolled_back_revision_and_watches(
    cluster: Callable[..., SimpleNamespace],
) -> None:
    # 1 ok, 2 ok, 3 broken and auto-rolled back by ship (4 = copy of 2): "previous" is 1, not 3 or 2.
    rows = [
        _rev(1, "superseded", SHIP_OLD),
        _rev(2, "superseded", SHIP),
        _rev(3, "superseded", SHIP),
        _rev(4, "deployed", "Rollback to 2"),
    ]
    fake = cluster(rows)
    result = _invoke("rollback", "node-hello", "--timeout", "42")

    assert result.exit_code == 0, result.output
    rollback = [c for c in fake.helm.calls if c[1] == "rollback"]
    assert [c[2:4] for c in rollback] == [["node-hello", "1"]]
    assert fake.lock.taken == [("node-hello", "node-hello", "deployer rollback node-hello")]
    (watched,) = fake.watched
    assert (watched["namespace"], watched["deployment"], watched["timeout"]) == (
        "node-hello",
        "node-hello",
        42,
    )
    assert watched["generation"] == 7  # read after the rollback applied: the watch never judges older specs
    assert "rolled back node-hello in node-hello from revision 4 to 1 (now revision 5)" in result.output


def test_rollback_to_an_explicit_revision(cluster: Callable[..., SimpleNamespace]) -> None:
    fake = cluster([_rev(1, "superseded", SHIP_OLD), _rev(2, "superseded", SHIP), _rev(3, "deployed", SHIP)])
    result = _invoke("rollback", "node-hello", "--revision", "2")
    assert result.exit_code == 0, result.output
    assert [c[2:4] for c in fake.helm.calls if c[1] == "rollback"] == [["node-hello", "2"]]


def test_rollback_to_an_unknown_revision_exits_15_without_touching_helm(
    cluster: Callable[..., SimpleNamespace],
) -> None:
    fake = cluster([_rev(1, "superseded", SHIP_OLD), _rev(2, "deployed", SHIP)])
    result = CliRunner().invoke(cli.main, ["rollback", "node-hello", "--revision", "9"])
    assert result.exit_code == ExitCode.DEPLOY
    assert "has no revision 9 (helm keeps: 1, 2)" in result.output
    assert "rollback" not in fake.helm.subcommands()


def test_rollback_with_nothing_to_go_back_to_exits_15(cluster: Callable[..., SimpleNamespace]) -> None:
    fake = cluster([_rev(1, "deployed", SHIP)])
    result = CliRunner().invoke(cli.main, ["rollback", "node-hello"])
    assert result.exit_code == ExitCode.DEPLOY
    assert "no earlier good revision than 1" in result.output
    assert "rollback" not in fake.helm.subcommands()


def test_rollback_of_a_missing_release_exits_15_without_taking_the_lock(
    cluster: Callable[..., SimpleNamespace],
) -> None:
    fake = cluster([])
    result = CliRunner().invoke(cli.main, ["rollback", "node-hello"])
    assert result.exit_code == ExitCode.DEPLOY
    assert fake.lock.taken == []  # the lock would create the namespace


def test_rollback_that_does_not_become_healthy_exits_16_with_the_diagnosis(
    cluster: Callable[..., SimpleNamespace],
) -> None:
    def crashing(**_kwargs: Any) -> RolloutVerdict:
        return RolloutVerdict(
            False,
            "CrashLoopBackOff",
            "the container keeps exiting",
            message="back-off restarting failed container",
            object="pod/node-hello-x",
            pod="node-hello-x",
            container="node-hello",
            log_tail=["boom: cannot start"],
            warning_events=["BackOff pod/node-hello-x: Back-off restarting failed container"],
        )

    fake = cluster([_rev(1, "superseded", SHIP_OLD), _rev(2, "deployed", SHIP)], watch=crashing)
    result = CliRunner().invoke(cli.main, ["rollback", "node-hello"])

    assert result.exit_code == ExitCode.ROLLOUT, result.output
    assert "rollback to revision 1 (now revision 3) did not become healthy" in result.output
    assert "pod/node-hello-x container node-hello: CrashLoopBackOff" in result.output
    assert "| log node-hello-x/node-hello: boom: cannot start" in result.output  # the evidence is shown
    assert "| event BackOff pod/node-hello-x" in result.output
    assert not fake.lock.held  # released on the way out


def test_rollback_helm_failure_exits_15(cluster: Callable[..., SimpleNamespace]) -> None:
    fake = cluster(
        [_rev(1, "superseded", SHIP_OLD), _rev(2, "deployed", SHIP)],
        refuse={"rollback": "Error: another operation (install/upgrade/rollback) is in progress"},
    )
    result = CliRunner().invoke(cli.main, ["rollback", "node-hello"])
    assert result.exit_code == ExitCode.DEPLOY
    assert "helm rollback failed: Error: another operation" in result.output
    assert fake.watched == []


def test_rollback_is_refused_while_a_ship_holds_the_lock(cluster: Callable[..., SimpleNamespace]) -> None:
    fake = cluster(
        [_rev(1, "superseded", SHIP_OLD), _rev(2, "deployed", SHIP)], lock_holder="ci@runner pid=7"
    )
    result = CliRunner().invoke(cli.main, ["rollback", "node-hello"])
    assert result.exit_code == ExitCode.DEPLOY
    assert "another ship of release 'node-hello' is running: ci@runner pid=7" in result.output
    assert "rollback" not in fake.helm.subcommands() and fake.watched == []


@pytest.mark.parametrize(
    ("rows", "current", "expected"),
    [
        ([_rev(1, "superseded", SHIP), _rev(2, "deployed", SHIP)], 2, 1),
        ([_rev(1, "superseded", SHIP), _rev(2, "failed", SHIP), _rev(3, "deployed", SHIP)], 3, 1),
        (
            [_rev(1, "superseded", SHIP), _rev(2, "superseded", SHIP), _rev(3, "deployed", "Rollback to 1")],
            3,
            None,
        ),
        ([_rev(1, "deployed", SHIP)], 1, None),
    ],
)
def test_pick_rollback_revision(rows: list[dict[str, Any]], current: int, expected: int | None) -> None:
    history = [
        Revision(r["revision"], r["status"], r["chart"], r["app_version"], r["description"]) for r in rows
    ]
    assert pick_rollback_revision(history, current) == expected


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([], None),
        ([_rev(1, "deployed", "Install complete")], None),
        (
            [_rev(1, "pending-upgrade", SHIP)],
            f"revision 1 ({IMAGE}) is pending-upgrade: that ship was interrupted",
        ),
        (
            [_rev(1, "superseded", SHIP), _rev(2, "deployed", "Upgrade complete")],
            f"revision 1 ({IMAGE}) shipped, now superseded",
        ),
    ],
)
def test_last_ship(rows: list[dict[str, Any]], expected: str | None) -> None:
    history = [
        Revision(r["revision"], r["status"], r["chart"], r["app_version"], r["description"]) for r in rows
    ]
    assert status_mod.last_ship(history) == expected


# --- diff ----------------------------------------------------------------------------------------------

LIVE = f"""---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: node-hello
spec:
  replicas: 1
  template:
    spec:
      containers:
        - name: node-hello
          image: {IMAGE}
---
apiVersion: v1
kind: Service
metadata:
  name: node-hello
spec:
  ports: [{{port: 80}}]
"""


def test_diff_renders_with_the_live_image_and_prints_changes(cluster: Callable[..., SimpleNamespace]) -> None:
    rendered = LIVE.replace("replicas: 1", "replicas: 3")
    fake = cluster(
        [_rev(1, "superseded", SHIP_OLD), _rev(2, "deployed", SHIP)], manifest=LIVE, rendered=rendered
    )
    result = _invoke("diff", "node-hello")

    assert result.exit_code == 0, result.output
    assert f"image: {IMAGE} (the live one;" in result.output
    assert "changed: Deployment node-hello" in result.output
    assert "-  replicas: 1" in result.output and "+  replicas: 3" in result.output
    assert "1 changed resource(s)" in result.output
    (template,) = [c for c in fake.helm.calls if c[1] == "template"]
    assert "--skip-tests" in template and template[2] == "node-hello"
    # rendered with the live image and the live chart version and tag, so labels do not churn
    image = fake.helm.values["image"]
    assert f"{image['repository']}@{image['digest']}" == IMAGE
    assert (fake.helm.chart["version"], fake.helm.chart["appVersion"], image["tag"]) == (
        "0.0.2",
        "tag2",
        "tag2",
    )
    assert fake.helm.values["app"]["command"] == ["node", "server.js"]  # from the example's blubber.yaml
    assert any(c[1] == "get" and c[2] == "manifest" for c in fake.helm.calls)


def test_diff_without_changes_says_so(cluster: Callable[..., SimpleNamespace]) -> None:
    cluster([_rev(1, "deployed", SHIP)], manifest=LIVE, rendered=LIVE)
    result = _invoke("diff", "node-hello")
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("no changes")


def test_diff_of_a_release_not_installed_yet_shows_everything_added(
    cluster: Callable[..., SimpleNamespace],
) -> None:
    fake = cluster([], rendered=LIVE)
    result = _invoke("diff", "node-hello")
    assert result.exit_code == 0, result.output
    assert "(no live release)" in result.output
    assert "placeholder" in result.output
    assert "added: Deployment node-hello" in result.output and "added: Service node-hello" in result.output
    assert "2 added resource(s)" in result.output
    assert fake.helm.values["image"]["digest"] == "sha256:" + "0" * 64


def test_diff_with_a_bad_image_is_a_user_error(cluster: Callable[..., SimpleNamespace]) -> None:
    cluster([_rev(1, "deployed", SHIP)], manifest=LIVE, rendered=LIVE)
    result = CliRunner().invoke(cli.main, ["diff", "node-hello", "--image", "127.0.0.1:5000/x:latest"])
    assert result.exit_code == ExitCode.CONFIG
    assert "has no @sha256 digest" in result.output
