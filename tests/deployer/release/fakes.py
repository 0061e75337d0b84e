"""What the tests of `deployer status`, `rollback` and `diff` fake at the CLI seam: helm's runner (the
process boundary), the Kubernetes APIs, the release lock and the rollout watcher."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from click.testing import CliRunner
from kubernetes.client.exceptions import ApiException

from deployer import cli
from deployer.release.lock import ShipInProgress
from deployer.rollout.diagnosis import RolloutVerdict
from tests.deployer.helmfakes import HelmSaid

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


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)
