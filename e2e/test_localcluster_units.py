"""Unit tests of the local cluster's pure parts: generated configs, the pause image, credentials."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tomllib
from pathlib import Path

import pytest
import yaml

from e2e.localcluster import configs, pause
from e2e.localcluster import layout as L


@pytest.fixture
def creds_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "credentials.env"
    monkeypatch.setattr(L, "REGISTRY_CREDENTIALS", path)
    return path


def test_registry_credentials_parsed_with_quotes_and_comments(creds_file: Path) -> None:
    creds_file.write_text("# generated\nREGISTRY_USER=deployer\nREGISTRY_PASSWORD='p a\"ss'\n")
    assert configs.registry_credentials() == ("deployer", 'p a"ss')


def test_registry_credentials_absent_or_incomplete(creds_file: Path) -> None:
    assert configs.registry_credentials() is None
    creds_file.write_text("REGISTRY_USER=deployer\n")
    assert configs.registry_credentials() is None


def test_containerd_config_is_valid_toml_with_vm_specific_settings(creds_file: Path) -> None:
    creds_file.write_text('REGISTRY_USER=u\nREGISTRY_PASSWORD=se"cret\n')
    cri = tomllib.loads(configs.containerd_toml())["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True  # no CAP_SYS_RESOURCE on these VMs
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["sandbox_image"] == L.PAUSE_IMAGE
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    # Auth keyed by the registry host that image references use; the TOML string survives quoting.
    assert cri["registry"]["configs"][L.REGISTRY]["auth"] == {"username": "u", "password": 'se"cret'}


def test_containerd_config_without_credentials_has_no_auth(creds_file: Path) -> None:
    cri = tomllib.loads(configs.containerd_toml())["plugins"]["io.containerd.grpc.v1.cri"]
    assert "configs" not in cri["registry"]


def test_registry_hosts_toml_is_plain_http_on_loopback() -> None:
    hosts = tomllib.loads(configs.registry_hosts_toml())
    assert hosts["server"] == f"http://{L.REGISTRY}"
    assert hosts["host"][f"http://{L.REGISTRY}"]["capabilities"] == ["pull", "resolve"]


def test_kubelet_and_proxy_configs() -> None:
    kubelet = yaml.safe_load(configs.kubelet_yaml())
    assert kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["failCgroupV1"] is False
    assert kubelet["oomScoreAdj"] == 0
    assert kubelet["resolvConf"] == ""
    assert kubelet["containerRuntimeEndpoint"] == f"unix://{L.CONTAINERD_SOCK}"
    proxy = yaml.safe_load(configs.kube_proxy_yaml())
    assert proxy["mode"] == "iptables"
    assert proxy["conntrack"]["maxPerCore"] == 0  # read-only sysctl inside a netns


def test_cni_conflist_keeps_ipam_state_in_our_dir() -> None:
    conf = json.loads(configs.cni_conflist())
    bridge = conf["plugins"][0]
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["dataDir"] == str(configs.CNI_IPAM_DIR)
    assert bridge["ipam"]["ranges"] == [[{"subnet": L.POD_CIDR}]]


def test_pause_archive_is_a_consistent_docker_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "catatonit"
    fake.write_bytes(b"\x7fELF fake")
    monkeypatch.setattr(pause, "CATATONIT", fake)
    with tarfile.open(fileobj=io.BytesIO(pause.docker_archive("example/pause:1"))) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        [entry] = manifest
        assert entry["RepoTags"] == ["example/pause:1"]
        config_bytes = tar.extractfile(entry["Config"]).read()
        layer = tar.extractfile(entry["Layers"][0]).read()
    assert entry["Config"] == hashlib.sha256(config_bytes).hexdigest() + ".json"
    config = json.loads(config_bytes)
    assert config["config"]["Entrypoint"] == ["/pause", "-P"]
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(layer)) as inner:
        member = inner.getmember("pause")
        assert member.mode == 0o755
        assert inner.extractfile(member).read() == b"\x7fELF fake"


def test_kube_proxy_follows_endpoint_changes_at_once_and_kubelet_points_pods_at_cluster_dns() -> None:
    proxy = yaml.safe_load(configs.kube_proxy_yaml())
    # Not 0: kube-proxy's defaulting turns a 0 in the config file into 1s (see e2e/README.md).
    assert proxy["iptables"]["minSyncPeriod"] == "10ms"
    kubelet = yaml.safe_load(configs.kubelet_yaml())
    assert kubelet["clusterDNS"] == [L.DNS_SERVICE_IP]
    assert kubelet["clusterDomain"] == L.CLUSTER_DOMAIN


def test_coredns_objects_serve_only_the_cluster_zones_behind_kube_dns() -> None:
    from e2e.localcluster import dns

    objs = {obj["kind"]: (path, obj) for path, obj in dns.manifests("localhost/e2e/coredns:x")}
    kinds = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Service"}
    assert set(objs) == kinds
    for path, obj in objs.values():  # each object is applied at its own path
        assert path.endswith(f"/{obj['metadata']['name']}")
    service = objs["Service"][1]
    assert service["spec"]["clusterIP"] == L.DNS_SERVICE_IP
    corefile = objs["ConfigMap"][1]["data"]["Corefile"]
    assert corefile.startswith(f"{L.CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{")
    assert "forward" not in corefile
    pod = objs["Deployment"][1]["spec"]["template"]["spec"]
    assert pod["containers"][0]["imagePullPolicy"] == "Never"
    assert pod["dnsPolicy"] == "Default"  # never its own resolver


def test_coredns_image_tag_follows_the_binary(tmp_path: Path) -> None:
    from e2e.localcluster import dns

    fake = tmp_path / "coredns"
    fake.write_text("#!/bin/sh\necho CoreDNS-9.9.9\necho linux/amd64\n")
    fake.chmod(0o755)
    first = dns.image_tag(fake)
    assert first.startswith("localhost/e2e/coredns:9.9.9-")
    fake.write_text(fake.read_text() + "# rebuilt\n")
    assert dns.image_tag(fake) != first
    with tarfile.open(fileobj=io.BytesIO(dns.image_archive(first, fake))) as tar:
        [entry] = json.load(tar.extractfile("manifest.json"))
        assert entry["RepoTags"] == [first]
        config = json.load(tar.extractfile(entry["Config"]))
    assert config["config"]["Entrypoint"] == ["/coredns"]


class _NodeApi:
    def __init__(self, node: dict | None) -> None:
        self.node = node

    def get(self, path: str) -> dict | None:
        return self.node


def _node(status: str, heartbeat: str) -> dict:
    return {"status": {"conditions": [{"type": "Ready", "status": status, "lastHeartbeatTime": heartbeat}]}}


def test_a_restarted_kubelets_node_counts_as_ready_only_by_a_status_it_posted() -> None:
    # Seen here: containerd's CRI was still loading, the new kubelet exited at once, and `up` took the
    # Ready its previous run had posted for the node's readiness.
    from datetime import UTC, datetime

    from e2e.localcluster.local import _node_ready_since

    start = datetime(2026, 12, 3, 20, 53, 13, tzinfo=UTC)
    stale = _NodeApi(_node("True", "2026-12-03T20:50:02Z"))
    fresh = _NodeApi(_node("True", "2026-12-03T20:53:13Z"))
    assert not _node_ready_since(stale, "/n", start)
    assert _node_ready_since(fresh, "/n", start)
    assert _node_ready_since(stale, "/n", None)  # a kubelet left running posts only on change
    assert not _node_ready_since(_NodeApi(_node("False", "2026-12-03T20:53:14Z")), "/n", start)
    assert not _node_ready_since(_NodeApi(None), "/n", None)
