"""What an environment is: a registry, a cluster, the policies that apply there, deploy defaults (issue 11).

Plain frozen values, built by `deployer.target.loader` from deployer.yaml or taken from
`deployer.target.builtin`. They hold where secrets come from (variable names, file paths), never a
secret: nothing here reads a credential, runs a process or opens a connection.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployer import policies as shipped_policies

__all__ = [
    "Cluster",
    "CredentialsKind",
    "CredentialsSource",
    "Environment",
    "NamespaceRule",
    "Policies",
    "Registry",
    "Tls",
    "TlsMode",
]


class TlsMode(enum.Enum):
    SYSTEM = "system"  # verify against the system trust store
    CA_FILE = "ca-file"  # verify against this CA bundle only
    INSECURE = "insecure"  # plain HTTP: only when the config says so


@dataclass(frozen=True)
class Tls:
    """How the registry's certificate is checked (docker: `ca_file` in certs.d; helm: --ca-file)."""

    mode: TlsMode = TlsMode.SYSTEM
    ca_file: Path | None = None

    @property
    def is_plain_http(self) -> bool:
        return self.mode is TlsMode.INSECURE

    @property
    def scheme(self) -> str:
        return "http" if self.is_plain_http else "https"


class CredentialsKind(enum.Enum):
    ENV = "env"  # two environment variable names (user, password or token)
    DOCKER_CONFIG = "dockerConfig"  # a docker config.json (its auths / credential helpers)
    FILE = "file"  # KEY=value lines, such as scripts/stack's credentials.env
    NONE = "none"  # anonymous


@dataclass(frozen=True)
class CredentialsSource:
    """Where the registry credentials come from. Only names and paths: `describe()` is safe to print."""

    kind: CredentialsKind
    user_var: str | None = None  # ENV
    password_var: str | None = None  # ENV
    path: Path | None = None  # DOCKER_CONFIG (None: $DOCKER_CONFIG/config.json or ~/.docker), FILE
    user_key: str = "REGISTRY_USER"  # FILE
    password_key: str = "REGISTRY_PASSWORD"  # FILE

    def describe(self) -> str:
        """The source as error messages name it (never a value): `$CI_USER/$CI_TOKEN`, a file path, …"""
        if self.kind is CredentialsKind.ENV:
            return f"${self.user_var}/${self.password_var}"
        if self.kind is CredentialsKind.DOCKER_CONFIG:
            return (
                f"docker config {self.path}" if self.path else "docker config ($DOCKER_CONFIG or ~/.docker)"
            )
        if self.kind is CredentialsKind.FILE:
            return f"{self.path} ({self.user_key}, {self.password_key})"
        return "anonymous"


@dataclass(frozen=True)
class Registry:
    """Where images and charts go: `<host>/<namespace>/<service>` and the OCI chart repository."""

    host: str
    namespace: str
    charts: str  # oci://…
    tls: Tls
    credentials: CredentialsSource  # deployer's own: push, tags, delete
    # what the cluster pulls with (its imagePullSecret), e.g. a read-only user; None: `credentials`
    pull_credentials: CredentialsSource | None = None

    @property
    def pull_source(self) -> CredentialsSource:
        """Where the cluster's pull credentials come from."""
        return self.pull_credentials or self.credentials

    def repository(self, service: str) -> str:
        """`registry.example.org/staging/node-hello`."""
        return f"{self.host}/{self.namespace}/{service}"

    @property
    def base_url(self) -> str:
        """The registry API's root, `https://host[:port]` (plain `http://` only for an insecure one)."""
        return f"{self.tls.scheme}://{self.host}"


@dataclass(frozen=True)
class NamespaceRule:
    """Which Kubernetes namespace a release goes to: a name, or a template of {release} and {service}."""

    template: str = "{release}"
    service_may_choose: bool = True  # a deploy.yaml `namespace:` wins over the template

    def namespace(self, release: str, service: str, chosen: str | None = None) -> str:
        if chosen and self.service_may_choose:
            return chosen
        return self.template.replace("{release}", release).replace("{service}", service)


@dataclass(frozen=True)
class Cluster:
    """The cluster identity: a kubeconfig (None: $KUBECONFIG or ~/.kube/config) and a context in it."""

    kubeconfig: Path | None
    context: str | None  # None: the kubeconfig's current-context
    namespace: NamespaceRule = field(default_factory=NamespaceRule)


@dataclass(frozen=True)
class Policies:
    """Ops policy files that apply in the environment; None: the project's own default."""

    blubber: Path | None = None
    deploy: Path | None = None

    def blubber_file(self) -> Path:
        """The Blubber policy a build applies here: the environment's, else the one deployer ships."""
        return self.blubber or shipped_policies.BLUBBER


@dataclass(frozen=True)
class Environment:
    """One named target. `file`/`line` say where it was defined (None for the built-in one)."""

    name: str
    registry: Registry
    cluster: Cluster
    policies: Policies = field(default_factory=Policies)
    deploy_defaults: Mapping[str, Any] = field(default_factory=dict)
    file: str | None = None
    line: int | None = None
    # the line of each key under `deploy:` (its path below `deploy`), so a failure names the exact line
    deploy_lines: Mapping[tuple[str, ...], int] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        if self.file is None:
            return "built in (the local stack: scripts/stack, e2e/cluster)"
        return f"{self.file}:{self.line}" if self.line else self.file
