"""`deployer diff` at the CLI seam (deployer.release.diff): the chart rendered now against the live
release's manifest, per resource. The fake cluster is the `cluster` fixture (conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

from click.testing import CliRunner

from deployer import cli
from deployer.errors import ExitCode
from tests.deployer.helmfakes import HelmSaid, helm_failures_are_helm_said  # noqa: F401 - autouse fixture
from tests.deployer.release.fakes import (
    IMAGE,
    SHIP,
    SHIP_OLD,
    _invoke,
    _rev,
)

LIVE = f"""---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: node-hello
spec:
  replicas: 1
  template:
    spec:
      containers:
        - name: node-hello
          image: {IMAGE}
---
apiVersion: v1
kind: Service
metadata:
  name: node-hello
spec:
  ports: [{{port: 80}}]
"""


def test_diff_renders_with_the_live_image_and_prints_changes(cluster: Callable[..., SimpleNamespace]) -> None:
    rendered = LIVE.replace("replicas: 1", "replicas: 3")
    fake = cluster(
        [_rev(1, "superseded", SHIP_OLD), _rev(2, "deployed", SHIP)], manifest=LIVE, rendered=rendered
    )
    result = _invoke("diff", "node-hello")

    assert result.exit_code == 0, result.output
    assert f"image: {IMAGE} (the live one;" in result.output
    assert "changed: Deployment node-hello" in result.output
    assert "-  replicas: 1" in result.output and "+  replicas: 3" in result.output
    assert "1 changed resource(s)" in result.output
    (template,) = [c for c in fake.helm.calls if c[1] == "template"]
    assert "--skip-tests" in template and template[2] == "node-hello"
    # rendered with the live image and the live chart version and tag, so labels do not churn
    image = fake.helm.values["image"]
    assert f"{image['repository']}@{image['digest']}" == IMAGE
    assert (fake.helm.chart["version"], fake.helm.chart["appVersion"], image["tag"]) == (
        "0.0.2",
        "tag2",
        "tag2",
    )
    assert fake.helm.values["app"]["command"] == ["node", "server.js"]  # from the example's blubber.yaml
    assert any(c[1] == "get" and c[2] == "manifest" for c in fake.helm.calls)


def test_diff_without_changes_says_so(cluster: Callable[..., SimpleNamespace]) -> None:
    cluster([_rev(1, "deployed", SHIP)], manifest=LIVE, rendered=LIVE)
    result = _invoke("diff", "node-hello")
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("no changes")


def test_diff_of_a_release_not_installed_yet_shows_everything_added(
    cluster: Callable[..., SimpleNamespace],
) -> None:
    fake = cluster([], rendered=LIVE)
    result = _invoke("diff", "node-hello")
    assert result.exit_code == 0, result.output
    assert "(no live release)" in result.output
    assert "placeholder" in result.output
    assert "added: Deployment node-hello" in result.output and "added: Service node-hello" in result.output
    assert "2 added resource(s)" in result.output
    assert fake.helm.values["image"]["digest"] == "sha256:" + "0" * 64


def test_diff_with_a_bad_image_is_a_user_error(cluster: Callable[..., SimpleNamespace]) -> None:
    cluster([_rev(1, "deployed", SHIP)], manifest=LIVE, rendered=LIVE)
    result = CliRunner().invoke(cli.main, ["diff", "node-hello", "--image", "127.0.0.1:5000/x:latest"])
    assert result.exit_code == ExitCode.CONFIG
    assert "has no @sha256 digest" in result.output
