"""`env show`: the resolved environment as data and YAML; credential sources named, values never shown."""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

from deployer.target import LOCAL, describe, load, render


def _team(tmp_path: Path):
    path = tmp_path / "deployer.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            environments:
              staging:
                registry:
                  host: registry.team.test:5443
                  tls: {caFile: /etc/team/ca.crt}
                  credentials: {env: {user: CI_USER, password: CI_TOKEN}}
                cluster: {context: staging}
            """
        )
    )
    return load(path).get("staging")


def test_env_credentials_show_names_and_whether_set_never_values(tmp_path: Path) -> None:
    env = _team(tmp_path)
    environ = {"CI_USER": "robot", "CI_TOKEN": "tok-3f9a8b7c"}
    text = render(env, environ)
    assert "tok-3f9a8b7c" not in text
    assert "robot" not in text
    creds = yaml.safe_load(text)["registry"]["credentials"]
    assert creds == {
        "from": "environment variables",
        "user": "$CI_USER (set)",
        "password": "$CI_TOKEN (********)",
    }
    unset = describe(env, {})["registry"]["credentials"]
    assert unset["password"] == "$CI_TOKEN (not set)"


def test_describe_is_the_resolved_target(tmp_path: Path) -> None:
    data = describe(_team(tmp_path), {})
    assert data["defined"] == f"{tmp_path / 'deployer.yaml'}:2"
    assert data["registry"] == {
        "host": "registry.team.test:5443",
        "url": "https://registry.team.test:5443",
        "tls": {"caFile": "/etc/team/ca.crt"},
        "images": "registry.team.test:5443/staging/<service>",
        "charts": "oci://registry.team.test:5443/staging/charts",
        "credentials": {
            "from": "environment variables",
            "user": "$CI_USER (not set)",
            "password": "$CI_TOKEN (not set)",
        },
        "pullCredentials": "(credentials)",  # the cluster pulls with the same ones
    }
    assert data["cluster"]["context"] == "staging"
    assert data["cluster"]["kubeconfig"] == "$KUBECONFIG or ~/.kube/config"


def test_the_local_stack_names_its_credentials_file_and_plain_http() -> None:
    data = describe(LOCAL, {})
    assert data["registry"]["tls"] == "insecure"
    assert data["registry"]["url"] == "http://127.0.0.1:5000"
    assert data["registry"]["credentials"] == {
        "from": "file",
        "path": "/var/lib/deployer/registry/credentials.env",
        "keys": "REGISTRY_USER, REGISTRY_PASSWORD (********)",
    }
    assert data["defined"].startswith("built in")


def test_a_pull_credential_of_its_own_is_shown_masked(tmp_path: Path) -> None:
    path = tmp_path / "deployer.yaml"
    path.write_text(
        "environments:\n  staging:\n    registry:\n      host: r.example:443\n"
        "      credentials: {env: {user: CI_USER, password: CI_TOKEN}}\n"
        "      pullCredentials: {file: {path: pull.env}}\n"
    )
    env = load(path).get("staging")
    environ = {"CI_USER": "robot", "CI_TOKEN": "tok-3f9a8b7c"}
    assert describe(env, environ)["registry"]["pullCredentials"] == {
        "from": "file",
        "path": str(tmp_path / "pull.env"),
        "keys": "REGISTRY_USER, REGISTRY_PASSWORD (********)",
    }
    assert env.registry.pull_source.path == tmp_path / "pull.env"
    assert env.registry.credentials.user_var == "CI_USER"  # deployer's own stay the push ones
