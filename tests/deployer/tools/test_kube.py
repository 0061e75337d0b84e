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
