"""Does the API server a kubeconfig points at answer at all? A TCP connect, without the Kubernetes client.

`deployer ship` asks this while it compiles, so a cluster that is down (or a kubeconfig that names no
usable cluster) stops the ship before it builds and pushes, not minutes later at the deploy stage. The
Kubernetes client costs about a second of CPU to import; reading the kubeconfig and one connect cost
milliseconds. Authentication and permissions are not checked here: the deploy stage and `deployer doctor`
do that with the real client.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import yaml

__all__ = ["DEFAULT_KUBECONFIG", "kubeconfig_path", "unreachable"]

DEFAULT_KUBECONFIG = "/var/lib/deployer/cluster/kubeconfig"
"""The local staging cluster's kubeconfig (written by `e2e/cluster up`)."""


def kubeconfig_path(kubeconfig: str | os.PathLike[str] | None = None) -> Path:
    """The kubeconfig deployer uses: the given one, else `$KUBECONFIG`, else the local staging cluster's."""
    return Path(kubeconfig or os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG)


def server(path: Path, context: str | None = None) -> str:
    """The API server URL of `context` (default: the current context) in the kubeconfig at `path`.

    Raises `ValueError` saying what is missing when the file names no such context or cluster.
    """
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"cannot read kubeconfig {path}: {e}") from e
    name = context or doc.get("current-context")
    if not name:
        raise ValueError(f"kubeconfig {path} has no current-context")
    ctx = next((c.get("context") or {} for c in doc.get("contexts") or [] if c.get("name") == name), None)
    if ctx is None:
        raise ValueError(f"kubeconfig {path} has no context {name!r}")
    cluster = next(
        (c.get("cluster") or {} for c in doc.get("clusters") or [] if c.get("name") == ctx.get("cluster")),
        None,
    )
    if not cluster or not cluster.get("server"):
        raise ValueError(f"kubeconfig {path}: context {name!r} names no cluster with a server")
    return str(cluster["server"])


def unreachable(
    kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None, *, timeout: float = 3.0
) -> str | None:
    """Why the API server cannot be reached (a missing or unusable kubeconfig, a refused or timed-out
    connect), or None when it accepts a TCP connection."""
    path = kubeconfig_path(kubeconfig)
    if not path.is_file():
        return f"kubeconfig {path} does not exist"
    try:
        url = server(path, context)
    except ValueError as e:
        return str(e)
    parts = urlsplit(url)
    if not parts.hostname:
        return f"kubeconfig {path}: the server {url!r} is not a URL"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as e:
        return f"the Kubernetes API server {url} does not answer: {e.strerror or e}"
    return None
