"""A rendered chart pushed to the build stack's registry as an OCI artifact, and pulled back identical."""

from __future__ import annotations

import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from deployer.chart import ImageRef, chart_version, publish, render_values, write_chart
from deployer.deploy_config import load, load_policy
from deployer.reporting.redact import MASK, redact
from deployer.target import LOCAL
from deployer.tools import command
from deployer.tools.helm import HELM_BIN, Helm
from e2e.localcluster.configs import registry_credentials
from tests.conftest import require
from tests.runtimes import node_hello_runtime

DIGEST = "sha256:" + "fedcba9876543210" * 4


# What blubber.runtime gives for a node-hello-like production variant.
RUNTIME = node_hello_runtime(environment={})


@pytest.mark.registry
def test_publish_pushes_a_chart_that_pulls_back_byte_identical(tmp_path: Path) -> None:
    require("helm", Path(HELM_BIN).is_file(), "e2e/tools.sh")
    creds = registry_credentials()
    require("registry credentials", creds is not None, "scripts/stack up")
    assert creds is not None
    service = tmp_path / "chart-push-check"
    (service / ".pipeline").mkdir(parents=True)
    config = load(service, load_policy())
    image = ImageRef("127.0.0.1:5000/staging/chart-push-check", DIGEST, "t1")
    values = render_values(config, RUNTIME, image, policy=load_policy())
    version = chart_version(datetime.now(UTC))
    chart = write_chart(tmp_path / "out", config.release, version, values)
    helm = Helm(registry_config=tmp_path / "registry.json")

    published = publish(chart, helm, destination=tmp_path, username=creds[0], password=creds[1])

    # no registry given: the local stack's chart repository (oci://127.0.0.1:5000/staging/charts)
    assert published.reference == f"{LOCAL.registry.charts}/chart-push-check"
    assert published.digest.startswith("sha256:")
    assert redact(f"pw={creds[1]}") == f"pw={MASK}"  # registered for redaction by publish
    # Pull it back by version: the same bytes, and the values carry the image digest.
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
