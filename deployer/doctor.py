"""`deployer doctor`: is this machine ready to ship? One finding per check, each failure with a fix.

Checks, in the order a ship needs them: the docker engine answers; the registry answers and the
credentials in `credentials.env` log in; the pinned helm runs; the kubeconfig loads; the cluster answers;
and the kubeconfig's user may do, in the target namespace, everything a ship does (asked with
SelfSubjectAccessReview, so the answer is the API server's own RBAC decision).

The outside world is reached only through `Probes` (a process runner, one HTTP GET, a cluster client),
so unit tests fake that seam and a cluster-marked test runs the real thing. Never prints: `run` renders
the findings through click at the end.
"""

from __future__ import annotations

import base64
import os
import stat
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import click

from deployer.errors import EnvironmentMissing, ExitCode, UserError
from deployer.permissions import SHIP_RULES
from deployer.reporting import redact
from deployer.tools import command, docker, registry

__all__ = [
    "CREDENTIALS",
    "SHIP_PERMISSIONS",
    "ClusterProbe",
    "DoctorConfig",
    "Finding",
    "Probes",
    "check_all",
    "run",
]

# The local stack's credentials file, as every other command reads it.
CREDENTIALS = registry.CREDENTIALS_FILE

# (api group, resource, verbs) a ship needs in its namespace: the Role CI is given, the list the ship's own
# pre-check asks for, so doctor and ship cannot disagree about it.
SHIP_PERMISSIONS = SHIP_RULES


@dataclass(frozen=True)
class Finding:
    """One check's verdict. `fix` says what to run or change when it failed."""

    check: str
    ok: bool
    message: str
    fix: str | None = None


@dataclass(frozen=True)
class DoctorConfig:
    environment: str = "staging"
    kubeconfig: Path | None = None
    namespace: str = "default"
    color: bool = False
    credentials: Path = CREDENTIALS
    target: Any = None  # the resolved deployer.target.Target a ship with the same --env would use

    @classmethod
    def of(cls, target: Any, *, namespace: str = "default", color: bool = False) -> DoctorConfig:
        """Doctor for exactly what a ship with the same --env talks to: its registry and cluster."""
        return cls(
            environment=target.name,
            kubeconfig=target.kubeconfig,
            namespace=namespace,
            color=color,
            credentials=target.registry.credentials.path or CREDENTIALS,
            target=target,
        )

    @property
    def registry(self) -> str:
        """The registry's host[:port]: the target's (without one, the built-in local stack's)."""
        if self.target is not None:
            return str(self.target.registry.host)
        from deployer.target import builtin_registry

        return builtin_registry().host

    @property
    def context(self) -> str | None:
        """The environment's context. Without a resolved target: `staging` is the local cluster's
        kubeconfig as it is; any other name is a context in it."""
        if self.target is not None:
            return self.target.context  # type: ignore[no-any-return]
        return None if self.environment == "staging" else self.environment


class ClusterProbe(Protocol):
    """What doctor asks a cluster."""

    def server_version(self) -> str: ...

    def namespace_exists(self, namespace: str) -> bool: ...

    def can_i(self, verb: str, group: str, resource: str, namespace: str | None) -> bool: ...


# (argv, env, timeout) -> (exit code, combined output)
RunFn = Callable[[Sequence[str], Mapping[str, str], float], tuple[int, str]]
# (url, headers, timeout) -> HTTP status; raises OSError when nothing answers
HttpFn = Callable[[str, Mapping[str, str], float], int]
# (kubeconfig, context) -> ClusterProbe; raises UserError when the kubeconfig is unusable
ClusterFn = Callable[[Path | None, str | None], ClusterProbe]


def _run(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> tuple[int, str]:
    """A probe through the one command runner: (exit code, output); 127 when the program is missing, 124
    when it does not answer in time (the shell's codes for both)."""
    try:
        done = command.run(
            os.path.basename(argv[0]), argv, env=env, timeout=timeout, check=False, merge_stderr=True
        )
    except EnvironmentMissing:
        return 127, f"{argv[0]}: not found"
    except command.ToolFailed as e:  # with check=False only a timeout fails
        if e.timed_out:
            return 124, f"{argv[0]}: no answer within {timeout:.0f}s"
        return e.exit_code or 1, str(e)
    return done.exit_code, done.stdout.strip()


def _http(url: str, headers: Mapping[str, str], timeout: float) -> int:
    request = urllib.request.Request(url, headers=dict(headers), method="GET")
    # No proxies: the registry is on loopback and a proxy from the environment would only get in the way.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except urllib.error.URLError as e:
        raise OSError(str(e.reason)) from e


class _KubeProbe:
    """The real cluster probe, on the kubernetes client through deployer.tools.kube."""

    def __init__(self, kubeconfig: Path | None, context: str | None) -> None:
        from deployer.tools.kube import load_api

        self._api = load_api(kubeconfig, context)
        self.host = self._api.configuration.host

    def server_version(self) -> str:
        from kubernetes import client

        from deployer.tools.kube import call

        info = call("read the server version", client.VersionApi(self._api).get_code)
        return f"Kubernetes {info.git_version} at {self.host}"

    def namespace_exists(self, namespace: str) -> bool:
        from kubernetes import client

        from deployer.tools.kube import KubeNotFound, call

        try:
            call(f"read namespace {namespace}", client.CoreV1Api(self._api).read_namespace, namespace)
        except KubeNotFound:
            return False
        return True

    def can_i(self, verb: str, group: str, resource: str, namespace: str | None) -> bool:
        from deployer.tools.kube import can_i

        return can_i(self._api, verb, resource, namespace, group=group)


@dataclass(frozen=True)
class Probes:
    """The seam to the outside world (fake it in unit tests)."""

    run: RunFn = _run
    http: HttpFn = _http
    cluster: ClusterFn = _KubeProbe


# --- the checks -----------------------------------------------------------------------------------------


def check_docker(config: DoctorConfig, probes: Probes) -> Finding:
    host = docker.engine_host()
    argv = [docker.DOCKER_BIN, "version", "--format", "{{.Server.Version}}"]
    code, out = probes.run(argv, docker.docker_env(), 20.0)
    if code == 0 and out:
        return Finding("docker", True, f"engine {out.splitlines()[-1]} answers on {host}")
    if code == 127:
        return Finding(
            "docker",
            False,
            f"{docker.DOCKER_BIN} is not installed",
            fix="scripts/stack up (installs docker.io)",
        )
    return Finding(
        "docker",
        False,
        f"the docker engine does not answer on {host}: {out.splitlines()[-1] if out else 'no output'}",
        fix="start it with: scripts/stack up",
    )


def _read_credentials(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("'\"")
    return values


def check_registry(config: DoctorConfig, probes: Probes) -> list[Finding]:
    """Reachable, credentials file present and private, and the credentials log in."""
    if config.target is not None and not config.target.builtin:
        return _check_environment_registry(config)
    url = f"http://{config.registry}/v2/"
    try:
        anonymous = probes.http(url, {}, 10.0)
    except OSError as e:
        return [
            Finding(
                "registry",
                False,
                f"nothing answers at {url}: {e}",
                fix="start it with: scripts/stack up",
            )
        ]
    findings = [Finding("registry", True, f"{config.registry} answers (anonymous GET /v2/ → {anonymous})")]
    if anonymous == 200:
        findings.append(
            Finding(
                "registry auth",
                False,
                f"{config.registry} accepts anonymous requests; pushes are not authenticated",
                fix="run the registry with htpasswd auth (scripts/stack up does)",
            )
        )
    path = config.credentials
    try:
        mode = path.stat().st_mode
        creds = _read_credentials(path)
    except OSError as e:
        findings.append(
            Finding(
                "registry login",
                False,
                f"cannot read the registry credentials {path}: {e.strerror or e}",
                fix="scripts/stack up writes them (REGISTRY_USER=..., REGISTRY_PASSWORD=...)",
            )
        )
        return findings
    user, password = creds.get("REGISTRY_USER", ""), creds.get("REGISTRY_PASSWORD", "")
    redact.register(password, user=user)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        findings.append(
            Finding(
                "registry credentials",
                False,
                f"{path} is readable by others (mode {stat.S_IMODE(mode):o})",
                fix=f"chmod 600 {path}",
            )
        )
    if not user or not password:
        findings.append(
            Finding(
                "registry login",
                False,
                f"{path} lacks REGISTRY_USER or REGISTRY_PASSWORD",
                fix="scripts/stack up writes them",
            )
        )
        return findings
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    redact.register(token)
    try:
        status = probes.http(url, {"Authorization": f"Basic {token}"}, 10.0)
    except OSError as e:
        status, why = 0, str(e)
    else:
        why = f"GET /v2/ → {status}"
    if status == 200:
        findings.append(Finding("registry login", True, f"user {user!r} logs in to {config.registry}"))
    else:
        findings.append(
            Finding(
                "registry login",
                False,
                f"the credentials in {path} do not log in to {config.registry} ({why})",
                fix="re-create them with: scripts/stack down && scripts/stack up",
            )
        )
    return findings


def _check_environment_registry(config: DoctorConfig) -> list[Finding]:
    """A deployer.yaml registry, through the client a ship uses (its TLS trust, token auth, credentials
    source), so doctor and ship cannot disagree about it."""
    where = config.target.registry
    try:
        registry.ping(where.host, retry=registry.Retry(attempts=1))
    except UserError as e:
        return [Finding("registry login", False, e.message, fix=e.hint)]
    source = where.credentials.describe()
    return [Finding("registry login", True, f"{where.host} answers over {where.base_url} with {source}")]


def check_helm(config: DoctorConfig, probes: Probes) -> Finding:
    from deployer.tools.helm import HELM_BIN

    code, out = probes.run([HELM_BIN, "version", "--short"], {}, 20.0)
    if code == 0:
        return Finding("helm", True, f"{HELM_BIN} {out.splitlines()[-1] if out else ''}".rstrip())
    if code == 127:
        return Finding("helm", False, f"helm is not installed at {HELM_BIN}", fix="build: e2e/tools.sh")
    return Finding("helm", False, f"{HELM_BIN} does not run: {out[-300:]}", fix="rebuild: e2e/tools.sh")


def check_cluster(config: DoctorConfig, probes: Probes) -> list[Finding]:
    """kubeconfig loads → API answers → namespace → RBAC for every permission a ship needs."""
    where = f"context {config.context!r}" if config.context else "the staging kubeconfig"
    try:
        cluster = probes.cluster(config.kubeconfig, config.context)
    except UserError as e:
        return [Finding("kubeconfig", False, e.message, fix=e.hint)]
    findings = [Finding("kubeconfig", True, f"{where} loads")]
    try:
        findings.append(Finding("cluster", True, cluster.server_version()))
        ns = config.namespace
        if cluster.namespace_exists(ns):
            findings.append(Finding("namespace", True, f"namespace {ns!r} exists"))
        elif cluster.can_i("create", "", "namespaces", None):
            message = f"namespace {ns!r} does not exist yet; ship will create it"
            findings.append(Finding("namespace", True, message))
        else:
            findings.append(
                Finding(
                    "namespace",
                    False,
                    f"namespace {ns!r} does not exist and this user may not create it",
                    fix=f"kubectl create namespace {ns}  (as a cluster admin)",
                )
            )
        findings += _rbac_findings(cluster, ns)
    except UserError as e:
        findings.append(Finding("cluster", False, e.message, fix=e.hint or "check with: e2e/cluster status"))
    return findings


def _rbac_findings(cluster: ClusterProbe, namespace: str) -> list[Finding]:
    missing: list[str] = []
    for group, resource, verbs in SHIP_PERMISSIONS:
        denied = [v for v in verbs if not cluster.can_i(v, group, resource, namespace)]
        if denied:
            missing.append(f"{'/'.join(denied)} {resource}{f' ({group})' if group else ''}")
    if not missing:
        return [Finding("rbac", True, f"may do everything a ship does in namespace {namespace!r}")]
    return [
        Finding(
            "rbac",
            False,
            f"in namespace {namespace!r} this user may not: " + "; ".join(missing),
            fix=(
                f"kubectl --namespace {namespace} create rolebinding deployer --clusterrole=admin "
                "--user=<the kubeconfig's user>  (admin covers leases; edit does not)"
            ),
        )
    ]


def check_all(config: DoctorConfig, probes: Probes | None = None) -> list[Finding]:
    """Every check, in order; a failing check never stops the others."""
    probes = probes or Probes()
    return [
        check_docker(config, probes),
        *check_registry(config, probes),
        check_helm(config, probes),
        *check_cluster(config, probes),
    ]


def render(findings: Sequence[Finding], *, color: bool) -> list[str]:
    """Plain lines, one per finding, `fix:` under each failure (colour only added by `run`)."""
    width = max((len(f.check) for f in findings), default=0)
    lines: list[str] = []
    for f in findings:
        lines.append(f"{'ok  ' if f.ok else 'FAIL'}  {f.check:<{width}}  {f.message}")
        if not f.ok and f.fix:
            lines.append(f"      {'':<{width}}  fix: {f.fix}")
    failed = sum(1 for f in findings if not f.ok)
    lines.append("doctor: all checks passed" if not failed else f"doctor: {failed} problem(s) found")
    return lines


def run(config: DoctorConfig, probes: Probes | None = None, echo: Callable[[str], Any] | None = None) -> int:
    """Run the checks, print the findings, return 0 or ExitCode.ENVIRONMENT."""
    findings = check_all(config, probes)
    out = echo or (lambda line: click.echo(line, color=config.color))
    for line in render(findings, color=config.color):
        text = redact.redact(line)
        if config.color and text.startswith("FAIL"):
            text = click.style("FAIL", fg="red", bold=True) + text[4:]
        elif config.color and text.startswith("ok  "):
            text = click.style("ok", fg="green") + text[2:]
        out(text)
    return int(ExitCode.OK) if all(f.ok for f in findings) else int(ExitCode.ENVIRONMENT)
