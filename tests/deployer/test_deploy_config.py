"""deploy.yaml loading: defaults, layering over policy, schema errors with file:line:path, enforcements."""

from __future__ import annotations

from pathlib import Path

import pytest

from blubber.errors import ConfigError, PolicyViolation
from deployer import deploy_config
from deployer.deploy_config import DeployPolicy, SecretRef, enforce, load, load_policy

NO_POLICY = DeployPolicy(defaults={}, enforcements={})


def service(tmp_path: Path, deploy_yaml: str | None, name: str = "node-hello") -> Path:
    root = tmp_path / name
    (root / ".pipeline").mkdir(parents=True)
    (root / ".pipeline" / "blubber.yaml").write_text("version: v4\n")
    if deploy_yaml is not None:
        (root / ".pipeline" / "deploy.yaml").write_text(deploy_yaml)
    return root


def test_service_without_deploy_yaml_gets_defaults(tmp_path: Path) -> None:
    config = load(service(tmp_path, None, name="Node_Hello"), NO_POLICY)
    assert config.file is None
    assert config.release == "node-hello"
    assert config.namespace == "node-hello"
    assert config.variant == "production"
    assert config.port == 8080
    assert config.replicas == 1
    assert config.readiness.enabled and config.readiness.path == "/"
    assert "limits" not in config.resources  # limits come from the ops policy
    assert config.helm_test is True
    assert config.smoke_checks == ()
    assert config.timeouts.progress_deadline == 120


def test_deploy_yaml_overrides_policy_defaults_key_by_key(tmp_path: Path) -> None:
    policy = DeployPolicy(
        defaults={"replicas": 3, "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}, enforcements={}
    )
    root = service(
        tmp_path,
        """
release: hello
namespace: staging
port: 3000
resources:
  limits: {memory: 128Mi}
env: {GREETING: hi, DEBUG: yes, WORKERS: 2}
probes:
  readiness: {path: /healthz, periodSeconds: 1}
smoke:
  checks:
    - {name: root, path: /, body: hello}
    - {path: /missing, status: 404}
timeouts: {progressDeadline: 30, rollout: 60}
""",
    )
    config = load(root, policy)
    assert (config.release, config.namespace, config.port, config.replicas) == ("hello", "staging", 3000, 3)
    assert config.resources["limits"] == {"cpu": "1", "memory": "128Mi"}
    assert dict(config.env) == {"DEBUG": "true", "GREETING": "hi", "WORKERS": "2"}
    assert config.readiness.path == "/healthz" and config.readiness.period_seconds == 1
    assert config.readiness.failure_threshold == 3  # the default under the override
    assert config.test_path == "/healthz"  # helm test follows the readiness path
    assert [(c.name, c.path, c.status, c.body) for c in config.smoke_checks] == [
        ("root", "/", 200, "hello"),
        ("http-2", "/missing", 404, None),
    ]
    assert (config.timeouts.progress_deadline, config.timeouts.rollout) == (30, 60)


@pytest.mark.parametrize(
    ("text", "line", "path", "words"),
    [
        ("port: 8080\nreplica: 2\n", 2, "replica", "unknown key 'replica'"),
        ("port: 80800\n", 1, "port", "80800"),
        ("probes:\n  readiness:\n    path: healthz\n", 3, "probes.readiness.path", "must match"),
        ("smoke:\n  checks:\n    - path: /\n      status: 2000\n", 4, "smoke.checks[0].status", "2000"),
        ("release: Node_Hello\n", 1, "release", "not valid"),
        ("env:\n  A: 1\n  B:\n", 3, "env.B", "None"),
    ],
)
def test_schema_errors_name_file_line_and_path(
    tmp_path: Path, text: str, line: int, path: str, words: str
) -> None:
    root = service(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(root, NO_POLICY)
    error = info.value
    assert error.file == str(root / ".pipeline" / "deploy.yaml")
    assert (error.line, error.path) == (line, path)
    assert words in error.message


def test_unknown_key_hint_lists_allowed_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(service(tmp_path, "probes:\n  readyness: {}\n"), NO_POLICY)
    assert info.value.hint == "allowed keys here: liveness, readiness"


def test_yaml_syntax_error_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid YAML") as info:
        load(service(tmp_path, "port: [8080\n"), NO_POLICY)
    assert info.value.line is not None
    with pytest.raises(ConfigError, match="must be a mapping"):
        load(service(tmp_path / "b", "- port\n"), NO_POLICY)


def test_duplicate_smoke_check_names_refused(tmp_path: Path) -> None:
    root = service(tmp_path, "smoke:\n  checks:\n    - {name: a, path: /}\n    - {name: a, path: /x}\n")
    with pytest.raises(ConfigError, match="duplicate smoke check name") as info:
        load(root, NO_POLICY)
    assert (info.value.line, info.value.path) == (4, "smoke.checks[1].name")


def test_rollout_deadline_shorter_than_progress_deadline_refused(tmp_path: Path) -> None:
    root = service(tmp_path, "timeouts:\n  progressDeadline: 200\n  rollout: 100\n")
    with pytest.raises(ConfigError, match="shorter than") as info:
        load(root, NO_POLICY)
    assert info.value.line == 1


def test_repository_policy_loads_and_validates() -> None:
    policy = load_policy()
    assert policy.file == str(deploy_config.DEFAULT_POLICY_FILE)
    assert policy.enforcements["runAsNonRoot"] is True
    assert policy.defaults["timeouts"]["rollout"] >= policy.defaults["timeouts"]["progressDeadline"]


def test_policy_file_errors_point_into_the_policy(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("enforcements: []\ndeploy:\n  enforcements:\n    maxReplica: 3\n")
    with pytest.raises(ConfigError) as info:
        load_policy(bad)
    assert (info.value.file, info.value.line, info.value.path) == (
        str(bad),
        4,
        "deploy.enforcements.maxReplica",
    )
    bad.write_text("deploy:\n  defaults:\n    namespace: x\n")
    with pytest.raises(ConfigError, match="cannot have a policy default"):
        load_policy(bad)
    bad.write_text("enforcements: []\n")  # a blubber-only policy file: no deploy rules
    assert load_policy(bad).enforcements == {}


def _enforce(config, **kw):  # type: ignore[no-untyped-def]
    args = {"uid": 900, "insecure": False, "image_repository": "127.0.0.1:5000/staging/x"} | kw
    enforce(config, load_policy(), **args)


def test_enforcements(tmp_path: Path) -> None:
    config = load(service(tmp_path, None), load_policy())
    _enforce(config)  # the defaults pass the repository's policy
    with pytest.raises(PolicyViolation, match="runs as root") as info:
        _enforce(config, uid=0)
    assert info.value.path == "variants.production.runs"
    assert "policies/deploy.yaml" in info.value.message  # names the rule that fired
    with pytest.raises(PolicyViolation, match="insecurely"):
        _enforce(config, insecure=True)
    with pytest.raises(PolicyViolation, match="not in the policy's allowed repositories"):
        _enforce(config, image_repository="docker.io/library/nginx")


def test_enforcements_point_at_deploy_yaml(tmp_path: Path) -> None:
    root = service(tmp_path, "replicas: 50\n")
    with pytest.raises(PolicyViolation, match="exceeds the policy maximum") as info:
        _enforce(load(root, load_policy()))
    assert (info.value.line, info.value.path) == (1, "replicas")
    root = service(tmp_path / "b", "probes:\n  readiness:\n    enabled: false\n")
    with pytest.raises(PolicyViolation, match="readiness probe is disabled") as info:
        _enforce(load(root, load_policy()))
    assert info.value.line == 3
    policy = DeployPolicy(defaults={}, enforcements={"requireLimits": ["cpu", "memory"]})
    root = service(tmp_path / "c", "resources:\n  limits: {cpu: 100m}\n")
    with pytest.raises(PolicyViolation, match="no memory limit") as info:
        enforce(load(root, policy), policy, uid=1, insecure=False, image_repository="r/x")
    assert (info.value.line, info.value.path) == (2, "resources.limits")
    root = service(tmp_path / "d", "resources:\n  limits: {cpu: 100m, memory: 1Gi}\n")
    enforce(load(root, policy), policy, uid=1, insecure=False, image_repository="r/x")


# --- smoke.testImage -------------------------------------------------------------------------------------

BOOKWORM = "127.0.0.1:5000/base/bookworm:12"


def test_test_image_is_optional_and_read(tmp_path: Path) -> None:
    assert load(service(tmp_path, None), NO_POLICY).test_image is None
    config = load(service(tmp_path / "b", f"smoke:\n  testImage: {BOOKWORM}\n"), NO_POLICY)
    assert config.test_image == BOOKWORM
    assert config.helm_test is True  # setting the image does not change whether the test runs


@pytest.mark.parametrize(
    "ref",
    [
        "bookworm",
        "bookworm:12",
        BOOKWORM,
        "localhost:5000/team/app_x:v1.2-rc.3",
        "registry.example.org/a/b-c/d__e@sha256:" + "0a" * 32,
        "127.0.0.1:5000/base/bookworm:12@sha256:" + "f" * 64,
    ],
)
def test_test_image_accepts_image_references(tmp_path: Path, ref: str) -> None:
    assert load(service(tmp_path, f"smoke:\n  testImage: '{ref}'\n"), NO_POLICY).test_image == ref


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("12", "12 is not of type 'string'"),
        ("[a, b]", "is not of type 'string'"),
        ("{image: x}", "is not of type 'string'"),
        ("true", "True is not of type 'string'"),
        ("''", "should be non-empty"),
        ("'http://127.0.0.1:5000/base/bookworm:12'", "is not an image reference"),
        ("'base/bookworm 12'", "is not an image reference"),
        ("'base/Bookworm:12'", "is not an image reference"),
        ("'base//bookworm'", "is not an image reference"),
        ("'bookworm:'", "is not an image reference"),
        ("'bookworm:12:13'", "is not an image reference"),
        ("'bookworm@sha256:abc'", "is not an image reference"),
    ],
)
def test_bad_test_image_names_file_line_and_path(tmp_path: Path, value: str, words: str) -> None:
    root = service(tmp_path, f"port: 8080\nsmoke:\n  helmTest: true\n  testImage: {value}\n")
    with pytest.raises(ConfigError) as info:
        load(root, NO_POLICY)
    error = info.value
    assert (error.file, error.line, error.path) == (
        str(root / ".pipeline" / "deploy.yaml"),
        4,
        "smoke.testImage",
    )
    assert words in error.message
    assert error.hint is not None and "127.0.0.1:5000/base/bookworm:12" in error.hint  # an example to copy
    assert error.exit_code == ConfigError.exit_code


def test_bad_test_image_in_policy_defaults_points_into_the_policy(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("deploy:\n  defaults:\n    smoke:\n      testImage: 'Not An Image'\n")
    with pytest.raises(ConfigError, match="is not an image reference") as info:
        load_policy(bad)
    assert (info.value.file, info.value.line, info.value.path) == (
        str(bad),
        4,
        "deploy.defaults.smoke.testImage",
    )


def test_policy_default_test_image_is_used_and_overridden(tmp_path: Path) -> None:
    policy = DeployPolicy(defaults={"smoke": {"testImage": BOOKWORM}}, enforcements={})
    assert load(service(tmp_path, "smoke:\n  testPath: /x\n"), policy).test_image == BOOKWORM
    own = load(service(tmp_path / "b", "smoke:\n  testImage: 127.0.0.1:5000/t/x:1\n"), policy)
    assert own.test_image == "127.0.0.1:5000/t/x:1"


def test_test_image_obeys_the_image_repository_rule(tmp_path: Path) -> None:
    root = service(tmp_path, "replicas: 1\nsmoke:\n  testImage: docker.io/library/bash:5\n")
    with pytest.raises(PolicyViolation, match="smoke.testImage 'docker.io/library/bash:5' is not in") as info:
        _enforce(load(root, load_policy()))
    assert (info.value.file, info.value.line, info.value.path) == (
        str(root / ".pipeline" / "deploy.yaml"),
        3,
        "smoke.testImage",
    )
    assert "127.0.0.1:5000/" in (info.value.hint or "")
    assert "imageRepositories" in info.value.message  # names the rule that fired
    allowed = service(tmp_path / "b", f"smoke:\n  testImage: {BOOKWORM}\n")
    _enforce(load(allowed, load_policy()))  # the base image is allowed


def test_test_image_from_policy_defaults_is_located_in_the_policy(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(
        "deploy:\n  defaults:\n    smoke:\n      testImage: quay.io/x/y:1\n"
        "  enforcements:\n    imageRepositories: ['127.0.0.1:5000/']\n"
    )
    policy = load_policy(policy_file)
    config = load(service(tmp_path, "replicas: 1\n"), policy)
    with pytest.raises(PolicyViolation, match="smoke.testImage") as info:
        enforce(config, policy, uid=1, insecure=False, image_repository="127.0.0.1:5000/staging/x")
    assert (info.value.file, info.value.line, info.value.path) == (
        str(policy_file),
        4,
        "deploy.defaults.smoke.testImage",
    )


# --- secretEnv --------------------------------------------------------------------------------------------


def test_secret_env_is_read_as_names_only(tmp_path: Path) -> None:
    root = service(
        tmp_path,
        "env: {PLAIN: x}\n"
        "secretEnv:\n"
        "  DATABASE_URL: {secret: db, key: url}\n"
        "  API_TOKEN:\n"
        "    secret: api.tokens\n"
        "    key: token.txt\n",
    )
    config = load(root, NO_POLICY)
    assert dict(config.secret_env) == {
        "API_TOKEN": SecretRef(secret="api.tokens", key="token.txt"),
        "DATABASE_URL": SecretRef(secret="db", key="url"),
    }
    assert list(config.secret_env) == ["API_TOKEN", "DATABASE_URL"]  # sorted, like env
    assert dict(config.env) == {"PLAIN": "x"}
    assert load(service(tmp_path / "none", None), NO_POLICY).secret_env == {}


def test_secret_env_from_policy_defaults_is_layered_under_the_service(tmp_path: Path) -> None:
    policy = DeployPolicy(
        defaults={"secretEnv": {"SENTRY_DSN": {"secret": "sentry", "key": "dsn"}}}, enforcements={}
    )
    config = load(service(tmp_path, "secretEnv: {DB: {secret: db, key: url}}\n"), policy)
    assert dict(config.secret_env) == {"DB": SecretRef("db", "url"), "SENTRY_DSN": SecretRef("sentry", "dsn")}


@pytest.mark.parametrize(
    ("text", "line", "path", "words", "hint"),
    [
        (
            "port: 8080\nsecretEnv:\n  DB_URL: {secret: db}\n",
            3,
            "secretEnv.DB_URL",
            "'key' is a required property",
            "{secret: <Secret name>, key: <key in it>}",
        ),
        (
            "secretEnv:\n  DB_URL: postgres://u:p@db/x\n",
            2,
            "secretEnv.DB_URL",
            "is not of type 'object'",
            "deployer never reads its value",
        ),
        (
            "secretEnv:\n  A: {secret: a, key: b}\n  1DB: {secret: db, key: url}\n",
            3,
            "secretEnv.1DB",
            "'1DB' is not valid here",
            "environment variable name",
        ),
        (
            "secretEnv:\n  DB:\n    secret: Db_Main\n    key: url\n",
            3,
            "secretEnv.DB.secret",
            "'Db_Main' is not valid here",
            "name of a Kubernetes Secret",
        ),
        (
            "secretEnv:\n  DB:\n    secret: db\n    key: a/b\n",
            4,
            "secretEnv.DB.key",
            "'a/b' is not valid here",
            "a key in the Secret's data",
        ),
        (
            "secretEnv:\n  DB: {secret: db, key: url, value: hunter2}\n",
            2,
            "secretEnv.DB.value",
            "unknown key 'value'",
            "allowed keys here: key, secret",
        ),
        (
            "secretEnv:\n  DB: {secret: db, key: 7}\n",
            2,
            "secretEnv.DB.key",
            "7 is not of type 'string'",
            "a key in the Secret's data",
        ),
    ],
)
def test_secret_env_errors_name_file_line_path_and_hint(
    tmp_path: Path, text: str, line: int, path: str, words: str, hint: str
) -> None:
    root = service(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(root, NO_POLICY)
    error = info.value
    assert (error.file, error.line, error.path) == (str(root / ".pipeline" / "deploy.yaml"), line, path)
    assert words in error.message
    assert error.hint is not None and hint in error.hint


def test_bad_env_name_points_at_the_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(service(tmp_path, "env:\n  GOOD: 1\n  BAD-NAME: 2\n"), NO_POLICY)
    assert (info.value.line, info.value.path) == (3, "env.BAD-NAME")


def test_a_name_in_both_env_and_secret_env_is_refused(tmp_path: Path) -> None:
    root = service(
        tmp_path,
        "env:\n  DB_URL: sqlite:///tmp/x\n"
        "secretEnv:\n  OTHER: {secret: o, key: k}\n  DB_URL: {secret: db, key: url}\n",
    )
    file = str(root / ".pipeline" / "deploy.yaml")
    with pytest.raises(ConfigError) as info:
        load(root, NO_POLICY)
    error = info.value
    assert (error.file, error.line, error.path) == (file, 5, "secretEnv.DB_URL")
    assert error.message == f"DB_URL is set in both env and secretEnv (also at {file}:2: env.DB_URL)"
    assert error.hint is not None and "give DB_URL one source" in error.hint and "'db'" in error.hint


def test_a_clash_with_policy_defaults_points_at_the_service_and_names_the_policy(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(
        "deploy:\n  defaults:\n    env: {LOG_LEVEL: info}\n"
        "    secretEnv:\n      SENTRY_DSN: {secret: s, key: dsn}\n"
    )
    policy = load_policy(policy_file)
    # secretEnv in the service, env from the policy
    root = service(tmp_path / "a", "secretEnv:\n  LOG_LEVEL: {secret: log, key: level}\n")
    with pytest.raises(ConfigError) as info:
        load(root, policy)
    assert (info.value.file, info.value.line, info.value.path) == (
        str(root / ".pipeline" / "deploy.yaml"),
        2,
        "secretEnv.LOG_LEVEL",
    )
    assert f"also at {policy_file}:3: deploy.defaults.env.LOG_LEVEL" in info.value.message
    # env in the service, secretEnv from the policy: the service's env entry is the one to change
    root = service(tmp_path / "b", "port: 8080\nenv: {SENTRY_DSN: none}\n")
    with pytest.raises(ConfigError) as info:
        load(root, policy)
    assert (info.value.line, info.value.path) == (2, "env.SENTRY_DSN")
    assert f"also at {policy_file}:5: deploy.defaults.secretEnv.SENTRY_DSN" in info.value.message


def test_smoke_on_failure_rolls_back_by_default_and_keep_is_read(tmp_path: Path) -> None:
    assert load(service(tmp_path, None), NO_POLICY).smoke_on_failure == "rollback"
    kept = load(service(tmp_path / "b", "smoke:\n  onFailure: keep\n"), NO_POLICY)
    assert kept.smoke_on_failure == "keep"
    with pytest.raises(ConfigError) as info:
        load(service(tmp_path / "c", "smoke:\n  helmTest: false\n  onFailure: ignore\n"), NO_POLICY)
    assert (info.value.line, info.value.path) == (3, "smoke.onFailure")
