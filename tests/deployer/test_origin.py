"""deployer/origin.py: each failure maps to the configuration line behind it, and says which layer set it.

Inline configs (a service's blubber.yaml and deploy.yaml, an ops policy with both sections, a deployer.yaml)
and verdicts as the watcher gives them (reason, message, log tail, Warning events), written from what the
local cluster reported for the same failures in e2e/test_ship_failures.py and e2e/test_failure_origin.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import blubber
from deployer import deploy_config, origin
from deployer.rollout.diagnosis import RolloutVerdict
from deployer.smoke import BASH_HINT, CheckResult
from deployer.target import resolve

BLUBBER = """\
version: v4
base: 127.0.0.1:5000/base/nodejs:12
lives:
  in: /srv/app
variants:
  build:
    copies: [local]
    entrypoint: [node, build.js]
  production:
    includes: [build]
    runs:
      environment: {MODE: b}
"""

POLICY = """\
defaults:
  runs:
    as: runuser
    uid: 900
    gid: 900
"""

DEPLOY_POLICY = """\
deploy:
  defaults:
    resources:
      requests: {cpu: 50m, memory: 64Mi}
      limits: {cpu: 500m, memory: 256Mi}
"""

DEPLOY = """\
port: 3000
probes:
  readiness: {path: /never-ready, periodSeconds: 1}
resources:
  requests: {cpu: "64"}
  limits: {cpu: "64"}
secretEnv:
  DB_PASSWORD: {secret: db, key: password}
  API_TOKEN: {secret: api, key: token}
readOnlyRootFilesystem: true
imagePullSecrets: [stale]
smoke:
  checks:
    - {name: root, path: /, body: hello}
    - {name: health, path: /healthz}
"""

DEPLOYER_YAML = """\
default: staging
environments:
  staging:
    registry:
      host: registry.team.test:5443
      credentials:
        env: {user: CI_USER, password: CI_TOKEN}
    cluster: {context: staging}
"""


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "svc" / ".pipeline").mkdir(parents=True)
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "deploy-policy.yaml").write_text(DEPLOY_POLICY)
    (tmp_path / "svc" / ".pipeline" / "blubber.yaml").write_text(BLUBBER)
    (tmp_path / "team").mkdir()  # not above the service: only --config finds it
    (tmp_path / "team" / "deployer.yaml").write_text(DEPLOYER_YAML)
    return tmp_path


def configs(files: Path, deploy_yaml: str | None = DEPLOY, *, env: bool = False) -> origin.Configs:
    svc = files / "svc"
    if deploy_yaml is not None:
        (svc / ".pipeline" / "deploy.yaml").write_text(deploy_yaml)
    policy = deploy_config.load_policy(files / "deploy-policy.yaml")
    config = blubber.load(svc / ".pipeline" / "blubber.yaml", policy=files / "policy.yaml")
    deployer_yaml = files / "team" / "deployer.yaml" if env else None
    target = resolve("staging" if env else None, config=deployer_yaml, start=files, environ={})
    return origin.Configs(deploy_config.load(svc, policy), config, target)


def failed(reason: str, message: str = "", *, logs: tuple[str, ...] = (), events: tuple[str, ...] = ()):
    return RolloutVerdict(
        healthy=False,
        reason=reason,
        hint="",
        message=message,
        object="pod/web-1",
        container="app",
        log_tail=list(logs),
        warning_events=list(events),
    )


def where(found: origin.Origin | None) -> tuple[str | None, int | None, str, str, str]:
    assert found is not None
    name = Path(found.file).name if found.file else None
    return name, found.line, found.yaml_path, found.source, found.text


READINESS_404 = "pod/web-1 Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 404"
READINESS_REFUSED = (
    'pod/web-1 Unhealthy: Readiness probe failed: Get "http://10.0.0.5:3000/never-ready": dial tcp '
    "10.0.0.5:3000: connect: connection refused"
)


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        # readiness: a status code came back, so the path; nothing listening, so the port
        (
            failed("ReadinessProbeFailed", "not ready 6s after start", events=(READINESS_404,)),
            ("deploy.yaml", 3, "probes.readiness.path", "service", "/never-ready"),
        ),
        (
            failed("ReadinessProbeFailed", "not ready 6s after start", events=(READINESS_REFUSED,)),
            ("deploy.yaml", 1, "port", "service", "3000"),
        ),
        # refused before the app listened, then 404: something listens on the port, the path is wrong
        (
            failed("ReadinessProbeFailed", "not ready", events=(READINESS_REFUSED, READINESS_404)),
            ("deploy.yaml", 3, "probes.readiness.path", "service", "/never-ready"),
        ),
        # liveness kills the container: its restarts end in a crash loop
        (
            failed(
                "CrashLoopBackOff",
                "last exit: Error (exit code 137)",
                events=(
                    "pod/web-1 Unhealthy: Liveness probe failed: HTTP probe failed with statuscode: 500",
                ),
            ),
            (None, None, "probes.liveness.path", "default", "/"),
        ),
        # exits and commands that cannot start: the entrypoint the variant inherits from `build`
        (
            failed("CrashLoopBackOff", "last exit: ExitCode:3", logs=("fatal: DATABASE_URL is not set",)),
            ("blubber.yaml", 8, "variants.build.entrypoint", "service", "[node, build.js]"),
        ),
        (
            failed("ExitCode:127", "ExitCode:127: exec: no such file"),
            ("blubber.yaml", 8, "variants.build.entrypoint", "service", "[node, build.js]"),
        ),
        (
            failed("StartError", 'exec: "node": executable file not found in $PATH'),
            ("blubber.yaml", 8, "variants.build.entrypoint", "service", "[node, build.js]"),
        ),
        # memory: the limit the policy gave; scheduling: the request the service asked for
        (
            failed("OOMKilled", "OOMKilled (exit code 137)"),
            ("deploy-policy.yaml", 5, "deploy.defaults.resources.limits.memory", "policy", "256Mi"),
        ),
        (
            failed("CrashLoopBackOff", "last exit: OOMKilled (exit code 137); back-off 10s"),
            ("deploy-policy.yaml", 5, "deploy.defaults.resources.limits.memory", "policy", "256Mi"),
        ),
        (
            failed("StartError", "runc create failed: container init was OOM-killed (memory limit too low?)"),
            ("deploy-policy.yaml", 5, "deploy.defaults.resources.limits.memory", "policy", "256Mi"),
        ),
        (
            failed("Unschedulable", "0/1 nodes are available: 1 Insufficient cpu."),
            ("deploy.yaml", 5, "resources.requests.cpu", "service", "64"),
        ),
        # a missing Secret, a missing key: the secretEnv entry that names it
        (
            failed("CreateContainerConfigError", 'secret "api" not found'),
            ("deploy.yaml", 9, "secretEnv.API_TOKEN.secret", "service", "api"),
        ),
        (
            failed("CreateContainerConfigError", "couldn't find key password in Secret team/db"),
            ("deploy.yaml", 8, "secretEnv.DB_PASSWORD.key", "service", "password"),
        ),
        # permissions at start: the read-only root file system, or the runtime user (the policy's uid)
        (
            failed(
                "Error",
                "Error (exit code 1)",
                logs=("Error: EROFS: read-only file system, open '/srv/app/x'",),
            ),
            ("deploy.yaml", 10, "readOnlyRootFilesystem", "service", "true"),
        ),
        (
            failed(
                "CrashLoopBackOff",
                "last exit: ExitCode:1",
                logs=("Error: EACCES: permission denied, open 'x'",),
            ),
            ("policy.yaml", 4, "defaults.runs.uid", "policy", "900"),
        ),
        (
            failed("CreateContainerConfigError", "container has runAsNonRoot and image has non-numeric user"),
            ("policy.yaml", 4, "defaults.runs.uid", "policy", "900"),
        ),
        # a refused pull by a pod that names the service's pull secrets: those
        (
            failed("ImagePullBackOff", "Back-off pulling image", events=("pull: 401 Unauthorized",)),
            ("deploy.yaml", 11, "imagePullSecrets", "service", "[stale]"),
        ),
    ],
    ids=lambda v: v.reason if isinstance(v, RolloutVerdict) else None,
)
def test_each_rollout_failure_names_its_line(files: Path, verdict: RolloutVerdict, expected: tuple) -> None:
    assert where(origin.for_rollout(verdict, configs(files))) == expected


def test_a_missing_image_names_the_environments_registry_in_deployer_yaml(files: Path) -> None:
    verdict = failed("ErrImagePull", "registry.team.test:5443/staging/web@sha256:ab: not found")
    found = origin.for_rollout(verdict, configs(files, None, env=True))
    assert where(found) == (
        "deployer.yaml",
        5,
        "environments.staging.registry.host",
        "environment",
        "registry.team.test:5443",
    )
    # a refusal without the service's own pull secrets: the environment's credentials source
    refused = origin.for_rollout(failed("ErrImagePull", "401 Unauthorized"), configs(files, None, env=True))
    assert where(refused)[2:] == (
        "environments.staging.registry.credentials",
        "environment",
        "$CI_USER/$CI_TOKEN",
    )
    assert where(refused)[:2] == ("deployer.yaml", 6)


def test_a_refused_pull_names_the_pull_credentials_when_the_environment_has_them(files: Path) -> None:
    deployer_yaml = files / "team" / "deployer.yaml"
    deployer_yaml.write_text(
        DEPLOYER_YAML.replace(
            "    cluster:",
            "      pullCredentials: {env: {user: PULL_USER, password: PULL_TOKEN}}\n    cluster:",
        )
    )
    refused = origin.for_rollout(failed("ErrImagePull", "403 Forbidden"), configs(files, None, env=True))
    assert where(refused) == (
        "deployer.yaml",
        8,
        "environments.staging.registry.pullCredentials",
        "environment",
        "$PULL_USER/$PULL_TOKEN",
    )


def test_the_built_in_target_is_named_as_a_default(files: Path) -> None:
    found = origin.for_rollout(failed("ErrImagePull", "manifest unknown"), configs(files, None))
    assert found is not None and (found.file, found.line, found.source) == (None, None, "default")
    assert found.yaml_path == "registry.host" and found.text == "127.0.0.1:5000 (built-in local target)"
    assert found.describe() == (
        "registry.host is 127.0.0.1:5000 (built-in local target) (deployer's built-in default): the image "
        "cannot be pulled from the registry this names"
    )


def test_without_deploy_yaml_the_readiness_path_is_the_built_in_default(files: Path) -> None:
    found = origin.for_rollout(failed("ReadinessProbeFailed", events=(READINESS_404,)), configs(files, None))
    assert where(found) == (None, None, "probes.readiness.path", "default", "/")
    assert found is not None and found.describe() == (
        "probes.readiness.path is / (deployer's built-in default): the readiness probe failed: "
        + READINESS_404
    )


def test_a_deadline_with_no_known_cause_names_nothing(files: Path) -> None:
    assert origin.for_rollout(failed("Timeout", "still waiting for: a node"), configs(files)) is None
    assert origin.for_rollout(failed("UnexpectedImage", "another image"), configs(files)) is None
    # a secret the service does not name (e.g. the chart's own) is not blamed on secretEnv
    assert (
        origin.for_rollout(failed("CreateContainerConfigError", 'secret "x" not found'), configs(files))
        is None
    )


def _check(name: str, kind: str, passed: bool, message: str = "", hint: str = "") -> CheckResult:
    return CheckResult(name, kind, passed, 0.1, message, hint=hint)


def test_smoke_failures_name_the_check_the_test_path_or_the_test_image(files: Path) -> None:
    c = configs(files)
    http = [_check("root", "http", True), _check("health", "http", False, "GET /healthz: status 404")]
    assert where(origin.for_smoke(http, c)) == (
        "deploy.yaml",
        15,
        "smoke.checks[1]",
        "service",
        "{name: health, path: /healthz}",
    )
    # helm test requests smoke.testPath, which defaults to the readiness probe's path
    helm = [_check("helm-test", "helm-test", False, "helm test failed")]
    assert where(origin.for_smoke(helm, c))[:4] == ("deploy.yaml", 3, "probes.readiness.path", "service")
    with_path = configs(files, DEPLOY + "  testPath: /ping\n")
    assert where(origin.for_smoke(helm, with_path))[2:] == ("smoke.testPath", "service", "/ping")
    no_bash = [_check("helm-test", "helm-test", False, "helm test failed: no bash", BASH_HINT)]
    assert where(origin.for_smoke(no_bash, c)) == (None, None, "smoke.testImage", "default", "(not set)")
    assert origin.for_smoke([_check("root", "http", True)], c) is None


def test_deploy_config_settings_say_which_layer_set_them(files: Path) -> None:
    c = configs(files).deploy
    assert c.setting(("port",)) == deploy_config.Setting(("port",), 3000, "service", c.file, 1, "port")
    memory = c.setting(("resources", "limits", "memory"))
    assert (memory.layer, memory.value, memory.line) == ("policy", "256Mi", 5)
    assert c.setting(("replicas",)) == deploy_config.Setting(
        ("replicas",), 1, "default", None, None, "replicas"
    )


def test_a_secret_name_named_as_the_origin_survives_redaction(files: Path) -> None:
    from deployer.reporting.redact import redact

    found = origin.for_rollout(failed("CreateContainerConfigError", 'secret "api" not found'), configs(files))
    assert found is not None and redact(found.describe()) == found.describe()
    assert "secretEnv.API_TOKEN.secret is api (set in the service's file)" in found.describe()


def test_a_value_from_the_environments_deploy_defaults_names_deployer_yaml(files: Path) -> None:
    from deployer.target.deploy import service_deploy

    deployer_yaml = files / "team" / "deployer.yaml"
    deployer_yaml.write_text(DEPLOYER_YAML + "    deploy:\n      resources: {limits: {memory: 48Mi}}\n")
    (files / "team" / "policy.yaml").write_text(DEPLOY_POLICY)
    text = deployer_yaml.read_text().replace(
        "    cluster:", "    policies: {deploy: policy.yaml}\n    cluster:"
    )
    deployer_yaml.write_text(text)
    target = resolve("staging", config=deployer_yaml, environ={})
    c = origin.Configs(service_deploy(target, files / "svc"), None, target)
    found = origin.for_rollout(failed("OOMKilled", "OOMKilled (exit code 137)"), c)
    # the policy's 256Mi is under the environment's 48Mi: the environment set what took effect
    assert found is not None
    assert (Path(found.file).name, found.yaml_path, found.source, found.text) == (
        "deployer.yaml",
        "environments.staging.deploy.resources.limits.memory",
        "environment",
        "48Mi",
    )
    assert deployer_yaml.read_text().splitlines()[found.line - 1].strip().startswith("resources:")
    assert found.line == 11  # the key's own line (flow style: the line of `resources: {limits: {memory`)
    # what the environment does not set still comes from the policy under it
    assert c.deploy.setting(("resources", "requests", "memory")).layer == "policy"
