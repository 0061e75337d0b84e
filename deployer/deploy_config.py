"""The per-service deploy config, `<service>/.pipeline/deploy.yaml`, and the `deploy:` section of ops policy.

Every key of deploy.yaml is optional, so a service with only blubber.yaml ships. Values are layered, later
wins key by key: built-in defaults ← the policy's `deploy.defaults` ← the service's deploy.yaml. Both files
are read with blubber's line-keeping loader (`blubber.source`) and checked against a JSON Schema
(`deployer/schema/deploy.schema.json`), so a mistake is a `ConfigError` with file, line and YAML path.

Policy enforcements (`deploy.enforcements`) are checked by `enforce()` once the runtime user and image are
known (deployer/chart.py calls it); a violation is a `PolicyViolation`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blubber.errors import ConfigError, PolicyViolation
from blubber.source import Source, YamlPath, format_path, parse, read_file
from deployer import policies, schema_check

if TYPE_CHECKING:
    import jsonschema

__all__ = [
    "BUILTIN_DEFAULTS",
    "DEFAULT_POLICY_FILE",
    "DeployConfig",
    "DeployPolicy",
    "Probe",
    "SecretRef",
    "Setting",
    "SmokeCheck",
    "Timeouts",
    "enforce",
    "load",
    "load_policy",
    "release_name",
]

_SCHEMA_DIR = Path(__file__).parent / "schema"
DEFAULT_POLICY_FILE = policies.DEPLOY  # package data (the repository's policies/)
"""The repository's deploy policy; used when the caller names none."""

DEPLOY_FILE = Path(".pipeline") / "deploy.yaml"

# The values a service gets when neither policy nor deploy.yaml says otherwise. Conservative: one replica,
# readiness and liveness on "/", small requests, deadlines short enough for CI.
BUILTIN_DEFAULTS: dict[str, Any] = {
    "variant": "production",
    "port": 8080,
    "replicas": 1,
    "probes": {
        "readiness": {
            "enabled": True,
            "path": "/",
            "initialDelaySeconds": 0,
            # every second: the first probe often comes before the server listens, and the next one
            # is when a rollout is seen to be ready (a staging pod answers "/" cheaply)
            "periodSeconds": 1,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "liveness": {
            "enabled": True,
            "path": "/",
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
    },
    # Limits come from the ops policy (policies/deploy.yaml), which may also require them.
    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
    "env": {},
    # NAME → {secret, key}: read by the kubelet from a Secret in the release's namespace, never by deployer
    "secretEnv": {},
    "readOnlyRootFilesystem": False,
    "service": {"port": 80},
    "imagePullSecrets": [],
    "smoke": {"helmTest": True, "checks": []},
    "timeouts": {"progressDeadline": 120, "rollout": 300, "helm": 300, "smoke": 30},
}


@dataclass(frozen=True)
class Probe:
    """An HTTP GET probe on the app port."""

    enabled: bool
    path: str
    initial_delay_seconds: int
    period_seconds: int
    timeout_seconds: int
    failure_threshold: int


@dataclass(frozen=True)
class SmokeCheck:
    """One HTTP request made after a healthy rollout; passes on `status` and, if set, `body` in the body."""

    name: str
    path: str
    status: int = 200
    body: str | None = None


@dataclass(frozen=True)
class SecretRef:
    """Where an environment variable's value comes from: `key` in the Secret `secret` of the release's
    namespace. Only the names; deployer never reads the value (the kubelet does, when it starts the pod)."""

    secret: str
    key: str


@dataclass(frozen=True)
class Timeouts:
    """Deadlines in seconds."""

    progress_deadline: int  # the Deployment's progressDeadlineSeconds
    rollout: int  # the whole rollout watch
    helm: int  # one helm command
    smoke: int  # one smoke check


@dataclass(frozen=True)
class Setting:
    """Where one effective value came from: the last layer that set it (deploy.yaml over the policy's
    `deploy.defaults` over the built-in defaults). `file`/`line` are None for a built-in default, and
    `value` is None when no layer sets it (e.g. a memory limit nobody asked for)."""

    path: YamlPath
    value: Any
    # "service" (deploy.yaml) | "policy" (the ops policy's deploy.defaults) | "environment" (deployer.yaml's
    # `deploy:` defaults, when the policy layer carries them) | "default"
    layer: str
    file: str | None
    line: int | None
    yaml_path: str = ""  # where in `file`: `deploy.defaults.replicas` in a policy file, say


def _dig(data: object, path: YamlPath) -> tuple[bool, Any]:
    for key in path:
        in_list = isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data)
        if in_list or (isinstance(data, Mapping) and key in data):
            data = data[key]  # type: ignore[index]
        else:
            return False, None
    return True, data


@dataclass(frozen=True)
class DeployConfig:
    """A service's resolved deploy settings (defaults filled in). `file` is None when the service has none."""

    service: str
    release: str
    namespace: str
    variant: str
    port: int
    replicas: int
    readiness: Probe
    liveness: Probe
    resources: Mapping[str, Mapping[str, str]]
    env: Mapping[str, str]
    secret_env: Mapping[str, SecretRef]
    read_only_root_filesystem: bool
    service_port: int
    image_pull_secrets: tuple[str, ...]
    helm_test: bool
    test_path: str
    test_image: str | None  # the helm test pod's image; None: the service's own image
    smoke_checks: tuple[SmokeCheck, ...]
    timeouts: Timeouts
    # what a ship does when the smoke checks fail: roll back to the last good revision, or keep it
    smoke_on_failure: str = "rollback"
    file: str | None = None
    source: Source | None = field(default=None, repr=False, compare=False)
    policy: DeployPolicy | None = field(default=None, repr=False, compare=False)  # the layer under it

    def setting(self, path: YamlPath) -> Setting:
        """Which layer set `path` (e.g. `("probes", "readiness", "path")`), with its file and line: the
        ship's failure trace (deployer/origin.py) names it as the line to fix."""
        if self.source is not None:
            found, value = _dig(self.source.data, path)
            if found:
                return Setting(path, value, "service", self.file, self.source.line(path), format_path(path))
        policy = self.policy
        if policy is not None:
            found, value = _dig(policy.defaults, path)
            if found:
                # the policy's `where` knows whether the environment's deploy defaults set it
                at = policy.where(("defaults", *path))
                layer = "environment" if str(at["path"]).startswith("environments.") else "policy"
                return Setting(path, value, layer, at["file"], at["line"], at["path"])
        _, value = _dig(BUILTIN_DEFAULTS, path)
        return Setting(path, value, "default", None, None, format_path(path))

    def where(self, path: YamlPath) -> dict[str, Any]:
        """`file`, `line`, `path` keyword arguments for an error about `path` in deploy.yaml."""
        line = self.source.line(path) if self.source is not None else None
        return {"file": self.file, "line": line, "path": format_path(path) or None}


@dataclass(frozen=True)
class DeployPolicy:
    """The `deploy:` section of an ops policy file."""

    defaults: Mapping[str, Any]
    enforcements: Mapping[str, Any]
    file: str | None = None
    source: Source | None = field(default=None, repr=False, compare=False)

    def where(self, path: YamlPath) -> dict[str, Any]:
        line = self.source.line(("deploy", *path)) if self.source is not None else None
        return {"file": self.file, "line": line, "path": format_path(("deploy", *path))}


def _error_path(error: jsonschema.ValidationError, prefix: YamlPath) -> YamlPath:
    path: YamlPath = (*prefix, *error.absolute_path)
    if "propertyNames" in error.schema_path and isinstance(error.instance, str):
        path = (*path, error.instance)  # a bad key: point at the key, not at its mapping
    return path


def _check_schema(source: Source, data: object, name: str, prefix: YamlPath = ()) -> None:
    """Raise a ConfigError for the first (deepest-located, then document-order) schema error."""
    errors = sorted(
        schema_check.errors(_SCHEMA_DIR / name, data),
        key=lambda e: (source.line(_error_path(e, prefix)) or 0, -len(_error_path(e, prefix))),
    )
    if not errors:
        return
    error = errors[0]
    path = _error_path(error, prefix)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        if extra:  # point at the unknown key itself, not at its parent mapping
            path = (*path, str(extra[0]))
    raise source.error(path, _describe(error), hint=_hint(error))


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown key {extra[0]!r}" if extra else error.message
    if error.validator == "pattern":
        return f"{error.instance!r} is not valid here (must match {error.validator_value})"
    return error.message


def _hint(error: jsonschema.ValidationError) -> str | None:
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"allowed keys here: {allowed}"
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    return description


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of mappings; lists and scalars in `override` replace those in `base`."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


_NOT_DNS = re.compile(r"[^a-z0-9-]+")

# An image reference as docker and containerd parse it: [host[:port]/]path[:tag][@sha256:digest].
_HOST = (
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]+)?"
)
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REFERENCE = re.compile(
    rf"^(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(?:@sha256:[a-f0-9]{64})?$"
)
"""What `smoke.testImage` must look like."""

# Keys whose value is an image reference: checked here, because a JSON Schema pattern would put the whole
# regular expression into the error message.
_IMAGE_KEYS: tuple[YamlPath, ...] = (("smoke", "testImage"),)


def _check_image_references(source: Source, data: Mapping[str, Any], prefix: YamlPath = ()) -> None:
    """Raise a ConfigError (file, line, YAML path) for a value of `_IMAGE_KEYS` that is no image reference."""
    for keys in _IMAGE_KEYS:
        value: Any = data
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        if isinstance(value, str) and (len(value) > 255 or not _IMAGE_REFERENCE.match(value)):
            raise source.error(
                (*prefix, *keys),
                f"{value!r} is not an image reference",
                hint="write [registry/]repository[:tag][@sha256:digest] in lower case, without spaces or a "
                "scheme, e.g. 127.0.0.1:5000/base/bookworm:12",
            )


def release_name(service_dir: str | Path) -> str:
    """The default release name for a service directory: its name as a DNS label (≤ 53 chars for helm)."""
    name = _NOT_DNS.sub("-", Path(service_dir).resolve().name.lower()).strip("-")[:53].strip("-")
    if not name:
        raise ConfigError(
            f"cannot derive a release name from directory {str(service_dir)!r}",
            hint="set `release:` in .pipeline/deploy.yaml",
        )
    return name


def load_policy(path: str | Path | None = None) -> DeployPolicy:
    """Read the `deploy:` section of the policy file `path` (default: policies/deploy.yaml).

    A file without a `deploy:` section yields an empty policy (other tools' policy files may share the file).
    """
    file = Path(path) if path is not None else DEFAULT_POLICY_FILE
    source = parse(read_file(file), str(file))
    data = source.data if source.data is not None else {}
    if not isinstance(data, dict):
        raise source.error((), "a policy file must be a mapping")
    section = data.get("deploy")
    if section is None:
        return DeployPolicy(defaults={}, enforcements={}, file=str(file), source=source)
    _check_schema(source, section, "deploy-policy.schema.json", ("deploy",))
    defaults = section.get("defaults") or {}
    _check_schema(source, defaults, "deploy.schema.json", ("deploy", "defaults"))
    _check_image_references(source, defaults, ("deploy", "defaults"))
    for key in ("release", "namespace"):
        if key in defaults:
            raise source.error(
                ("deploy", "defaults", key), f"{key} cannot have a policy default", hint="set it per service"
            )
    return DeployPolicy(
        defaults=defaults, enforcements=section.get("enforcements") or {}, file=str(file), source=source
    )


def load(service_dir: str | Path, policy: DeployPolicy | None = None) -> DeployConfig:
    """Read `<service_dir>/.pipeline/deploy.yaml` (if any) over the policy and built-in defaults.

    Raises ConfigError (file:line, YAML path, hint) for unreadable or invalid files.
    """
    service_dir = Path(service_dir)
    policy = policy if policy is not None else load_policy()
    path = service_dir / DEPLOY_FILE
    source: Source | None = None
    data: dict[str, Any] = {}
    if path.exists():
        source = parse(read_file(path), str(path))
        if source.data is not None:
            if not isinstance(source.data, dict):
                raise source.error((), "deploy.yaml must be a mapping of settings")
            data = source.data
        _check_schema(source, data, "deploy.schema.json")
        _check_image_references(source, data)
    merged = _merge(_merge(BUILTIN_DEFAULTS, policy.defaults), data)
    _check_env_clash(merged, data, source, policy)
    return replace(_resolve(service_dir, merged, str(path) if source else None, source), policy=policy)


def _check_env_clash(
    merged: Mapping[str, Any], data: Mapping[str, Any], source: Source | None, policy: DeployPolicy
) -> None:
    """Refuse a name set in both `env` and `secretEnv` (after layering): which value the pod should get is
    ambiguous, and a plain value silently replacing a secret (or the reverse) is a likely mistake.

    The error points at the deploy.yaml entry (`secretEnv` first, else `env`), or into the policy's
    defaults when both come from there, and names where the other one is set.
    """
    clash = sorted(set(merged["env"]) & set(merged["secretEnv"]))
    if not clash:
        return
    name = clash[0]

    def in_service(key: str) -> bool:
        return source is not None and name in (data.get(key) or {})

    def where(key: str) -> dict[str, Any]:
        if source is not None and in_service(key):
            return {"file": source.file, "line": source.line((key, name)), "path": format_path((key, name))}
        return policy.where(("defaults", key, name))

    # deploy.yaml's secretEnv entry, else its env entry (secretEnv from the policy), else the policy's
    first, second = (
        ("env", "secretEnv") if in_service("env") and not in_service("secretEnv") else ("secretEnv", "env")
    )
    here, other = where(first), where(second)
    other_text = f"{other['file']}:{other['line']}: {other['path']}" if other["file"] else other["path"]
    ref = merged["secretEnv"][name]
    raise ConfigError(
        f"{name} is set in both env and secretEnv (also at {other_text})",
        hint=f"give {name} one source: keep secretEnv (key {ref.get('key')!r} of Secret "
        f"{ref.get('secret')!r}) and remove it from env, or the other way round",
        **here,
    )


def _probe(raw: Mapping[str, Any]) -> Probe:
    return Probe(
        enabled=bool(raw["enabled"]),
        path=str(raw["path"]),
        initial_delay_seconds=int(raw["initialDelaySeconds"]),
        period_seconds=int(raw["periodSeconds"]),
        timeout_seconds=int(raw["timeoutSeconds"]),
        failure_threshold=int(raw["failureThreshold"]),
    )


def _env_value(value: object) -> str:
    # YAML 1.1 turns `yes` into True; the container sees the text the user most likely meant.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _resolve(service_dir: Path, m: dict[str, Any], file: str | None, source: Source | None) -> DeployConfig:
    release = m.get("release") or release_name(service_dir)
    checks = []
    seen: set[str] = set()
    for index, raw in enumerate(m["smoke"].get("checks") or []):
        name = raw.get("name") or f"http-{index + 1}"
        if name in seen:
            where = source.line(("smoke", "checks", index)) if source else None
            raise ConfigError(
                f"duplicate smoke check name {name!r}",
                file=file,
                line=where,
                path=format_path(("smoke", "checks", index, "name")),
                hint="give each check a distinct `name:`; it names the check in reports and JUnit",
            )
        seen.add(name)
        checks.append(
            SmokeCheck(name=name, path=raw["path"], status=int(raw.get("status", 200)), body=raw.get("body"))
        )
    t = m["timeouts"]
    timeouts = Timeouts(
        progress_deadline=int(t["progressDeadline"]),
        rollout=int(t["rollout"]),
        helm=int(t["helm"]),
        smoke=int(t["smoke"]),
    )
    if timeouts.rollout < timeouts.progress_deadline:
        line = source.line(("timeouts",)) if source else None
        raise ConfigError(
            f"timeouts.rollout ({timeouts.rollout}s) is shorter than timeouts.progressDeadline "
            f"({timeouts.progress_deadline}s)",
            file=file,
            line=line,
            path="timeouts",
            hint="the watcher would stop before Kubernetes reports ProgressDeadlineExceeded; raise rollout",
        )
    readiness = _probe(m["probes"]["readiness"])
    return DeployConfig(
        service=service_dir.resolve().name,
        release=release,
        namespace=m.get("namespace") or release,
        variant=str(m["variant"]),
        port=int(m["port"]),
        replicas=int(m["replicas"]),
        readiness=readiness,
        liveness=_probe(m["probes"]["liveness"]),
        resources={
            kind: {k: str(v) for k, v in sorted(q.items())} for kind, q in sorted(m["resources"].items())
        },
        env={k: _env_value(v) for k, v in sorted(m["env"].items())},
        secret_env={
            str(k): SecretRef(secret=str(v["secret"]), key=str(v["key"]))
            for k, v in sorted(m["secretEnv"].items())
        },
        read_only_root_filesystem=bool(m["readOnlyRootFilesystem"]),
        service_port=int(m["service"]["port"]),
        image_pull_secrets=tuple(m["imagePullSecrets"]),
        helm_test=bool(m["smoke"].get("helmTest", True)),
        test_path=str(m["smoke"].get("testPath") or readiness.path),
        test_image=m["smoke"].get("testImage") or None,
        smoke_checks=tuple(checks),
        timeouts=timeouts,
        smoke_on_failure=str(m["smoke"].get("onFailure", "rollback")),
        file=file,
        source=source,
    )


def enforce(
    config: DeployConfig,
    policy: DeployPolicy,
    *,
    uid: int,
    insecure: bool,
    image_repository: str,
    blubber_file: str | None = None,
) -> None:
    """Check the policy's enforcements against what would be deployed; raise PolicyViolation on the first.

    `uid` and `insecure` are the deployed variant's runtime user (from blubber), `image_repository` the
    repository the pods would pull from.
    """
    rules = policy.enforcements
    variant_runs = ("variants", config.variant, "runs")

    def violation(message: str, hint: str, rule: str, where: dict[str, Any]) -> PolicyViolation:
        rule_at = policy.where(("enforcements", rule))
        source = (
            f" (policy {rule_at['file']}:{rule_at['line']}: {rule_at['path']})" if rule_at["file"] else ""
        )
        return PolicyViolation(message + source, hint=hint, **where)

    if rules.get("runAsNonRoot") and uid == 0:
        raise violation(
            f"variant {config.variant!r} runs as root (uid 0); policy requires a non-root runtime user",
            "set `runs.uid` (and `runs.as`) to a non-zero user in blubber.yaml",
            "runAsNonRoot",
            {"file": blubber_file, "line": None, "path": format_path(variant_runs)},
        )
    if rules.get("forbidInsecure") and insecure:
        raise violation(
            f"variant {config.variant!r} sets runs.insecurely; policy forbids it for deployed variants",
            "remove `runs.insecurely` from the deployed variant (keep it for test variants only)",
            "forbidInsecure",
            {"file": blubber_file, "line": None, "path": format_path((*variant_runs, "insecurely"))},
        )
    limits = config.resources.get("limits", {})
    for resource in rules.get("requireLimits") or []:
        if resource not in limits:
            raise violation(
                f"no {resource} limit set; policy requires resource limits",
                f"set resources.limits.{resource} in .pipeline/deploy.yaml",
                "requireLimits",
                config.where(("resources", "limits")),
            )
    if rules.get("requireReadinessProbe") and not config.readiness.enabled:
        raise violation(
            "the readiness probe is disabled; policy requires one (rollouts are judged by readiness)",
            "remove `probes.readiness.enabled: false` from .pipeline/deploy.yaml",
            "requireReadinessProbe",
            config.where(("probes", "readiness", "enabled")),
        )
    max_replicas = rules.get("maxReplicas")
    if max_replicas is not None and config.replicas > max_replicas:
        raise violation(
            f"replicas {config.replicas} exceeds the policy maximum of {max_replicas}",
            f"set replicas to at most {max_replicas}",
            "maxReplicas",
            config.where(("replicas",)),
        )
    allowed = rules.get("imageRepositories")
    if allowed and not any(image_repository.startswith(prefix) for prefix in allowed):
        raise violation(
            f"image repository {image_repository!r} is not in the policy's allowed repositories",
            "push to one of: " + ", ".join(allowed),
            "imageRepositories",
            {"file": None, "line": None, "path": None},
        )
    # The helm test pod runs in the cluster too: its image obeys the same rule.
    if allowed and config.test_image and not any(config.test_image.startswith(p) for p in allowed):
        key = ("smoke", "testImage")
        set_here = config.source is not None and key in config.source.lines
        raise violation(
            f"smoke.testImage {config.test_image!r} is not in the policy's allowed repositories",
            "use an image from one of: " + ", ".join(allowed) + " (e.g. the base image)",
            "imageRepositories",
            config.where(key) if set_here else policy.where(("defaults", *key)),
        )
