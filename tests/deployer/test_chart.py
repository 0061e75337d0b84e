"""Per-service chart values from blubber runtime data + deploy.yaml, and the chart written to disk."""

from __future__ import annotations

import json
import re
import shutil
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from blubber import Runtime
from blubber.errors import ConfigError, PolicyViolation
from deployer.chart import (
    BASE_CHART,
    ImageRef,
    chart_version,
    dump_yaml,
    lint_covers,
    package,
    render_values,
    stand_in_image,
    write_chart,
)
from deployer.deploy_config import DeployPolicy, load, load_policy
from tests.runtimes import node_hello_runtime

DIGEST = "sha256:" + "ab" * 32
IMAGE = ImageRef("127.0.0.1:5000/staging/node-hello", DIGEST, "2026-11-27-070000-production")


def runtime(**changes: Any) -> Runtime:
    """node-hello's runtime facts with an image-set GREETING, and `changes` applied."""
    return node_hello_runtime(**{"environment": {"NODE_ENV": "production", "GREETING": "image"}, **changes})


def deploy(tmp_path: Path, text: str | None = None, policy: DeployPolicy | None = None):  # type: ignore[no-untyped-def]
    root = tmp_path / "node-hello"
    (root / ".pipeline").mkdir(parents=True, exist_ok=True)
    if text is not None:
        (root / ".pipeline" / "deploy.yaml").write_text(text)
    return load(root, policy or load_policy())


def test_values_mapping(tmp_path: Path) -> None:
    config = deploy(tmp_path, 'port: 3000\nreplicas: 2\nenv: {GREETING: deploy, EXTRA: "a\\"b\\nc"}\n')
    values = render_values(config, runtime(), IMAGE, policy=load_policy())
    assert values["image"] == {
        "repository": "127.0.0.1:5000/staging/node-hello",
        "digest": DIGEST,
        "tag": "2026-11-27-070000-production",
        "pullPolicy": "IfNotPresent",
    }
    assert values["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 900,
        "runAsGroup": 900,
        "readOnlyRootFilesystem": False,
    }
    assert values["app"] == {
        "port": 3000,
        "command": ["node", "server.js"],
        "args": [],
        "workingDir": "/srv/app",
        # deploy.yaml's env wins over the image's environment on a clash
        "env": {"EXTRA": 'a"b\nc', "GREETING": "deploy", "NODE_ENV": "production"},
        "secretEnv": {},
    }
    assert values["replicaCount"] == 2
    assert values["progressDeadlineSeconds"] == 120
    assert values["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}  # from policies/deploy.yaml
    assert values["fullnameOverride"] == "node-hello"


def test_secret_env_maps_to_app_secret_env_and_wins_over_the_image_environment(tmp_path: Path) -> None:
    config = deploy(
        tmp_path,
        "env: {EXTRA: x}\n"
        "secretEnv:\n"
        "  DATABASE_URL: {secret: db, key: url}\n"
        "  GREETING: {secret: app.tokens, key: greeting.txt}\n",
    )
    values = render_values(config, runtime(), IMAGE, policy=load_policy())
    assert values["app"]["secretEnv"] == {
        "DATABASE_URL": {"secret": "db", "key": "url"},
        "GREETING": {"secret": "app.tokens", "key": "greeting.txt"},
    }
    # the image's GREETING is replaced by the Secret's, not rendered twice
    assert values["app"]["env"] == {"EXTRA": "x", "NODE_ENV": "production"}


def test_values_satisfy_the_base_charts_schema(tmp_path: Path) -> None:
    schema = json.loads((BASE_CHART / "values.schema.json").read_text())
    values = render_values(deploy(tmp_path, "readOnlyRootFilesystem: true\n"), runtime(), IMAGE)
    jsonschema.Draft7Validator(schema).validate(values)
    with_secrets = deploy(tmp_path / "s", "secretEnv: {DB: {secret: db.main, key: url}}\n")
    jsonschema.Draft7Validator(schema).validate(render_values(with_secrets, runtime(), IMAGE))
    bad = {**values, "app": {**values["app"], "secretEnv": {"DB": {"secret": "db"}}}}
    with pytest.raises(jsonschema.ValidationError, match="'key' is a required property"):
        jsonschema.Draft7Validator(schema).validate(bad)
    # and the base chart's own defaults too
    jsonschema.Draft7Validator(schema).validate(yaml.safe_load((BASE_CHART / "values.yaml").read_text()))


def test_root_runtime_is_refused_by_policy_and_flagged_without(tmp_path: Path) -> None:
    config = deploy(tmp_path)
    with pytest.raises(PolicyViolation, match="runs as root"):
        render_values(config, runtime(uid=0, gid=0), IMAGE, policy=load_policy(), blubber_file="b.yaml")
    values = render_values(config, runtime(uid=0, gid=0), IMAGE)  # no policy: allowed, but not "non-root"
    assert values["securityContext"]["runAsNonRoot"] is False


def test_non_numeric_uid_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="numeric"):
        render_values(deploy(tmp_path), runtime(uid=-1), IMAGE)


def test_image_ref_parsing_refuses_tags_without_digest() -> None:
    ref = ImageRef.parse(f"127.0.0.1:5000/staging/node-hello:2026-11-27-production@{DIGEST}")
    assert (ref.repository, ref.tag, ref.pinned) == (
        "127.0.0.1:5000/staging/node-hello",
        "2026-11-27-production",
        f"127.0.0.1:5000/staging/node-hello@{DIGEST}",
    )
    assert ImageRef.parse(f"127.0.0.1:5000/x@{DIGEST}").tag == ""
    for bad in ("127.0.0.1:5000/x:latest", f"x@sha256:{'0' * 10}", f"UPPER/x@{DIGEST}", f"r/x:a b@{DIGEST}"):
        with pytest.raises(ValueError):
            ImageRef.parse(bad)


def test_chart_version_is_semver_and_time_ordered() -> None:
    a = chart_version(datetime(2026, 11, 27, 7, 0, 0, tzinfo=UTC))
    b = chart_version(datetime(2026, 11, 27, 7, 0, 1, tzinfo=UTC))
    assert a == "0.0.20261127070000"
    assert int(b.rsplit(".", 1)[1]) > int(a.rsplit(".", 1)[1])


def test_chart_version_names_the_content(tmp_path: Path) -> None:
    """Two different charts rendered in the same second never share a version (an OCI tag)."""
    when = datetime(2026, 11, 27, 7, 0, 0, tzinfo=UTC)
    values = render_values(deploy(tmp_path), runtime(), IMAGE)
    other = {**values, "replicaCount": 7}
    a = chart_version(when, values=values)
    assert re.fullmatch(r"0\.0\.20261127070000-c[0-9a-f]{12}", a)
    assert chart_version(when, values=values) == a
    assert chart_version(when, values=other) != a


def test_written_chart_is_deterministic(tmp_path: Path) -> None:
    values = render_values(deploy(tmp_path), runtime(), IMAGE)
    one = write_chart(tmp_path / "one", "node-hello", "0.0.1", values, app_version=IMAGE.tag)
    two = write_chart(
        tmp_path / "two", "node-hello", "0.0.1", dict(reversed(list(values.items()))), app_version=IMAGE.tag
    )
    for name in ("Chart.yaml", "values.yaml"):
        assert (one.path / name).read_bytes() == (two.path / name).read_bytes()
    chart = yaml.safe_load((one.path / "Chart.yaml").read_text())
    assert (chart["name"], chart["version"], chart["appVersion"]) == ("node-hello", "0.0.1", IMAGE.tag)
    assert chart["annotations"]["deployer/image"] == IMAGE.pinned
    assert yaml.safe_load((one.path / "values.yaml").read_text()) == values
    assert (one.path / "templates" / "deployment.yaml").is_file()
    # re-rendering into the same place replaces, never merges, the old chart
    (one.path / "templates" / "stale.yaml").write_text("stale")
    write_chart(tmp_path / "one", "node-hello", "0.0.2", values)
    assert not (one.path / "templates" / "stale.yaml").exists()


def test_dump_yaml_sorts_keys_and_keeps_newlines_safe() -> None:
    text = dump_yaml({"b": 1, "a": {"d": "x\n- injected: true", "c": "y"}})
    assert text.index("a:") < text.index("b:") and text.index("c:") < text.index("d:")
    assert yaml.safe_load(text) == {"b": 1, "a": {"d": "x\n- injected: true", "c": "y"}}


def test_test_pod_image_comes_from_smoke_test_image(tmp_path: Path) -> None:
    schema = json.loads((BASE_CHART / "values.schema.json").read_text())
    default = render_values(deploy(tmp_path), runtime(), IMAGE, policy=load_policy())
    assert default["test"] == {"enabled": True, "path": "/", "image": "", "timeoutSeconds": 25}
    text = "smoke:\n  testPath: /healthz\n  testImage: 127.0.0.1:5000/base/bookworm:12\n"
    values = render_values(deploy(tmp_path / "b", text), runtime(), IMAGE, policy=load_policy())
    assert values["test"] == {
        "enabled": True,
        "path": "/healthz",
        "image": "127.0.0.1:5000/base/bookworm:12",
        "timeoutSeconds": 25,
    }
    assert values["image"]["repository"] == IMAGE.repository  # the service's own pods are unchanged
    jsonschema.Draft7Validator(schema).validate(values)


def test_test_image_outside_the_allowed_repositories_is_refused(tmp_path: Path) -> None:
    config = deploy(tmp_path, "smoke:\n  testImage: docker.io/library/debian:12\n")
    with pytest.raises(PolicyViolation, match="smoke.testImage") as info:
        render_values(config, runtime(), IMAGE, policy=load_policy())
    assert (info.value.line, info.value.path) == (2, "smoke.testImage")


# --- the archive, and linting before the digest is known ----------------------------------------------


def _members(archive: Path) -> dict[str, tuple[int, int, bytes]]:
    with tarfile.open(archive) as tar:
        return {
            m.name: (m.mode, m.type == tarfile.REGTYPE, tar.extractfile(m).read()) for m in tar.getmembers()
        }  # type: ignore[union-attr]


def test_package_is_the_chart_directory_under_its_name_byte_identical_each_time(tmp_path: Path) -> None:
    values = render_values(deploy(tmp_path), runtime(), IMAGE)
    chart = write_chart(tmp_path / "out", "node-hello", "0.0.1-cabc", values, app_version=IMAGE.tag)
    archive = package(chart, tmp_path / "pkg")
    assert archive == tmp_path / "pkg" / "node-hello-0.0.1-cabc.tgz"
    members = _members(archive)
    files = sorted(p.relative_to(chart.path).as_posix() for p in chart.path.rglob("*") if p.is_file())
    assert sorted(members) == [f"node-hello/{f}" for f in files]  # files only, as helm package writes
    assert "node-hello/templates/deployment.yaml" in members and "node-hello/.helmignore" in members
    assert {(mode, regular) for mode, regular, _ in members.values()} == {(0o644, True)}
    assert yaml.safe_load(members["node-hello/values.yaml"][2]) == values
    assert package(chart, tmp_path / "again").read_bytes() == archive.read_bytes()


def test_what_helmignore_names_never_reaches_the_chart(tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(BASE_CHART, base)
    (base / "templates" / "deployment.yaml.swp").write_text("an editor's swap file")
    (base / ".git").mkdir()
    (base / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    chart = write_chart(tmp_path / "out", "svc", "0.0.1", {"image": {}}, base=base)
    names = set(_members(package(chart, tmp_path)))
    assert "svc/templates/deployment.yaml" in names
    assert not {n for n in names if n.endswith(".swp") or "/.git/" in n}
    (base / ".helmignore").write_text("templates/*.swp\n")  # a form helm reads by its own rules
    with pytest.raises(ValueError, match=r"'templates/\*.swp' is not a plain name glob"):
        write_chart(tmp_path / "out", "svc", "0.0.1", {"image": {}}, base=base)


def test_a_chart_linted_with_the_stand_in_image_vouches_only_for_a_different_image(tmp_path: Path) -> None:
    config = deploy(tmp_path)
    stand_in = stand_in_image(IMAGE.repository, "production")
    linted = render_values(config, runtime(), stand_in)
    jsonschema.Draft7Validator(json.loads((BASE_CHART / "values.schema.json").read_text())).validate(linted)
    assert stand_in.digest != IMAGE.digest and stand_in.tag.endswith("-production")
    assert lint_covers(linted, render_values(config, runtime(), IMAGE))
    two_replicas = deploy(tmp_path / "b", "replicas: 2\n")
    assert not lint_covers(linted, render_values(two_replicas, runtime(), IMAGE))
