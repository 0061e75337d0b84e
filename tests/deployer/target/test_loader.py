"""deployer.yaml → Environments: the resolved values, and the exact errors users see (file:line: path)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from blubber.errors import ConfigError, ExitCode
from deployer.target import (
    LOCAL,
    CredentialsKind,
    TlsMode,
    UnknownEnvironment,
    find,
    load,
)

TEAM = """\
default: staging
environments:
  staging:
    registry:
      host: registry.team.test:5443
      tls: {caFile: certs/team-ca.crt}
      credentials:
        env: {user: CI_REGISTRY_USER, password: CI_REGISTRY_TOKEN}
    cluster:
      kubeconfig: ~/.kube/ci
      context: staging
      namespace: "{service}-staging"
      serviceMayChooseNamespace: false
    policies: {blubber: policies/blubber.yaml, deploy: policies/deploy.yaml}
    deploy:
      replicas: 2
      timeouts: {rollout: 600}
  production:
    registry:
      host: registry.team.test:5443
      namespace: production
      charts: oci://charts.team.test/production
      tls: system
      credentials:
        file: {path: /run/secrets/registry.env, userKey: USER, passwordKey: TOKEN}
    cluster: {context: production}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deployer.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text))
    assert err.value.exit_code == ExitCode.CONFIG
    return err.value


def test_without_a_file_only_the_local_stack() -> None:
    envs = load(None)
    assert envs.names() == ["local"]
    assert envs.get() is LOCAL
    assert envs.get("local").registry.host == "127.0.0.1:5000"


def test_a_team_file_resolves_every_part(tmp_path: Path) -> None:
    path = write(tmp_path, TEAM)
    envs = load(path)
    assert envs.names() == ["local", "production", "staging"]
    assert envs.default == "staging"

    staging = envs.get()
    assert staging.name == "staging"
    assert (staging.file, staging.line) == (str(path), 3)
    assert staging.registry.host == "registry.team.test:5443"
    assert staging.registry.namespace == "staging"  # the environment's name when not given
    assert staging.registry.charts == "oci://registry.team.test:5443/staging/charts"
    assert staging.registry.repository("node-hello") == "registry.team.test:5443/staging/node-hello"
    assert staging.registry.base_url == "https://registry.team.test:5443"
    assert staging.registry.tls.mode is TlsMode.CA_FILE
    assert staging.registry.tls.ca_file == tmp_path / "certs" / "team-ca.crt"
    creds = staging.registry.credentials
    assert (creds.kind, creds.user_var, creds.password_var) == (
        CredentialsKind.ENV,
        "CI_REGISTRY_USER",
        "CI_REGISTRY_TOKEN",
    )
    assert creds.describe() == "$CI_REGISTRY_USER/$CI_REGISTRY_TOKEN"
    assert staging.cluster.kubeconfig == Path("~/.kube/ci").expanduser()
    assert staging.cluster.context == "staging"
    assert staging.cluster.namespace.namespace("hello", "node-hello", chosen="mine") == "node-hello-staging"
    assert staging.policies.blubber == tmp_path / "policies" / "blubber.yaml"
    assert staging.deploy_defaults == {"replicas": 2, "timeouts": {"rollout": 600}}

    production = envs.get("production")
    assert production.registry.namespace == "production"
    assert production.registry.charts == "oci://charts.team.test/production"
    assert production.registry.tls.mode is TlsMode.SYSTEM
    assert production.registry.credentials.describe() == "/run/secrets/registry.env (USER, TOKEN)"
    assert production.cluster.kubeconfig is None
    assert production.cluster.namespace.namespace("hello", "svc", chosen="mine") == "mine"
    assert production.cluster.namespace.namespace("hello", "svc") == "hello"


def test_a_file_may_replace_the_local_environment(tmp_path: Path) -> None:
    envs = load(
        write(
            tmp_path,
            """\
            environments:
              local:
                registry: {host: "127.0.0.1:5000", tls: insecure, credentials: {none: true}}
            """,
        )
    )
    assert envs.default == "local"
    local = envs.get()
    assert local is not LOCAL
    assert local.registry.tls.is_plain_http
    assert local.registry.base_url == "http://127.0.0.1:5000"
    assert local.registry.credentials.kind is CredentialsKind.NONE


def test_unknown_environment_lists_the_known_ones(tmp_path: Path) -> None:
    envs = load(write(tmp_path, TEAM))
    with pytest.raises(UnknownEnvironment) as err:
        envs.get("prod")
    assert err.value.exit_code == ExitCode.USAGE
    assert err.value.message == (
        f"unknown environment 'prod'; known in {tmp_path / 'deployer.yaml'}: local, production, staging"
    )
    with pytest.raises(UnknownEnvironment) as err:
        load(None).get("staging")
    assert err.value.message == "unknown environment 'staging'; known (no deployer.yaml found): local"


@pytest.mark.parametrize(
    ("text", "line", "path", "message"),
    [
        (
            """\
            environments:
              staging:
                registry: {host: "r.example:5000"}
                clusterr: {}
            """,
            4,
            "environments.staging.clusterr",
            "unknown key 'clusterr'",
        ),
        (
            """\
            environments:
              Staging:
                registry: {host: r.example}
            """,
            2,
            "environments.Staging",
            "'Staging' is not valid here",
        ),
        (
            """\
            environments:
              staging:
                registry: {host: "https://r.example"}
            """,
            3,
            "environments.staging.registry.host",
            "'https://r.example' is not valid here",
        ),
        (
            """\
            environments:
              staging:
                registry:
                  host: r.example
                  tls: {ca: ca.crt}
            """,
            5,
            "environments.staging.registry.tls",
            "{'ca': 'ca.crt'} is not valid under any of the given schemas",
        ),
        (
            """\
            environments:
              staging:
                registry:
                  host: r.example
                  charts: https://r.example/charts
            """,
            5,
            "environments.staging.registry.charts",
            "'https://r.example/charts' is not valid here",
        ),
        (
            """\
            default: prod
            environments:
              staging: {registry: {host: r.example}}
            """,
            1,
            "default",
            "default environment 'prod' is not defined",
        ),
        (
            """\
            environments:
              staging:
                registry: {host: r.example}
                deploy: {replicas: none}
            """,
            4,
            "environments.staging.deploy.replicas",
            "'none' is not of type 'integer'",
        ),
        (
            """\
            environments:
              staging:
                registry: {host: r.example}
                deploy: {namespace: team}
            """,
            4,
            "environments.staging.deploy.namespace",
            "namespace cannot have an environment default",
        ),
        (
            """\
            environments:
              staging:
                registry:
                  host: r.example
                  credentials: {env: {user: U, password: P}, file: {path: x}}
            """,
            5,
            "environments.staging.registry.credentials",
            "invalid value (maxProperties: 1)",
        ),
    ],
)
def test_config_errors_say_file_line_and_path(
    tmp_path: Path, text: str, line: int, path: str, message: str
) -> None:
    err = error(tmp_path, text)
    assert (err.file, err.line, err.path) == (str(tmp_path / "deployer.yaml"), line, path)
    assert err.message == message


@pytest.mark.parametrize(
    ("registry", "path", "message", "hint"),
    [
        (
            "{host: r.example, password: hunter2hunter2}",
            "environments.staging.registry.password",
            "a secret does not belong in deployer.yaml",
            "credentials: {env: {user: VAR, password: VAR}}",
        ),
        (
            "{host: r.example, credentials: {env: {user: CI_USER, password: hunter2hunter2}}}",
            "environments.staging.registry.credentials.env.password",
            "invalid value (pattern: '^[A-Z_][A-Z0-9_]*$')",
            "the NAME of an environment variable",
        ),
        (
            "{host: r.example, pullCredentials: {env: {user: PULL_USER, password: hunter2hunter2}}}",
            "environments.staging.registry.pullCredentials.env.password",
            "invalid value (pattern: '^[A-Z_][A-Z0-9_]*$')",
            "the NAME of an environment variable",
        ),
        (
            "{host: r.example, credentials: {file: /run/hunter2hunter2}}",
            "environments.staging.registry.credentials.file",
            "must be a mapping, not a string (the value is not shown: it may be a secret)",
            "file: {path: FILE}",
        ),
        (
            "{host: r.example, pullCredentials: {file: {path: p, token: hunter2hunter2}}}",
            "environments.staging.registry.pullCredentials.file.token",
            "a secret does not belong in deployer.yaml",
            "credentials: {env: {user: VAR, password: VAR}}",
        ),
    ],
)
def test_a_secret_in_the_file_is_refused_and_never_echoed(
    tmp_path: Path, registry: str, path: str, message: str, hint: str
) -> None:
    err = error(tmp_path, f"environments:\n  staging:\n    registry: {registry}\n")
    assert (err.line, err.path, err.message) == (3, path, message)
    assert hint in err.hint
    assert "hunter2" not in str(err)


def test_yaml_syntax_and_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    err = error(tmp_path, "environments: {staging: [\n")
    assert err.message.startswith("invalid YAML")
    with pytest.raises(ConfigError, match="file not found"):
        load(tmp_path / "missing.yaml")


def test_find_looks_in_the_directory_and_its_parents(tmp_path: Path) -> None:
    service = tmp_path / "services" / "hello"
    service.mkdir(parents=True)
    assert find(service) is None
    config = write(tmp_path, TEAM)
    assert find(service) == config


def test_the_readme_example_is_a_valid_config(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    block = readme.split("```yaml\n# deployer.yaml", 1)[1].split("```", 1)[0]
    envs = load(write(tmp_path, "# deployer.yaml" + block))
    assert envs.names() == ["local", "production", "staging"]
    production = envs.get("production")
    assert production.registry.repository("svc") == "registry.team.test:5443/production/svc"
    assert production.cluster.namespace.namespace("rel", "svc", chosen="x") == "svc"
