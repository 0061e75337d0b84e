"""Unit tests of the kind provider's pure parts: its cluster config and the docker wrapper's rewrite."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from e2e.localcluster import kind
from e2e.localcluster import layout as L
from e2e.localcluster.host import ClusterError

WRAPPER = Path(__file__).resolve().parent / "kind" / "bin" / "docker"


@pytest.fixture
def creds_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "credentials.env"
    monkeypatch.setattr(L, "REGISTRY_CREDENTIALS", path)
    return path


def _patches(cluster: dict) -> dict[str, dict]:
    return {p["kind"]: p for p in map(yaml.safe_load, cluster["kubeadmConfigPatches"])}


def test_config_maps_the_registry_keys_auth_by_endpoint_and_sets_oom_settings(
    creds_file: Path,
) -> None:
    creds_file.write_text("REGISTRY_USER=u\nREGISTRY_PASSWORD=pw\n")
    cluster = yaml.safe_load(kind.config_yaml("172.18.0.1:5000", built_here=True, workers=0))
    assert cluster["kind"] == "Cluster"
    assert [n["role"] for n in cluster["nodes"]] == ["control-plane"]
    [mount] = cluster["nodes"][0]["extraMounts"]
    assert mount["containerPath"] == "/etc/containerd/certs.d"
    [patch] = cluster["containerdConfigPatches"]
    cri = tomllib.loads(patch)["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    # containerd looks credentials up by the host it dials when hosts.toml maps the registry.
    assert cri["registry"]["configs"]["172.18.0.1:5000"]["auth"] == {"username": "u", "password": "pw"}
    patches = _patches(cluster)
    assert patches["KubeletConfiguration"]["oomScoreAdj"] == 0
    assert patches["KubeProxyConfiguration"]["oomScoreAdj"] == 0
    # The locally built image carries the project's etcd and CoreDNS, not kubeadm's default tags.
    assert patches["ClusterConfiguration"]["etcd"]["local"]["imageTag"] == "3.5.21-0"
    assert patches["ClusterConfiguration"]["dns"]["imageTag"] == "v1.12.3"
    assert patches["ClusterConfiguration"]["controllerManager"]["extraArgs"] == {"leader-elect": "false"}


def test_stock_image_keeps_kubeadms_image_tags_and_workers_are_added(creds_file: Path) -> None:
    cluster = yaml.safe_load(kind.config_yaml("172.18.0.1:5000", built_here=False, workers=2))
    assert [n["role"] for n in cluster["nodes"]] == ["control-plane", "worker", "worker"]
    cluster_patch = _patches(cluster)["ClusterConfiguration"]
    assert "etcd" not in cluster_patch and "dns" not in cluster_patch
    assert cluster_patch["scheduler"]["extraArgs"] == {"leader-elect": "false"}
    cri = tomllib.loads(cluster["containerdConfigPatches"][0])["plugins"]["io.containerd.grpc.v1.cri"]
    assert "configs" not in cri["registry"]  # no credentials file: no auth entry


def test_topology_selects_cluster_and_kubeconfig(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYER_KIND_NODES", "3")
    assert kind.name() == "deployer-e2e-multi"
    assert kind.kubeconfig() != L.KUBECONFIG
    monkeypatch.setenv("DEPLOYER_KIND_NODES", "2")
    with pytest.raises(ClusterError, match="must be 1 or 3"):
        kind.nodes_wanted()


def _wrapped(tmp_path: Path, *args: str) -> list[str]:
    """The argv the wrapper hands to the real client (here a script that prints it, one per line)."""
    real = tmp_path / "real-docker"
    real.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    real.chmod(0o755)
    env = {**os.environ, "DEPLOYER_KIND_REAL_DOCKER": str(real)}
    out = subprocess.run([str(WRAPPER), *args], capture_output=True, text=True, env=env, check=True)
    return out.stdout.splitlines()


def test_wrapper_replaces_privileged_by_all_capabilities_but_sys_resource(tmp_path: Path) -> None:
    argv = _wrapped(tmp_path, "run", "--privileged", "--name", "n", "img")
    assert "--privileged" not in argv
    assert argv[:5] == ["run", "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE"]
    assert "systempaths=unconfined" in argv and "/dev/kmsg" in argv
    assert argv[-3:] == ["--name", "n", "img"]
    assert _wrapped(tmp_path, "exec", "--privileged", "n", "cat", "/kind/version") == [
        "exec", "n", "cat", "/kind/version",
    ]  # fmt: skip
    assert _wrapped(tmp_path, "ps", "--privileged") == ["ps", "--privileged"]  # other commands untouched


@pytest.mark.parametrize(
    ("subnet", "collides"),
    [("172.18.0.0/16", False), ("10.200.255.0/24", True), ("10.0.0.0/8", True), ("fc00:f853::/64", False)],
)
def test_a_nodes_network_overlapping_the_local_providers_addresses_is_refused(
    subnet: str, collides: bool
) -> None:
    problem = kind.collision(subnet)
    assert (problem is not None) == collides
    if collides:
        assert problem == (
            f"docker network deployer-kind has subnet {subnet}, which overlaps the local provider's "
            "10.200.0.0/16 (its veths and node IP); remove it (docker network rm deployer-kind) and give "
            "docker an address pool outside that range (daemon.json default-address-pools)"
        )
