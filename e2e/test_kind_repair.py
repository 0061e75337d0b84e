"""`e2e/cluster --provider kind up` on a kind cluster that is not whole, and beside the local provider.

Cheap (seconds, on the one-node cluster `make test`'s kind part already runs): a lost kubeconfig is
exported again from the running control plane instead of the cluster being recreated, and both
providers' `up` run at once. An interrupted `up`, whose repair is a whole new cluster (minutes), is
e2e/test_kind_recreate.py, outside `make test`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from e2e.conftest import CLUSTER, DOCKER
from e2e.localcluster import kind, layout

pytestmark = [pytest.mark.provider("kind"), pytest.mark.cluster, pytest.mark.docker]


def _cluster(provider: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLUSTER), "--provider", provider, *args], capture_output=True, text=True, timeout=900
    )


def _node_ids() -> list[str]:
    args = ["ps", "-aq", "--no-trunc", "--filter", f"label=io.x-k8s.kind.cluster={kind.name()}"]
    return sorted(subprocess.run([DOCKER, *args], capture_output=True, text=True).stdout.split())


def _server(kubeconfig: Path) -> str:
    return yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]


def test_up_restores_a_lost_kubeconfig_without_recreating_the_nodes(
    cluster_kubeconfig: Path, tmp_path: Path
) -> None:
    nodes = _node_ids()
    assert nodes, f"no node container of kind cluster {kind.name()}"
    saved = tmp_path / "kubeconfig"
    shutil.move(cluster_kubeconfig, saved)
    try:
        up = _cluster("kind", "up")
        assert up.returncode == 0, up.stderr
        assert "kubeconfig restored from the running control plane" in up.stderr
        assert "recreating" not in up.stderr
        assert _node_ids() == nodes  # the same containers: repaired, not recreated
        assert _server(cluster_kubeconfig) == _server(saved)
        assert kind.ready_nodes(cluster_kubeconfig) == [f"{kind.name()}-control-plane"]
    finally:
        if not cluster_kubeconfig.exists():
            shutil.move(saved, cluster_kubeconfig)


def test_up_of_both_providers_at_once_leaves_both_ready(cluster_kubeconfig: Path) -> None:
    local = _cluster("local", "status")
    assert local.returncode == 0, f"the local cluster must be up (make cluster):\n{local.stdout}"
    ups = {
        provider: subprocess.Popen(
            [str(CLUSTER), "--provider", provider, "up"], stderr=subprocess.PIPE, text=True
        )
        for provider in ("local", "kind")
    }
    for provider, proc in ups.items():
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"{provider} up: {err}"
    for provider in ("local", "kind"):
        status = _cluster(provider, "status")
        assert status.returncode == 0, f"{provider}:\n{status.stdout}"
    assert _server(cluster_kubeconfig) != _server(layout.KUBECONFIG)
    assert kind.ready_nodes(layout.KUBECONFIG) == [layout.NODE_NAME]
    assert kind.ready_nodes(cluster_kubeconfig) == [f"{kind.name()}-control-plane"]
    network = subprocess.run(
        [DOCKER, "network", "inspect", kind.NETWORK, "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"],
        capture_output=True,
        text=True,
    )
    assert network.returncode == 0, network.stderr
    assert [kind.collision(subnet) for subnet in network.stdout.split()] == [None]
