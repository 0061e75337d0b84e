"""deployer.tools.apiserver: the kubeconfig's API server, and whether it accepts a connection
(loopback only)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployer.tools import apiserver

KUBECONFIG = """apiVersion: v1
kind: Config
current-context: staging
contexts:
  - name: staging
    context: {{cluster: local, user: admin}}
  - name: other
    context: {{cluster: far, user: admin}}
clusters:
  - name: local
    cluster: {{server: "https://127.0.0.1:{port}"}}
  - name: far
    cluster: {{server: "https://127.0.0.1:{other}"}}
users:
  - name: admin
    user: {{token: x}}
"""


@pytest.fixture
def listening() -> Iterator[int]:
    """A loopback port that accepts connections."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens there


def _kubeconfig(tmp_path: Path, port: int, other: int) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.format(port=port, other=other))
    return path


def test_a_server_that_accepts_connections_is_reachable(tmp_path: Path, listening: int) -> None:
    path = _kubeconfig(tmp_path, listening, _closed_port())
    assert apiserver.server(path) == f"https://127.0.0.1:{listening}"
    assert apiserver.unreachable(path) is None


def test_a_context_whose_server_refuses_says_so(tmp_path: Path, listening: int) -> None:
    closed = _closed_port()
    path = _kubeconfig(tmp_path, listening, closed)
    reason = apiserver.unreachable(path, "other")
    assert reason is not None
    assert reason.startswith(f"the Kubernetes API server https://127.0.0.1:{closed} does not answer: ")
    assert "refused" in reason.lower()


def test_a_kubeconfig_that_names_no_usable_cluster(tmp_path: Path) -> None:
    assert apiserver.unreachable(tmp_path / "nope") == f"kubeconfig {tmp_path / 'nope'} does not exist"
    path = _kubeconfig(tmp_path, 1, 2)
    assert apiserver.unreachable(path, "prod") == f"kubeconfig {path} has no context 'prod'"
    path.write_text("apiVersion: v1\nkind: Config\n")
    assert apiserver.unreachable(path) == f"kubeconfig {path} has no current-context"


def test_the_kubeconfig_is_the_given_one_then_kubeconfig_then_the_local_cluster(monkeypatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert apiserver.kubeconfig_path(None) == Path(apiserver.DEFAULT_KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", "/k/config")
    assert apiserver.kubeconfig_path(None) == Path("/k/config")
    assert apiserver.kubeconfig_path("/given") == Path("/given")
