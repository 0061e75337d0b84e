"""The image registry: the credentials for it, logging in, and asking it for digests.

Which registry is always the caller's to say (the resolved `deployer.target.Target`'s host): nothing
here decides where images go.

Credentials come from $DEPLOYER_REGISTRY_USER / $DEPLOYER_REGISTRY_PASSWORD, else from the
credentials file `scripts/stack up` generates (REGISTRY_USER=..., REGISTRY_PASSWORD=..., mode 600).
The password is registered with `deployer.reporting.redact` the moment it is read, goes to docker on stdin,
and is never printed.

A registry that does not answer is retried a bounded number of times with exponential backoff, then
reported as `EnvironmentMissing` with how to start it. A push is retried by `PUSH_RETRY` (6 attempts,
waiting 1, 2, 4, 8, 8 s: 23 s of waiting), each retry announced through `Retry.call`'s `on_retry`.
Wrong credentials are `RegistryAuthFailed`.
The HTTP API is spoken directly (urllib) for the read-only questions (is it up, which tags does a
repository have, which digest does a tag have, does a manifest exist) and for deleting a manifest by
digest (`deployer prune`); logins and pushes go through docker.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from deployer.errors import EnvironmentMissing
from deployer.reporting import redact
from deployer.tools import docker
from deployer.tools.command import ToolFailed
from deployer.tools.registry_api import Credentials, RegistryAuthFailed, RegistryClient, RegistryDown
from deployer.tools.registry_api import _next_page as _next_page

__all__ = [
    "CREDENTIALS_FILE",
    "PUSH_RETRY",
    "Credentials",
    "RegistryAuthFailed",
    "Retry",
    "credentials",
    "delete_manifest",
    "digest",
    "login",
    "ping",
    "tags",
    "use",
]

CREDENTIALS_FILE = Path(
    os.environ.get("DEPLOYER_REGISTRY_CREDENTIALS", "/var/lib/deployer/registry/credentials.env")
)

START_HINT = "start the registry with `scripts/stack up`"

_MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


# host → (its environment's `deployer.target.Registry`, the client once made). Filled by `use()`, once per
# command, from the one resolved `deployer.target.Target`: a registry named by deployer.yaml is spoken to
# with its environment's TLS trust and credentials source; the local stack's keeps the plain-HTTP path.
_ENVIRONMENTS: dict[str, list[Any]] = {}


def use(target: Any) -> None:
    """Route every call for `target`'s registry host through its environment (TLS, token auth, its
    credentials source). The built-in local environment needs nothing: it is what the defaults are."""
    if not target.builtin:
        _ENVIRONMENTS[target.registry.host] = [target.registry, None]


def _environment_down(err: Exception) -> bool:
    return isinstance(err, RegistryDown)


def _client(host: str) -> RegistryClient | None:
    entry = _ENVIRONMENTS.get(host)
    if entry is None:
        return None
    if entry[1] is None:  # credentials are read on first use: `env show` and --help never read them
        from deployer.tools import credentials as source

        entry[1] = RegistryClient(entry[0], source.read(entry[0].credentials, host))
    return entry[1]


def credentials(path: Path | None = None, host: str | None = None) -> Credentials:
    """The registry credentials. For a `host` whose environment `use` named: that environment's source
    (anonymous: user and password empty). Otherwise the local stack's: environment first, then the
    credentials file. Registers the password with `deployer.reporting.redact`. Raises
    `EnvironmentMissing` when there are none."""
    client = _client(host) if host else None
    if client is not None:
        return client.creds or Credentials("", "", "anonymous")
    user, password = os.environ.get("DEPLOYER_REGISTRY_USER"), os.environ.get("DEPLOYER_REGISTRY_PASSWORD")
    if user and password:
        redact.register(password, user=user)
        return Credentials(user, password, "$DEPLOYER_REGISTRY_USER/$DEPLOYER_REGISTRY_PASSWORD")
    path = path or CREDENTIALS_FILE
    try:
        text = path.read_text()
    except OSError as err:
        raise EnvironmentMissing(
            f"no registry credentials: {path} cannot be read ({err.strerror})",
            hint="`scripts/stack up` generates them; or set DEPLOYER_REGISTRY_USER and "
            "DEPLOYER_REGISTRY_PASSWORD",
        ) from err
    from deployer.tools.credentials import parse_env_file

    values = parse_env_file(text)
    if not values.get("REGISTRY_USER") or not values.get("REGISTRY_PASSWORD"):
        raise EnvironmentMissing(
            f"{path} lacks REGISTRY_USER or REGISTRY_PASSWORD",
            hint="remove it and run `scripts/stack up` to generate new credentials",
        )
    redact.register(values["REGISTRY_PASSWORD"], user=values["REGISTRY_USER"])
    return Credentials(values["REGISTRY_USER"], values["REGISTRY_PASSWORD"], str(path))


T = TypeVar("T")


@dataclass(frozen=True)
class Retry:
    """Bounded retries with exponential backoff: `attempts` tries, waiting `first_delay`, then twice as
    long each time, at most `max_delay`."""

    attempts: int = 5
    first_delay: float = 0.5
    max_delay: float = 8.0

    def delays(self) -> list[float]:
        """The waits between attempts (one fewer than attempts)."""
        return [min(self.first_delay * 2**i, self.max_delay) for i in range(max(self.attempts - 1, 0))]

    def bound(self) -> float:
        """Seconds spent waiting between attempts when every attempt fails (the attempts' own time aside)."""
        return sum(self.delays())

    def call(
        self,
        fn: Callable[[], T],
        retry_on: Callable[[Exception], bool],
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[int, float, Exception], None] | None = None,
    ) -> T:
        """`fn()`, retried while it raises an exception `retry_on` accepts; the last one propagates.

        `on_retry(attempt, delay, error)` is called before each wait, so a caller can show that attempt
        `attempt` (1-based) failed and when the next one starts.
        """
        for attempt, delay in enumerate([*self.delays(), None], start=1):
            try:
                return fn()
            except Exception as err:
                if delay is None or not retry_on(err):
                    raise
                if on_retry is not None:
                    on_retry(attempt, delay, err)
                sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


DEFAULT_RETRY = Retry()

PUSH_RETRY = Retry(attempts=6, first_delay=1.0, max_delay=8.0)
"""`docker push` while the registry does not answer: 6 attempts, 23 s of waits between them. A registry
that comes back within that (a restart) is ridden out; one that does not fails the push (exit 14), before
anything is deployed. Each attempt also has its own timeout (`deployer.build.PUSH_TIMEOUT`)."""


def _is_down(err: Exception) -> bool:
    if isinstance(err, urllib.error.HTTPError):
        return err.code >= 500
    return isinstance(err, (urllib.error.URLError, ConnectionError, TimeoutError))


def _request(
    method: str, url: str, creds: Credentials | None, accept: str | None = None, timeout: float = 10
) -> Any:
    request = urllib.request.Request(url, method=method)
    if creds is not None:
        token = base64.b64encode(f"{creds.user}:{creds.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    if accept:
        request.add_header("Accept", accept)
    # No proxies: the registry is on loopback; a proxy from the environment would only get in the way.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return opener.open(request, timeout=timeout)


def ping(registry: str, creds: Credentials | None = None, retry: Retry = DEFAULT_RETRY) -> None:
    """Wait (bounded, with backoff) until the registry answers `/v2/`; check `creds` when given.

    Raises `EnvironmentMissing` when it never answers, `RegistryAuthFailed` when it rejects `creds`.
    """
    client = _client(registry)
    if client is not None:
        retry.call(client.ping, _environment_down)
        return

    def once() -> None:
        try:
            with _request("GET", f"http://{registry}/v2/", creds):
                return
        except urllib.error.HTTPError as err:
            if err.code == 401 and creds is None:
                return  # up, and asking for auth as it should
            if err.code == 401:
                raise _auth_failed(registry, creds) from err
            raise

    try:
        retry.call(once, _is_down)
    except RegistryAuthFailed:
        raise
    except Exception as err:
        total = sum(retry.delays())
        raise EnvironmentMissing(
            f"the registry at {registry} does not answer after {retry.attempts} attempts over {total:.1f} s: "
            f"{_reason(err)}",
            hint=START_HINT,
        ) from err


def _reason(err: Exception) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code}"
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    return str(err)


def _auth_failed(registry: str, creds: Credentials | None) -> RegistryAuthFailed:
    source = creds.source if creds else "no credentials"
    user = creds.user if creds else "?"
    return RegistryAuthFailed(
        f"the registry at {registry} rejected the credentials for user {user!r} (from {source})",
        hint="check DEPLOYER_REGISTRY_USER/DEPLOYER_REGISTRY_PASSWORD, or the credentials file that "
        "`scripts/stack up` wrote",
    )


def login(registry: str, creds: Credentials | None = None, retry: Retry = DEFAULT_RETRY) -> Credentials:
    """Make docker able to pull from and push to `registry`: wait for it (bounded), check the
    credentials over HTTP, then `docker login` (password on stdin). Returns the credentials used."""
    creds = creds or credentials(host=registry)
    ping(registry, creds, retry)
    if not creds.user:  # an anonymous environment: nothing to log in with
        return creds
    try:
        retry.call(
            lambda: docker.login(registry, creds.user, creds.password),
            lambda err: isinstance(err, ToolFailed) and "connection refused" in err.stderr_tail.lower(),
        )
    except ToolFailed as err:
        if "unauthorized" in err.stderr_tail.lower() or "401" in err.stderr_tail:
            raise _auth_failed(registry, creds) from err
        raise EnvironmentMissing(
            f"docker login to {registry} failed: {err.stderr_tail.strip()[-300:]}", hint=START_HINT
        ) from err
    return creds


def digest(
    repository: str,
    tag: str,
    *,
    registry: str,
    creds: Credentials | None = None,
    retry: Retry = DEFAULT_RETRY,
) -> str | None:
    """The manifest digest the registry has for `repository:tag`, or None when there is no such tag."""
    client = _client(registry)
    if client is not None:
        return retry.call(lambda: client.digest(repository, tag), _environment_down)
    creds = creds or credentials()

    def once() -> str | None:
        try:
            url = f"http://{registry}/v2/{repository}/manifests/{tag}"
            with _request("HEAD", url, creds, _MANIFEST_TYPES) as r:
                return r.headers.get("Docker-Content-Digest")
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            if err.code == 401:
                raise _auth_failed(registry, creds) from err
            raise

    return _retried(registry, retry, once)


def _retried(registry: str, retry: Retry, fn: Callable[[], T]) -> T:
    """`fn()`, tried again while the registry is down; `EnvironmentMissing` when it never answers."""
    try:
        return retry.call(fn, _is_down)
    except RegistryAuthFailed:
        raise
    except Exception as err:
        raise EnvironmentMissing(
            f"the registry at {registry} does not answer: {_reason(err)}", hint=START_HINT
        ) from err


def delete_manifest(
    repository: str, manifest_digest: str, *, registry: str, creds: Credentials | None = None
) -> bool:
    """Delete a manifest (and so every tag pointing at it). True when deleted, False when not there."""
    client = _client(registry)
    if client is not None:
        return client.delete_manifest(repository, manifest_digest)
    creds = creds or credentials()
    try:
        with _request("DELETE", f"http://{registry}/v2/{repository}/manifests/{manifest_digest}", creds):
            return True
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return False
        raise


def tags(
    repository: str,
    *,
    registry: str,
    creds: Credentials | None = None,
    retry: Retry = DEFAULT_RETRY,
    page_size: int = 1000,
) -> list[str]:
    """Every tag of `repository` (sorted), following the registry's `Link` pagination; [] when the
    repository does not exist (never pushed to, or every manifest in it deleted)."""
    client = _client(registry)
    if client is not None:
        return retry.call(lambda: client.tags(repository, page_size), _environment_down)
    creds = creds or credentials()
    found: list[str] = []
    path: str | None = f"/v2/{repository}/tags/list?n={page_size}"

    def once(url: str) -> tuple[list[str], str | None]:
        try:
            with _request("GET", url, creds) as r:
                body = json.loads(r.read() or b"{}")
                return list(body.get("tags") or []), _next_page(r.headers.get("Link"))
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return [], None
            if err.code == 401:
                raise _auth_failed(registry, creds) from err
            raise

    while path:
        url = f"http://{registry}{path}"
        page, path = _retried(registry, retry, lambda url=url: once(url))
        found += page
    return sorted(set(found))
