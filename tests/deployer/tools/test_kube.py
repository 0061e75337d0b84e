"""deployer.tools.kube: kubeconfig loading and the one translation of client failures into our errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from deployer.errors import DeployFailed, EnvironmentMissing, ExitCode
from deployer.tools.kube import (
    KubeForbidden,
    KubeNotFound,
    KubeRequestFailed,
    KubeUnreachable,
    WatchExpired,
    api_errors,
    call,
    load_api,
)


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (404, KubeNotFound, "cannot read deployment web: not found"),
        (403, KubeForbidden, "cannot read deployment web: Forbidden (403)"),
        (401, KubeForbidden, "cannot read deployment web: Forbidden (401)"),
        (409, KubeRequestFailed, "cannot read deployment web: Forbidden (409)"),
        (500, KubeRequestFailed, "cannot read deployment web: Forbidden (500)"),
    ],
)
def test_status_codes(status: int, error: type, message: str) -> None:
    def fail() -> None:
        raise ApiException(status=status, reason="Forbidden")

    with pytest.raises(error) as e:
        call("read deployment web", fail)
    assert type(e.value) is error
    assert e.value.message == message
    assert e.value.status == status
    assert isinstance(e.value.__cause__, ApiException)
    assert e.value.exit_code is ExitCode.DEPLOY


def test_410_is_not_a_user_error() -> None:
    with pytest.raises(WatchExpired) as e, api_errors("watch pods"):
        raise ApiException(status=410, reason="Expired: too old resource version")
    assert not isinstance(e.value, DeployFailed)


def test_connection_failure_is_unreachable() -> None:
    with pytest.raises(KubeUnreachable) as e, api_errors("list pods"):
        raise urllib3.exceptions.MaxRetryError(None, "https://10.0.0.1:6443/api", reason="refused")
    assert isinstance(e.value, EnvironmentMissing)
    assert e.value.message.startswith("cannot reach the Kubernetes API to list pods")
    assert e.value.hint and "e2e/cluster status" in e.value.hint


def test_missing_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(KubeUnreachable) as e:
        load_api(tmp_path / "nope")
    assert e.value.message == f"kubeconfig {tmp_path / 'nope'} does not exist"
    assert e.value.hint and "e2e/cluster up" in e.value.hint


def test_unusable_kubeconfig_and_unknown_context(tmp_path: Path) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    with pytest.raises(KubeUnreachable, match=f"cannot use kubeconfig {bad}"):
        load_api(bad)
    with pytest.raises(KubeUnreachable, match=f"cannot use kubeconfig {bad} \\(context 'staging'\\)"):
        load_api(bad, "staging")


def test_kubeconfig_is_loaded_without_touching_the_network(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://10.9.9.9:6443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: abc}}]
contexts:
- {name: one, context: {cluster: c, user: u}}
- {name: two, context: {cluster: c, user: u, namespace: x}}
current-context: one
"""
    )
    api = load_api(config, "two")
    assert api.configuration.host == "https://10.9.9.9:6443"


class _RawLog:
    """What the client's REST layer returns: a urllib3-like response with the log's bytes."""

    status = 200
    reason = "OK"

    def __init__(self, data: bytes) -> None:
        self.data = data

    def getheaders(self) -> dict[str, str]:
        return {}

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return default


@pytest.mark.parametrize(
    "log", [b'{"level": "info", "msg": "up"}\n', b"plain\nlines\n", b"", b"caf\xc3\xa9 \xff\n"]
)
def test_pod_log_returns_the_log_as_written(monkeypatch: pytest.MonkeyPatch, log: bytes) -> None:
    # through the real client's request path: a one-document JSON log stays JSON (not a dict's repr)
    from kubernetes import client

    from deployer.tools.kube import pod_log

    api = client.ApiClient()
    asked: list[dict] = []

    def request(method: str, url: str, **kw: object) -> _RawLog:
        asked.append({"method": method, "url": url, **kw})
        return _RawLog(log)

    monkeypatch.setattr(api, "request", request)
    text = pod_log(client.CoreV1Api(api), "web-1", "ns", container="app", tail_lines=5)
    assert text == log.decode("utf-8", errors="replace")
    assert asked[0]["method"] == "GET" and asked[0]["url"].endswith("/namespaces/ns/pods/web-1/log")
