"""The rendered per-service chart through the real helm binary: lint clean, renders what we promise.

helm is a local binary (no daemon, no cluster): these tests need only the pinned helm from e2e/tools.sh.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deployer.chart import BASE_CHART, ImageRef, chart_version, render_values, write_chart
from deployer.deploy_config import load, load_policy
from deployer.errors import DeployFailed
from deployer.tools.helm import HELM_BIN, Helm
from tests.conftest import require
from tests.runtimes import node_hello_runtime

DIGEST = "sha256:" + "0123456789abcdef" * 4


# What blubber.runtime gives for a node-hello-like production variant.
RUNTIME = node_hello_runtime(gid=901)


@pytest.fixture
def helm() -> Helm:
    require("helm", Path(HELM_BIN).is_file(), "e2e/tools.sh")
    return Helm()


def rendered(tmp_path: Path, deploy_yaml: str = "") -> Path:
    service = tmp_path / "node-hello"
    (service / ".pipeline").mkdir(parents=True)
    (service / ".pipeline" / "deploy.yaml").write_text(deploy_yaml or "{}\n")
    config = load(service, load_policy())
    image = ImageRef("127.0.0.1:5000/staging/node-hello", DIGEST, "2026-11-27-071500-production")
    values = render_values(config, RUNTIME, image, policy=load_policy())
    return write_chart(tmp_path / "out", config.release, chart_version(), values, app_version=image.tag).path


def docs(text: str) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all(text) if d}


def test_base_chart_lints_clean(helm: Helm) -> None:
    out = helm.lint(BASE_CHART)
    assert "0 chart(s) failed" in out


def test_rendered_chart_lints_clean_and_renders_the_promised_pod(tmp_path: Path, helm: Helm) -> None:
    chart = rendered(tmp_path, 'readOnlyRootFilesystem: true\nenv: {QUOTE: "a\'b\\"c\\n- x: y"}\n')
    assert "0 chart(s) failed" in helm.lint(chart)
    manifests = docs(helm.template("node-hello", "staging", chart, values_file=str(chart / "values.yaml")))
    deployment = manifests["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == f"127.0.0.1:5000/staging/node-hello@{DIGEST}"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == ["node", "server.js"]
    assert container["workingDir"] == "/srv/app"
    assert container["env"] == [
        {"name": "NODE_ENV", "value": "production"},
        {"name": "QUOTE", "value": "a'b\"c\n- x: y"},  # one value, not a second list item
    ]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 900,
        "runAsGroup": 901,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/", "port": "http"}
    assert deployment["spec"]["progressDeadlineSeconds"] == 120
    labels = deployment["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "node-hello"
    assert labels["app.kubernetes.io/instance"] == "node-hello"
    assert labels["app.kubernetes.io/version"] == "2026-11-27-071500-production"
    assert labels["app.kubernetes.io/managed-by"] == "Helm"
    assert manifests["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    test_pod = manifests["Pod"]
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert test_pod["spec"]["containers"][0]["image"] == container["image"]


def test_schema_refuses_a_tag_instead_of_a_digest(tmp_path: Path, helm: Helm) -> None:
    chart = rendered(tmp_path)
    values = yaml.safe_load((chart / "values.yaml").read_text())
    values["image"]["digest"] = "latest"
    (chart / "values.yaml").write_text(yaml.safe_dump(values))
    with pytest.raises(DeployFailed, match="digest"):
        helm.lint(chart)


def test_package_names_the_chart_like_the_service(tmp_path: Path, helm: Helm) -> None:
    chart = rendered(tmp_path)
    tgz = helm.package(chart, tmp_path)
    version = yaml.safe_load((chart / "Chart.yaml").read_text())["version"]
    assert tgz == tmp_path / f"node-hello-{version}.tgz"
    assert tgz.is_file()


def test_test_pod_runs_smoke_test_image(tmp_path: Path, helm: Helm) -> None:
    chart = rendered(tmp_path, "smoke:\n  testImage: 127.0.0.1:5000/base/bookworm:12\n")
    assert "0 chart(s) failed" in helm.lint(chart)
    manifests = docs(helm.template("node-hello", "staging", chart, values_file=str(chart / "values.yaml")))
    (test,) = manifests["Pod"]["spec"]["containers"]
    assert test["image"] == "127.0.0.1:5000/base/bookworm:12"
    assert test["command"][0] == "bash"  # what the image must have
    (app,) = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert app["image"] == f"127.0.0.1:5000/staging/node-hello@{DIGEST}"


def test_secret_env_renders_secret_key_refs_after_the_plain_env(tmp_path: Path, helm: Helm) -> None:
    chart = rendered(
        tmp_path,
        "env: {PLAIN: x}\n"
        "secretEnv:\n"
        "  GREETING_TOKEN: {secret: app, key: token}\n"
        "  DATABASE_URL: {secret: db.main, key: url.txt}\n",
    )
    assert "0 chart(s) failed" in helm.lint(chart)  # --strict
    manifests = docs(helm.template("node-hello", "staging", chart, values_file=str(chart / "values.yaml")))
    (container,) = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [
        {"name": "NODE_ENV", "value": "production"},
        {"name": "PLAIN", "value": "x"},
        {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db.main", "key": "url.txt"}}},
        {"name": "GREETING_TOKEN", "valueFrom": {"secretKeyRef": {"name": "app", "key": "token"}}},
    ]
    # the test pod gets none of the app's environment
    (test,) = manifests["Pod"]["spec"]["containers"]
    assert not any("valueFrom" in e for e in test.get("env", []))


def test_secret_env_alone_and_a_name_in_both_maps(tmp_path: Path, helm: Helm) -> None:
    chart = rendered(tmp_path, "secretEnv: {NODE_ENV: {secret: app, key: node-env}}\n")
    manifests = docs(helm.template("node-hello", "staging", chart, values_file=str(chart / "values.yaml")))
    (container,) = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    # blubber's NODE_ENV gives way to the Secret's
    assert container["env"] == [
        {"name": "NODE_ENV", "valueFrom": {"secretKeyRef": {"name": "app", "key": "node-env"}}}
    ]
    # values written by hand with a name in both maps: the chart refuses them rather than render it twice
    values = yaml.safe_load((chart / "values.yaml").read_text())
    values["app"]["env"] = {"NODE_ENV": "production"}
    (chart / "values.yaml").write_text(yaml.safe_dump(values))
    with pytest.raises(DeployFailed, match="both set NODE_ENV"):
        helm.template("node-hello", "staging", chart, values_file=str(chart / "values.yaml"))
    # and its schema refuses an entry without a key
    values["app"]["env"] = {}
    values["app"]["secretEnv"] = {"DB": {"secret": "db"}}
    (chart / "values.yaml").write_text(yaml.safe_dump(values))
    with pytest.raises(DeployFailed, match="key"):
        helm.lint(chart)
