"""Environments: where a ship goes (registry, cluster, policies, deploy defaults); deployer.yaml, issue 11.

Pure: reads deployer.yaml and nothing else; never a process, the network, or a credential's value.
"""

from __future__ import annotations

from .builtin import LOCAL, LOCAL_NAME
from .loader import CONFIG_FILE, Environments, UnknownEnvironment, find, load
from .model import (
    Cluster,
    CredentialsKind,
    CredentialsSource,
    Environment,
    NamespaceRule,
    Policies,
    Registry,
    Tls,
    TlsMode,
)
from .resolve import Target, builtin_registry, environments, resolve
from .show import describe, render

__all__ = [
    "CONFIG_FILE",
    "LOCAL",
    "LOCAL_NAME",
    "Cluster",
    "CredentialsKind",
    "CredentialsSource",
    "Environment",
    "Environments",
    "NamespaceRule",
    "Policies",
    "Registry",
    "Tls",
    "Target",
    "TlsMode",
    "UnknownEnvironment",
    "builtin_registry",
    "describe",
    "environments",
    "find",
    "load",
    "render",
    "resolve",
]
