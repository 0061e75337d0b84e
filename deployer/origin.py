"""Which configuration line a failed rollout or smoke check most likely comes from (issue 14, item 7).

A rollout fails with a Kubernetes reason (`ReadinessProbeFailed`, `OOMKilled`, `CrashLoopBackOff`, ...)
but the user fixes a line of YAML. `for_rollout(verdict, configs)` and `for_smoke(results, configs)` map
the failure to the setting behind it and say where that setting's effective value was set: the service's
own file (blubber.yaml, deploy.yaml), an ops policy (policies/*.yaml, the environment's policy), the
environment (deployer.yaml) or a built-in default. The table, in the order it is tried:

    image cannot be pulled        → deploy.yaml `imagePullSecrets` (refused, and the service names some)
                                    else the environment's `registry` (deployer.yaml, or the built-in one)
    missing Secret or key         → the `secretEnv` entry naming it
    Unschedulable                 → `resources.requests` (`.cpu` / `.memory` when the scheduler says which)
    OOMKilled                     → `resources.limits.memory`
    read-only file system         → `readOnlyRootFilesystem`
    permission denied / no uid    → the variant's `runs.uid` (blubber.yaml, policy or built-in)
    liveness probe failed         → `probes.liveness.path` (or `port` when nothing listens)
    readiness never passing       → `probes.readiness.path` (or `port` when nothing listens)
    exits, cannot start command   → the variant's `entrypoint` in blubber.yaml
    failed helm test / HTTP check → `smoke.testImage`, `smoke.testPath` (else the readiness path),
                                    `smoke.checks[i]`

Pure: reads config files for their line numbers (as blubber does), never runs a process or calls the
cluster; None when nothing in the table fits (a deadline with no known cause).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from blubber.expand import includes_order
from blubber.source import Source, YamlPath, format_path, parse, read_file
from deployer.deploy_config import DeployConfig, Setting
from deployer.reporting import origin_line
from deployer.rollout.reasons import IMAGE_PULL_REASONS

if TYPE_CHECKING:
    from blubber import Config
    from deployer.rollout.diagnosis import RolloutVerdict
    from deployer.smoke import CheckResult
    from deployer.target import Target

__all__ = ["LAYERS", "Configs", "Origin", "for_rollout", "for_smoke"]

LAYERS = tuple(origin_line.WHOSE)
"""Where a setting's value came from, as the report's `origin.source` names it."""


@dataclass(frozen=True)
class Origin:
    """The configuration line most likely responsible for a failure.

    `file`/`line` are None for a built-in default; `yaml_path` is the setting's dotted path in that file
    (`probes.readiness.path`, `variants.production.entrypoint`, `environments.staging.registry.host`);
    `source` is one of LAYERS; `text` the value as it took effect (`/healthz`); `why` what in the
    failure points at it.
    """

    file: str | None
    line: int | None
    yaml_path: str
    source: str
    text: str
    why: str

    def describe(self) -> str:
        """One line, e.g. `deploy.yaml:7: probes.readiness.path is /never-ready (set in …): why`."""
        return origin_line.describe(self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        """The report's `origin` object (deployer/schema/report.schema.json)."""
        return asdict(self)


@dataclass(frozen=True)
class Configs:
    """What a ship was configured with: deploy.yaml (its layers inside), blubber.yaml (its policy named in
    it), the deployed variant, and the target (its environment's deployer.yaml, or the built-in one)."""

    deploy: DeployConfig
    blubber: Config | None = None
    target: Target | None = None

    @cached_property
    def blubber_policy(self) -> Source | None:
        policy = getattr(self.blubber, "policy", None) if self.blubber is not None else None
        file = getattr(policy, "file", None)
        return parse(read_file(file), file) if file else None

    @cached_property
    def environments(self) -> Source | None:
        env = self.target.environment if self.target is not None else None
        if env is None or env.file is None:
            return None
        return parse(read_file(env.file), env.file)


# --- rendering a value as the user wrote it -----------------------------------------------------------


def _render(value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    return str(value)


def _deploy(configs: Configs, path: YamlPath, why: str) -> Origin:
    setting: Setting = configs.deploy.setting(path)
    return Origin(setting.file, setting.line, setting.yaml_path, setting.layer, _render(setting.value), why)


def _blubber(configs: Configs, key: YamlPath, value: Any, why: str) -> Origin:
    """Where the deployed variant's `key` took its value: the variant, then its includes (last merged
    wins), the top level, the ops policy's defaults, else the compiler's built-in default."""
    config, variant = configs.blubber, configs.deploy.variant
    text = _render(value)
    if config is None:
        return Origin(None, None, format_path(key), "default", text, why)
    lines = config.source.lines
    for name in (variant, *reversed(includes_order(config, variant))):
        path = ("variants", name, *key)
        if path in lines:
            return Origin(config.file, lines[path], format_path(path), "service", text, why)
    if key in lines:
        return Origin(config.file, lines[key], format_path(key), "service", text, why)
    policy = configs.blubber_policy
    if policy is not None and ("defaults", *key) in policy.lines:
        path = ("defaults", *key)
        return Origin(policy.file, policy.lines[path], format_path(path), "policy", text, why)
    return Origin(None, None, format_path(key), "default", text, why)


def _registry(configs: Configs, key: str, why: str) -> Origin:
    target = configs.target
    if target is None:
        return Origin(None, None, f"registry.{key}", "default", "(unknown)", why)
    env, registry = target.environment, target.registry
    if key == "credentials" and registry.pull_credentials is not None:
        key = "pullCredentials"  # what the cluster pulls with, when deployer.yaml names a separate one
    value = registry.host if key == "host" else registry.pull_source.describe()
    source = configs.environments
    if source is None:
        return Origin(None, None, f"registry.{key}", "default", f"{value} (built-in {env.name} target)", why)
    path = ("environments", env.name, "registry", key)
    return Origin(source.file, source.line(path), format_path(path), "environment", value, why)


# --- the table -------------------------------------------------------------------------------------------

_DENIED = re.compile(r"unauthorized|authentication required|denied|forbidden|\b40[13]\b", re.IGNORECASE)
_MISSING_SECRET = re.compile(r'secret "?(?P<secret>[^"\s]+?)"? not found', re.IGNORECASE)
_MISSING_KEY = re.compile(r"couldn't find key (?P<key>\S+) in Secret (?:\S+/)?(?P<secret>\S+)", re.IGNORECASE)
_OOM = re.compile(r"OOMKilled|OOM-killed", re.IGNORECASE)
_READ_ONLY = re.compile(r"read-only file system|EROFS", re.IGNORECASE)
_PERMISSION = re.compile(r"permission denied|EACCES|operation not permitted|EPERM", re.IGNORECASE)
_NOT_LISTENING = re.compile(r"connection refused|connect: |no route to host|i/o timeout", re.IGNORECASE)
_STATUS = re.compile(r"statuscode: (\d+)", re.IGNORECASE)
_INSUFFICIENT = re.compile(r"Insufficient (cpu|memory)", re.IGNORECASE)
# the container could not start its command, or started it and it ended
_START = ("RunContainerError", "StartError", "ContainerCannotRun", "CreateContainerError")
_EXITS = ("CrashLoopBackOff", "Error", "Completed", "OOMKilled", *_START)


def _matching(lines: Iterable[str], pattern: re.Pattern[str]) -> str | None:
    return next((line for line in lines if pattern.search(line)), None)


def for_rollout(verdict: RolloutVerdict, configs: Configs) -> Origin | None:
    """The setting behind a failed rollout `verdict` (reason, message, log tail, events), or None."""
    reason = verdict.reason.removeprefix("Init:")
    message = verdict.message or ""
    events = list(verdict.warning_events)
    logs = list(verdict.log_tail)
    if reason in IMAGE_PULL_REASONS:
        return _pull(configs, f"{message} {' '.join(events)}")
    if reason == "CreateContainerConfigError":
        found = _secret(configs, message)
        if found is not None:
            return found
        if "non-numeric user" in message:
            return _runtime_user(configs, "the image's user is not numeric and the pod must not run as root")
    if reason == "Unschedulable":
        which = _INSUFFICIENT.search(message)
        path: YamlPath = ("resources", "requests", which[1].lower()) if which else ("resources", "requests")
        return _deploy(configs, path, f"no node can run the pod: {message}".rstrip(": "))
    # runc says "container init was OOM-killed" when the limit is too low even to start the command
    if reason == "OOMKilled" or _OOM.search(message):
        return _deploy(
            configs, ("resources", "limits", "memory"), "the container ran out of memory (OOMKilled)"
        )
    exited = reason in _EXITS or reason.startswith(("ExitCode:", "Signal:"))
    if exited:
        evidence = [message, *logs]
        read_only = _matching(evidence, _READ_ONLY)
        if read_only:
            return _deploy(configs, ("readOnlyRootFilesystem",), f"a write failed: {read_only.strip()}")
        denied = _matching(logs, _PERMISSION)
        if denied and reason not in _START:
            return _runtime_user(configs, f"the runtime user may not do this: {denied.strip()}")
    liveness = [e for e in events if "Liveness probe failed" in e]
    if exited and liveness:
        return _probe(configs, "liveness", liveness)
    if reason in ("ReadinessProbeFailed", "ProgressDeadlineExceeded", "Timeout"):
        readiness = [e for e in events if "Readiness probe failed" in e]
        if readiness or reason == "ReadinessProbeFailed":
            return _probe(configs, "readiness", readiness or [message])
        return None
    if exited:
        return _entrypoint(configs, reason, message)
    return None


def _pull(configs: Configs, text: str) -> Origin:
    deploy = configs.deploy
    if _DENIED.search(text):
        named = deploy.setting(("imagePullSecrets",))
        if named.layer != "default" and named.value:
            return _deploy(
                configs, ("imagePullSecrets",), "the registry refused the pull with the secrets this names"
            )
        return _registry(configs, "credentials", "the registry refused the cluster's pull")
    return _registry(configs, "host", "the image cannot be pulled from the registry this names")


def _secret(configs: Configs, message: str) -> Origin | None:
    key = _MISSING_KEY.search(message)
    secret = key["secret"] if key else (m["secret"] if (m := _MISSING_SECRET.search(message)) else None)
    if secret is None:
        return None
    for name, ref in configs.deploy.secret_env.items():
        if ref.secret == secret and (key is None or ref.key == key["key"]):
            field = "key" if key else "secret"
            why = (
                f"key {ref.key!r} is not in Secret {secret!r}" if key else f"Secret {secret!r} does not exist"
            )
            return _deploy(configs, ("secretEnv", name, field), why)
    return None


def _runtime_user(configs: Configs, why: str) -> Origin:
    uid = None
    if configs.blubber is not None:
        from blubber import runtime

        uid = runtime(configs.blubber, configs.deploy.variant).uid
    return _blubber(configs, ("runs", "uid"), uid, why)


def _entrypoint(configs: Configs, reason: str, message: str) -> Origin:
    command: Sequence[str] = ()
    if configs.blubber is not None:
        from blubber import runtime

        command = runtime(configs.blubber, configs.deploy.variant).entrypoint
    what = "could not start its command" if reason in _START else "exited"
    why = f"the container {what} ({reason}: {message})" if message else f"the container {what} ({reason})"
    return _blubber(configs, ("entrypoint",), list(command), why)


def _probe(configs: Configs, kind: str, failures: Sequence[str]) -> Origin:
    """The probe's `path` once any answer came back (a status code: something listens on the port), else
    its `port` when nothing ever answered. The first failures often come before the app listens
    ("connection refused" for a second or two, then 404 on a wrong path): an answer outweighs them."""
    answered = [line for line in failures if _STATUS.search(line)]
    if answered:
        return _deploy(configs, ("probes", kind, "path"), f"the {kind} probe failed: {answered[-1].strip()}")
    last = failures[-1].strip() if failures else ""
    if _NOT_LISTENING.search(last):
        why = f"nothing answered the {kind} probe on the port (a wrong port, or not listening yet): {last}"
        return _deploy(configs, ("port",), why)
    return _deploy(configs, ("probes", kind, "path"), f"the {kind} probe failed: {last}")


def for_smoke(results: Sequence[CheckResult], configs: Configs) -> Origin | None:
    """The setting behind the first failed smoke check of `results`, or None."""
    deploy = configs.deploy
    for result in results:
        if result.passed:
            continue
        if result.kind == "helm-test":
            if "testImage" in result.hint:
                return _deploy(configs, ("smoke", "testImage"), result.message)
            test_path = deploy.setting(("smoke", "testPath"))
            path: YamlPath = (
                ("smoke", "testPath") if test_path.value is not None else ("probes", "readiness", "path")
            )
            return _deploy(configs, path, f"the helm test pod's request failed: {result.message}")
        index = next((i for i, c in enumerate(deploy.smoke_checks) if c.name == result.name), None)
        if index is not None:
            return _deploy(configs, ("smoke", "checks", index), result.message)
    return None
