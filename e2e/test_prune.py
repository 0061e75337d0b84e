"""`deployer prune` on the real registry and cluster, through the installed CLI.

A copy of node-hello (its own image repository `staging/prune-<id>`, chart repository
`staging/charts/prune-<id>` and release) is shipped twice, so helm's history has revision 1 (image A,
chart cA) and revision 2 (image B, chart cB). The test then pushes, directly, an old image X and an old
chart version cX that no revision uses, a newer image Y that no revision uses either (a `deployer push`
that was never deployed), and an old image W that only another release (`<name>-other`, a ConfigMap
naming W) references: that one is found through helm's release Secrets. `deployer prune --keep 1` must:

- refuse (exit 19) and delete nothing while the cluster cannot be reached;
- with --dry-run, list X and cX for deletion and delete nothing;
- delete X and cX (their tags and digests answer 404 and no longer pull), keep Y (the newest push), keep
  W (in use by the other release), and keep A, B, cA and cB (in use by revisions 1 and 2) so they still
  pull, blobs included;
- leave `deployer rollback --revision 1` working: the pods run A again.
"""

from __future__ import annotations

import base64
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from deployer.errors import ExitCode
from deployer.tools import registry as registry_mod
from deployer.tools.helm import Helm
from e2e.conftest import Registry
from e2e.localcluster.configs import registry_credentials
from e2e.shipping import MANIFEST_TYPES, ServiceCopy, Ship, service_copy, tags

pytestmark = [pytest.mark.cluster, pytest.mark.registry, pytest.mark.docker, pytest.mark.slow]

HOST = "127.0.0.1:5000"
FAST = """
probes:
  readiness: {path: /healthz, periodSeconds: 1, timeoutSeconds: 1, failureThreshold: 3}
smoke:
  helmTest: false
timeouts: {progressDeadline: 30, rollout: 45, helm: 60, smoke: 15}
"""
OLD_CHART_VERSION = "0.0.20200101000000-c000000000000"
OLD_IMAGE_TAG = "20200101T000000Z-production"
OTHERS_IMAGE_TAG = "20200101T000001Z-production"


@pytest.fixture
def service(
    cluster_kubeconfig: Path, kube: client.ApiClient, registry: Registry, tmp_path: Path
) -> Iterator[ServiceCopy]:
    with service_copy(
        ServiceCopy,
        "node-hello",
        "prune",
        kubeconfig=cluster_kubeconfig,
        api=kube,
        registry=registry,
        tmp_path=tmp_path,
    ) as svc:
        svc.write(".pipeline/deploy.yaml", f"namespace: {svc.namespace}\n{FAST}")
        svc.commit("node-hello copy")
        yield svc


def _request(path: str, method: str) -> urllib.request.Request:
    creds = registry_credentials()
    assert creds is not None
    token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Accept": MANIFEST_TYPES}
    return urllib.request.Request(f"http://{HOST}{path}", method=method, headers=headers)


def _status(path: str, method: str = "HEAD") -> int:
    try:
        with urllib.request.urlopen(_request(path, method), timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


def _pullable(repository: str, digest: str) -> bool:
    """The manifest and every blob it names (config and layers) are served: what a pull fetches."""
    try:
        with urllib.request.urlopen(_request(f"/v2/{repository}/manifests/{digest}", "GET")) as r:
            manifest = yaml.safe_load(r.read())
    except urllib.error.HTTPError:
        return False
    blobs = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
    return all(_status(f"/v2/{repository}/blobs/{blob}") == 200 for blob in blobs)


def _ship(svc: ServiceCopy) -> str:
    ship: Ship = svc.ship("--skip-smoke", "--timeout", "240")
    assert ship.returncode == 0, ship.output[-4000:]
    (image,) = [i for i in ship.report["images"] if i.get("pushed")]
    return str(image["digest"])


def _push_image(registry: Registry, source: str, target: str) -> str:
    """Push `source` (a base image in the registry) as `target`; its digest in the target repository."""
    for argv in (("pull", source), ("tag", source, target)):
        done = registry.docker(*argv)
        assert done.returncode == 0, done.stderr[-2000:]
    push = registry.docker("push", target)
    assert push.returncode == 0, push.stderr[-2000:]
    match = re.search(r"digest: (sha256:[0-9a-f]{64})", push.stdout)
    assert match, push.stdout
    return match.group(1)


def _push_chart(name: str, version: str, tmp_path: Path) -> str:
    """Package and push a minimal chart `name` at `version` to staging/charts; its digest."""
    chart = tmp_path / "extra-chart" / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: {version}\n")
    helm = Helm(registry_config=tmp_path / "helm-registry.json", timeout=60)
    creds = registry_credentials()
    assert creds is not None
    helm.registry_login(HOST, creds[0], creds[1], insecure=True)
    package = helm.package(chart, tmp_path / "extra-chart")
    return helm.push(package, f"oci://{HOST}/staging/charts", plain_http=True)


def _install_other_release(svc: ServiceCopy, image: str, tmp_path: Path) -> str:
    """A second release in the copy's namespace whose only object is a ConfigMap naming `image`; its name."""
    chart = tmp_path / "other-chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: other\nversion: 0.1.0\n")
    (chart / "templates" / "configmap.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata:\n  image: {image}\n"
    )
    name = f"{svc.name}-other"
    assert svc.helm().upgrade_install(name, svc.namespace, chart).status == "deployed"
    return name


def _tag_digest(repository: str, tag: str) -> str | None:
    try:
        with urllib.request.urlopen(_request(f"/v2/{repository}/manifests/{tag}", "HEAD")) as r:
            return str(r.headers["Docker-Content-Digest"])
    except urllib.error.HTTPError as e:
        assert e.code == 404, e
        return None


def test_prune_keeps_the_newest_and_every_rollback_target_and_deletes_the_rest(
    service: ServiceCopy, registry: Registry, tmp_path: Path
) -> None:
    name = service.name
    images, charts = f"staging/{name}", f"staging/charts/{name}"
    a = _ship(service)
    service.write("app.js", (service.root / "app.js").read_text() + "\n// v2\n")
    service.commit("v2")
    b = _ship(service)
    assert a != b
    chart_tags = {t: _tag_digest(charts, t) for t in tags(charts)}
    assert len(chart_tags) == 2, chart_tags
    x = _push_image(registry, f"{HOST}/base/nodejs-runtime:12", f"{HOST}/{images}:{OLD_IMAGE_TAG}")
    now = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    y = _push_image(registry, f"{HOST}/base/bookworm:12", f"{HOST}/{images}:{now}-production")
    w = _push_image(registry, f"{HOST}/base/python3-runtime:12", f"{HOST}/{images}:{OTHERS_IMAGE_TAG}")
    other = _install_other_release(service, f"{HOST}/{images}@{w}", tmp_path)
    cx = _push_chart(name, OLD_CHART_VERSION, tmp_path)
    assert len({a, b, x, y, w}) == 5
    before = {"images": sorted(tags(images)), "charts": sorted(tags(charts))}
    assert len(before["images"]) == 7 and len(before["charts"]) == 3, before  # A, B: stamp + git tag each

    # The cluster cannot be reached: refused, nothing deleted.
    bad = yaml.safe_load(service.kubeconfig.read_text())
    for entry in bad["clusters"]:
        entry["cluster"]["server"] = "https://127.0.0.1:9"
    (tmp_path / "unreachable").write_text(yaml.safe_dump(bad))
    refused = service.deployer(
        "prune", str(service.root), "--kubeconfig", str(tmp_path / "unreachable"), "--keep", "1"
    )
    assert refused.returncode == ExitCode.ENVIRONMENT, refused.stdout + refused.stderr
    assert "so what is in use is unknown; nothing was deleted" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert {"images": sorted(tags(images)), "charts": sorted(tags(charts))} == before

    # Dry run: the plan, nothing deleted.
    dry = service.release_command("prune", "--keep", "1", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"  delete  {x}  [{OLD_IMAGE_TAG}]" in dry.stdout.splitlines()
    assert f"  delete  {cx}  [{OLD_CHART_VERSION}]" in dry.stdout.splitlines()
    assert dry.stdout.splitlines()[-1] == "dry run: nothing deleted (2 manifest(s) would be)"
    assert {"images": sorted(tags(images)), "charts": sorted(tags(charts))} == before

    done = service.release_command("prune", "--keep", "1")
    out = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"image repository {HOST}/{images}: 5 push(es), keep 4, delete 1" in out
    assert f"chart repository {HOST}/{charts}: 3 push(es), keep 2, delete 1" in out
    kept = {line.split()[1]: line for line in out if line.startswith("  keep    ")}
    # Y is kept as the newest, and (like A and B, shipped moments ago) as younger than --min-age
    assert f"[{now}-production]  newest push #1 of 1 kept; pushed " in kept[y], kept[y]
    assert kept[y].endswith("s ago, younger than --min-age 600s"), kept[y]
    assert kept[b].endswith(f"in use: release {name} revision 2 (deployed)"), kept[b]
    assert kept[a].endswith(f"in use: release {name} revision 1 (superseded)"), kept[a]
    assert kept[w] == (
        f"  keep    {w}  [{OTHERS_IMAGE_TAG}]  "
        f"in use: release {other} in {service.namespace} revision 1 (deployed)"
    )
    assert out[-1] == "deleted 2 manifest(s); blob space is reclaimed by `scripts/stack gc`"

    # What was pruned is gone: tags and digests answer 404, and docker cannot pull it.
    assert OLD_IMAGE_TAG not in tags(images) and OLD_CHART_VERSION not in tags(charts)
    assert _status(f"/v2/{images}/manifests/{OLD_IMAGE_TAG}") == 404
    assert _status(f"/v2/{images}/manifests/{x}") == 404
    assert _status(f"/v2/{charts}/manifests/{cx}") == 404
    assert registry.docker("pull", f"{HOST}/{images}@{x}").returncode != 0
    # deployer's tag listing follows the registry's pagination
    assert registry_mod.tags(images, registry=HOST, page_size=1) == sorted(tags(images))
    # What is kept still pulls: the rollback targets, the newest push and both charts in use.
    assert sorted(tags(charts)) == sorted(chart_tags)
    for digest in (a, b, y, w):
        assert _pullable(images, digest), digest
        pull = registry.docker("pull", f"{HOST}/{images}@{digest}")
        assert pull.returncode == 0, pull.stderr[-2000:]
    for digest in chart_tags.values():
        assert digest is not None and _pullable(charts, digest), digest

    # And the rollback `prune` protected works: revision 1's image runs again.
    rollback = service.release_command("rollback", "--revision", "1")
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    assert service.running_images() == {f"{HOST}/{images}@{a}"}
