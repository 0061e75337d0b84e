"""Read an environment's registry credentials from the source deployer.yaml names (issue 11).

The source (`deployer.target.CredentialsSource`) says where: two environment variables, a docker
config.json, or a KEY=value file. The value is read here and nowhere else, registered with
`deployer.reporting.redact` the moment it is read, and carried in a `Credentials` whose repr masks it.
A source that cannot give credentials is exit 19 naming the source (variable names, path), never a value.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from pathlib import Path

from deployer.errors import EnvironmentMissing
from deployer.reporting import redact
from deployer.target import CredentialsKind, CredentialsSource
from deployer.tools.registry_api import Credentials

__all__ = ["parse_env_file", "read"]


def read(
    source: CredentialsSource, host: str, environ: Mapping[str, str] | None = None
) -> Credentials | None:
    """The credentials `source` gives for registry `host`; None for an anonymous source."""
    environ = os.environ if environ is None else environ
    if source.kind is CredentialsKind.NONE:
        return None
    if source.kind is CredentialsKind.ENV:
        user, password = environ.get(source.user_var or ""), environ.get(source.password_var or "")
        if not user or not password:
            pairs = ((source.user_var, user), (source.password_var, password))
            unset = [f"${name}" for name, value in pairs if not value]
            raise EnvironmentMissing(
                f"no registry credentials for {host}: {', '.join(unset)} not set",
                hint=f"export {' and '.join(unset)} (the environment's credentials: {source.describe()})",
            )
        return _found(user, password, source)
    if source.kind is CredentialsKind.FILE:
        assert source.path is not None
        values = _env_file(source)
        user, password = values.get(source.user_key), values.get(source.password_key)
        if not user or not password:
            raise EnvironmentMissing(
                f"{source.path} lacks {source.user_key} or {source.password_key}",
                hint=f"write both to {source.path} (KEY=value lines, mode 600)",
            )
        return _found(user, password, source)
    return _docker_config(source, host, environ)


def _found(user: str, password: str, source: CredentialsSource) -> Credentials:
    redact.register(password, user=user)
    return Credentials(user, password, source.describe())


def _env_file(source: CredentialsSource) -> dict[str, str]:
    assert source.path is not None
    try:
        text = source.path.read_text()
    except OSError as err:
        raise EnvironmentMissing(
            f"no registry credentials: {source.path} cannot be read ({err.strerror})",
            hint="create it, or point the environment's credentials at another source in deployer.yaml",
        ) from err
    return parse_env_file(text)


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=value lines (comments and blank lines skipped, one level of quotes removed)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("'\"")
    return values


def _docker_config(source: CredentialsSource, host: str, environ: Mapping[str, str]) -> Credentials:
    path = source.path or Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
    try:
        auths = json.loads(path.read_text()).get("auths") or {}
    except (OSError, ValueError) as err:
        raise EnvironmentMissing(
            f"no registry credentials for {host}: docker config {path} cannot be read",
            hint=f"`docker login {host}` writes it, or name another credentials source in deployer.yaml",
        ) from err
    entry = auths.get(host) or auths.get(f"https://{host}") or {}
    try:
        user, _, password = base64.b64decode(entry.get("auth", "")).decode().partition(":")
    except ValueError:
        user, password = "", ""
    if not user or not password:
        raise EnvironmentMissing(
            f"docker config {path} has no credentials for {host} (credential helpers are not read)",
            hint=f"`docker login {host}` without a credential helper, or use env/file credentials",
        )
    return _found(user, password, source)
