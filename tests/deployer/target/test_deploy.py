"""deployer.target.deploy: a service's deploy.yaml in one environment (deploy defaults, namespace rule),
and the commands that read it through there (status, diff, rollback, prune: deployer.release.ref)."""

from __future__ import annotations

from pathlib import Path

import pytest

from blubber.errors import ConfigError
from deployer.release.ref import release_ref as release_target
from deployer.target import resolve
from deployer.target.deploy import service_deploy

DEPLOYER_YAML = """\
default: staging
environments:
  staging:
    registry: {host: r.example:443, credentials: {none: true}}
    cluster: {kubeconfig: /k/staging, namespace: "team-{service}"}
    deploy:
      replicas: 3
      timeouts: {rollout: 700}
      env: {REGION: eu}
  production:
    registry: {host: r.example:443, credentials: {none: true}}
    cluster:
      kubeconfig: /k/production
      namespace: "{release}-production"
      serviceMayChooseNamespace: false
"""


def _project(tmp_path: Path, deploy_yaml: str | None) -> tuple[Path, Path]:
    """deployer.yaml at the root and a service `hello` (its .pipeline/deploy.yaml if given)."""
    config = tmp_path / "deployer.yaml"
    config.write_text(DEPLOYER_YAML)
    service = tmp_path / "hello"
    (service / ".pipeline").mkdir(parents=True)
    (service / ".pipeline" / "blubber.yaml").write_text("version: v4\nvariants: {production: {}}\n")
    if deploy_yaml is not None:
        (service / ".pipeline" / "deploy.yaml").write_text(deploy_yaml)
    return config, service


@pytest.mark.parametrize(
    ("env", "deploy_yaml", "flags", "expected"),
    [
        ("staging", None, {}, ("hello", "team-hello")),  # the rule's template of {service}
        ("staging", "namespace: mine\n", {}, ("hello", "mine")),  # the service may choose here
        ("production", "namespace: mine\n", {}, ("hello", "hello-production")),  # and may not here
        ("production", "release: web\n", {}, ("web", "web-production")),
        ("production", None, {"release": "canary"}, ("canary", "canary-production")),
        ("production", "namespace: mine\n", {"namespace": "ops"}, ("hello", "ops")),  # --namespace wins
    ],
)
def test_the_environments_namespace_rule(
    tmp_path: Path, env: str, deploy_yaml: str | None, flags: dict[str, str], expected: tuple[str, str]
) -> None:
    config, service = _project(tmp_path, deploy_yaml)
    deploy = service_deploy(resolve(env, config=config, environ={}), service, **flags)
    assert (deploy.release, deploy.namespace) == expected


def test_the_local_stack_keeps_deploy_yamls_namespace_else_the_release(tmp_path: Path) -> None:
    _, service = _project(tmp_path, None)
    local = resolve("local", config=tmp_path / "deployer.yaml", environ={})
    assert service_deploy(local, service).namespace == "hello"
    (service / ".pipeline" / "deploy.yaml").write_text("namespace: mine\n")
    assert service_deploy(local, service).namespace == "mine"


def test_the_environments_deploy_defaults_sit_between_the_policy_and_deploy_yaml(tmp_path: Path) -> None:
    config, service = _project(tmp_path, "replicas: 1\n")
    staging = service_deploy(resolve("staging", config=config, environ={}), service)
    assert staging.replicas == 1  # deploy.yaml wins
    assert staging.timeouts.rollout == 700  # the environment's, over the built-in 300 s
    assert staging.timeouts.helm == 300  # a sibling the environment did not set keeps its default
    assert staging.env["REGION"] == "eu"
    production = service_deploy(resolve("production", config=config, environ={}), service)
    assert production.timeouts.rollout != 700 and "REGION" not in production.env


def test_a_clash_with_an_environment_default_points_at_deployer_yaml(tmp_path: Path) -> None:
    secret_env = "secretEnv: {REGION: {secret: s, key: k}}\n"
    config, service = _project(tmp_path, secret_env)
    with pytest.raises(ConfigError) as caught:
        service_deploy(resolve("staging", config=config, environ={}), service)
    message = str(caught.value)
    assert "REGION is set in both env and secretEnv" in message
    assert f"(also at {config}:9: environments.staging.deploy.env.REGION)" in message  # its own line


def test_status_diff_rollback_and_prune_read_the_release_through_the_environment(tmp_path: Path) -> None:
    # deployer.release.ref.release_ref is where those four commands find their release and namespace
    config, service = _project(tmp_path, "namespace: mine\n")
    production = resolve("production", config=config, environ={})
    tgt = release_target(str(service), where=production)
    assert (tgt.release, tgt.namespace, tgt.kubeconfig) == ("hello", "hello-production", "/k/production")
    assert tgt.deploy.timeouts.rollout != 700
    staging = release_target(str(service), where=resolve("staging", config=config, environ={}))
    assert (staging.namespace, staging.deploy.replicas) == ("mine", 3)
    overridden = release_target(str(service), where=production, namespace="ops", release="web")
    assert (overridden.release, overridden.namespace) == ("web", "ops")


def test_doctor_checks_rbac_in_the_namespace_the_environment_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from deployer import cli, doctor

    config, service = _project(tmp_path, "namespace: mine\n")
    asked = []
    monkeypatch.setattr(doctor, "run", lambda cfg: asked.append(cfg) or 0)  # the checks themselves: seam
    argv = ["doctor", str(service), "--config", str(config), "--env", "production"]
    result = CliRunner().invoke(cli.main, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert [(c.environment, c.namespace) for c in asked] == [("production", "hello-production")]
