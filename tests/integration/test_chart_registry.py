"""A rendered chart pushed to the build stack's registry as an OCI artifact, and pulled back identical."""

from __future__ import annotations

import json
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from deployer.chart import ImageRef, chart_version, package, publish, push_package, render_values, write_chart
from deployer.deploy_config import DeployConfig, load, load_policy
from deployer.reporting.redact import MASK, redact
from deployer.target import LOCAL
from deployer.tools import command
from deployer.tools.helm import HELM_BIN, Helm
from deployer.tools.registry_api import Credentials, RegistryClient
from e2e.localcluster.configs import registry_credentials
from tests.conftest import require
from tests.runtimes import node_hello_runtime

DIGEST = "sha256:" + "fedcba9876543210" * 4


# What blubber.runtime gives for a node-hello-like production variant.
RUNTIME = node_hello_runtime(environment={})


def _needs(tmp_path: Path, name: str) -> tuple[tuple[str, str], DeployConfig]:
    """helm and the stack's registry credentials (else the test fails in CI: tests.conftest.require),
    and the deploy config of an empty service `name`."""
    require("helm", Path(HELM_BIN).is_file(), "e2e/tools.sh")
    creds = registry_credentials()
    require("registry credentials", creds is not None, "scripts/stack up")
    assert creds is not None
    service = tmp_path / name
    (service / ".pipeline").mkdir(parents=True)
    return creds, load(service, load_policy())


@pytest.mark.registry
def test_publish_pushes_a_chart_that_pulls_back_byte_identical(tmp_path: Path) -> None:
    creds, config = _needs(tmp_path, "chart-push-check")
    image = ImageRef("127.0.0.1:5000/staging/chart-push-check", DIGEST, "t1")
    values = render_values(config, RUNTIME, image, policy=load_policy())
    version = chart_version(datetime.now(UTC))
    chart = write_chart(tmp_path / "out", config.release, version, values)
    helm = Helm(registry_config=tmp_path / "registry.json")

    login = Credentials(creds[0], creds[1], "the stack's credentials file")
    published = publish(chart, helm, destination=tmp_path, credentials=login)

    # no registry given: the local stack's chart repository (oci://127.0.0.1:5000/staging/charts)
    assert published.reference == f"{LOCAL.registry.charts}/chart-push-check"
    assert published.digest.startswith("sha256:")
    assert redact(f"pw={creds[1]}") == f"pw={MASK}"  # registered for redaction by publish
    # Pull it back by version with helm itself: the same bytes, and the values carry the image digest.
    helm.registry_login(LOCAL.registry.host, creds[0], creds[1], insecure=True)
    with tempfile.TemporaryDirectory(dir=tmp_path) as pulled:
        command.run(
            "helm",
            helm.argv("pull", published.reference, "--version", version, "-d", pulled, "--plain-http"),
        )
        tgz = Path(pulled) / f"chart-push-check-{version}.tgz"
        assert tgz.read_bytes() == published.package.read_bytes()
        with tarfile.open(tgz) as archive:
            member = archive.extractfile("chart-push-check/values.yaml")
            assert member is not None
            assert yaml.safe_load(member.read())["image"]["digest"] == DIGEST


@pytest.mark.registry
def test_the_pushed_chart_is_the_artifact_helm_push_makes_of_the_same_archive(tmp_path: Path) -> None:
    """deployer pushes charts in-process (chart.push_package); helm reads them as its own: the same media
    types, config (the chart's metadata), layer (the archive's bytes) and annotations but the time."""
    creds, config = _needs(tmp_path, "chart-twin-check")
    values = render_values(config, RUNTIME, ImageRef("127.0.0.1:5000/staging/chart-twin-check", DIGEST, "t1"))
    chart = write_chart(
        tmp_path / "out", config.release, chart_version(values=values), values, app_version="t1"
    )
    archive = package(chart, tmp_path)
    login = Credentials(creds[0], creds[1], "the stack's credentials file")
    ours = push_package(chart, archive, credentials=login)
    helm = Helm(registry_config=tmp_path / "registry.json")
    helm.registry_login(LOCAL.registry.host, creds[0], creds[1], insecure=True)
    theirs_repo = f"{LOCAL.registry.charts}/helm-pushed"
    theirs_digest = helm.push(archive, theirs_repo, plain_http=True)
    client = RegistryClient(LOCAL.registry, login)
    path = LOCAL.registry.charts.removeprefix(f"oci://{LOCAL.registry.host}/")
    try:
        mine = json.loads(client.manifest(f"{path}/chart-twin-check", chart.version).body)  # type: ignore[union-attr]
        helms = json.loads(client.manifest(f"{path}/helm-pushed/chart-twin-check", chart.version).body)  # type: ignore[union-attr]
        for manifest in (mine, helms):
            manifest["annotations"].pop("org.opencontainers.image.created")
        assert mine == helms  # config and layer digests, sizes, media types, annotations
        # and helm installs from ours: its own reading of the chart
        shown = command.run(
            "helm", helm.argv("show", "chart", ours.reference, "--version", chart.version, "--plain-http")
        )
        assert (
            yaml.safe_load(shown.stdout)["annotations"]["deployer/image"]
            == f"127.0.0.1:5000/staging/chart-twin-check@{DIGEST}"
        )
    finally:
        client.delete_manifest(f"{path}/chart-twin-check", ours.digest)
        client.delete_manifest(f"{path}/helm-pushed/chart-twin-check", theirs_digest)
