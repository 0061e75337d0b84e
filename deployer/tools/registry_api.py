"""The registry's HTTP API (OCI distribution) as one environment's client: TLS, Basic and Bearer auth.

One `RegistryClient` per `deployer.target.Registry`: it verifies TLS against the environment's CA bundle
(or the system trust; plain HTTP only for a registry the environment calls `insecure`), and answers auth
challenges the way docker does (distribution's token spec): a `401` with `WWW-Authenticate: Bearer
realm=…,service=…` sends the credentials to the token endpoint for exactly the scope the call needs
(`repository:NAME:pull`, `…:pull,push`, `…:delete`; a cross-repository mount asks for both
repositories), the token is cached per scope until it expires, and a `401` with a cached token fetches a
new one once. A `Basic` challenge gets the credentials directly.

Failures are typed and name what to fix, never a secret: an unreachable registry names host and port
(`RegistryDown`), a certificate that does not verify names the CA setting of the environment
(`RegistryTlsFailed`), a refused login or a denied scope names the credentials *source*
(`RegistryAuthFailed`). Every one is exit 19 (`EnvironmentMissing`); a push turns the auth one into 14.

Why urllib and not a library: see README "Dependencies" (the `oras` SDK was weighed).
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from deployer.errors import EnvironmentMissing
from deployer.reporting import redact

__all__ = [
    "MANIFEST_TYPES",
    "Credentials",
    "Manifest",
    "RegistryAuthFailed",
    "RegistryClient",
    "RegistryDown",
    "RegistryTlsFailed",
    "challenge",
    "copy_blob",
    "copy_image",
]

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)

_CHUNK = 1 << 20  # streamed blob copies move 1 MiB at a time


class RegistryAuthFailed(EnvironmentMissing):
    """The registry (or its token endpoint) rejected our credentials, or denied the scope asked for."""


class RegistryDown(EnvironmentMissing):
    """The registry does not answer (connection refused, timeout, 5xx)."""


class RegistryTlsFailed(EnvironmentMissing):
    """The registry's certificate does not verify against the trust the environment names."""


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str
    source: str  # where they came from, for messages (`$CI_USER/$CI_TOKEN`, a file path), never a value

    def __repr__(self) -> str:  # never show the password, not even in a traceback's locals
        return f"Credentials(user={self.user!r}, password='{redact.MASK}', source={self.source!r})"


@dataclass(frozen=True)
class Manifest:
    body: bytes
    media_type: str
    digest: str


_PARAM = re.compile(r'(\w+)="([^"]*)"')


def challenge(header: str | None) -> tuple[str, dict[str, str]]:
    """(`bearer`/`basic`/``, parameters) of a `WWW-Authenticate` header."""
    if not header:
        return "", {}
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_PARAM.findall(rest))


def _repo_scope(repository: str, actions: str) -> str:
    return f"repository:{repository}:{actions}"


class RegistryClient:
    """The HTTP API of one registry, as one environment sees it (its TLS trust and its credentials).

    `registry` is a `deployer.target.Registry` (host, tls, credentials source); `creds` the credentials
    read from that source (None: anonymous). Thread-safe: prune asks for digests from a thread pool.
    """

    def __init__(self, registry: Any, creds: Credentials | None, *, timeout: float = 10) -> None:
        self.registry = registry
        self.creds = creds
        self.timeout = timeout
        self._tokens: dict[str, tuple[str, float]] = {}  # scope → (token, expiry on the monotonic clock)
        self._challenge: tuple[str, dict[str, str]] | None = None
        self._lock = threading.Lock()
        handlers: list[Any] = [urllib.request.ProxyHandler({})]  # the registry is never behind our proxy
        if not registry.tls.is_plain_http:
            context = ssl.create_default_context(
                cafile=str(registry.tls.ca_file) if registry.tls.ca_file else None
            )
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    # --- where, for messages ---------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return str(self.registry.host)

    def _host_port(self) -> str:
        host, sep, port = self.host.rpartition(":")
        if sep and port.isdigit():
            return f"{host} port {port}"
        return f"{self.host} port {'80' if self.registry.tls.is_plain_http else '443'}"

    def _source(self) -> str:
        if self.creds is not None:
            return self.creds.source
        return str(self.registry.credentials.describe())

    # --- the one request path --------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        scope: str | None,
        headers: Mapping[str, str] | None = None,
        data: bytes | Iterator[bytes] | None = None,
        ok: tuple[int, ...] = (),
    ) -> Any:
        """Send `method path` with whatever auth `scope` needs; the open response.

        HTTP errors with a status in `ok` are returned (as the `HTTPError`, a response too) instead of
        raised; other failures are the typed errors of this module. A `data` iterator is not replayable,
        so such a call must only be made once the scope's token is known (`authorize` first)."""
        url = path if path.startswith(("http://", "https://")) else f"{self.registry.base_url}{path}"
        for attempt in (1, 2):
            req = urllib.request.Request(url, method=method, data=data)  # type: ignore[arg-type]
            for key, value in (headers or {}).items():
                req.add_header(key, value)
            auth = self._authorization(scope)
            if auth:
                req.add_header("Authorization", auth)
            try:
                return self._opener.open(req, timeout=self.timeout)
            except urllib.error.HTTPError as err:
                if err.code == 401 and attempt == 1:
                    self._answer(err.headers.get("WWW-Authenticate"), scope, stale=auth)
                    err.close()
                    continue
                if err.code in ok:
                    return err
                raise self._http_error(method, path, scope, err) from err
            except urllib.error.URLError as err:
                raise self._url_error(err) from err
            except (ConnectionError, TimeoutError) as err:
                raise self._down(str(err)) from err
        raise AssertionError("unreachable")  # pragma: no cover

    def authorize(self, scope: str) -> None:
        """Learn the challenge and fetch the token for `scope` now (before a one-shot streamed upload)."""
        if self._challenge is None:
            self.ping()
        if self._challenge and self._challenge[0] == "bearer" and not self._authorization(scope):
            self._fetch_token(scope)

    def _authorization(self, scope: str | None) -> str | None:
        with self._lock:
            known = self._challenge
            if known is None:
                return None
            if known[0] == "basic":
                return self._basic()
            cached = self._tokens.get(scope or "")
            if cached and cached[1] > time.monotonic():
                return f"Bearer {cached[0]}"
            return None

    def _basic(self) -> str | None:
        if self.creds is None:
            return None
        raw = f"{self.creds.user}:{self.creds.password}".encode()
        return f"Basic {base64.b64encode(raw).decode()}"

    def _answer(self, header: str | None, scope: str | None, stale: str | None) -> None:
        """Act on a 401's challenge so the next try carries what it asks for."""
        scheme, params = challenge(header)
        with self._lock:
            self._challenge = (scheme, params)
            if stale and stale.startswith("Bearer "):
                self._tokens.pop(scope or "", None)  # expired or revoked: fetch a new one once
        if scheme == "bearer":
            self._fetch_token(scope if scope is not None else params.get("scope", ""))
        elif scheme == "basic" and self.creds is None:
            raise self._auth_failed("the registry asks for credentials and the environment names none")
        elif scheme not in ("bearer", "basic"):
            raise self._auth_failed(f"it asks for {scheme or 'an unnamed'} auth, which deployer lacks")

    def _fetch_token(self, scope: str) -> None:
        assert self._challenge is not None
        params = self._challenge[1]
        realm = params.get("realm")
        if not realm:
            raise self._auth_failed("the registry's Bearer challenge names no token endpoint (realm)")
        # several scopes (a cross-repository mount) are several `scope` parameters, as docker sends them
        query = [("service", params.get("service", ""))] + [("scope", one) for one in scope.split()]
        req = urllib.request.Request(f"{realm}?{urllib.parse.urlencode(query)}")
        basic = self._basic()
        if basic:
            req.add_header("Authorization", basic)
        try:
            with self._opener.open(req, timeout=self.timeout) as response:
                body = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            if err.code in (401, 403):
                why = f"the token endpoint refused the credentials (HTTP {err.code})"
                raise self._auth_failed(why) from err
            raise self._down(f"token endpoint {realm}: HTTP {err.code}") from err
        except urllib.error.URLError as err:
            raise self._url_error(err, what=f"token endpoint {realm}") from err
        token = body.get("token") or body.get("access_token")
        if not token:
            raise self._auth_failed("the token endpoint answered without a token")
        redact.register(token)
        # refresh a little early: a token that expires between our check and the registry's is a 401
        life = float(body.get("expires_in") or 60)
        with self._lock:
            self._tokens[scope] = (token, time.monotonic() + max(life - 10, life / 2))

    # --- errors that say what to fix ------------------------------------------------------------------

    def _auth_failed(self, why: str) -> RegistryAuthFailed:
        return RegistryAuthFailed(
            f"the registry at {self.host} rejected us: {why} (credentials from {self._source()})",
            hint=f"check the credentials in {self._source()}, and that they may do this in "
            f"{self.registry.namespace}/",
        )

    def _http_error(
        self, method: str, path: str, scope: str | None, err: urllib.error.HTTPError
    ) -> Exception:
        if err.code == 401:
            return self._auth_failed(f"{method} {path} is unauthorized (HTTP 401)")
        if err.code == 403:
            return self._auth_failed(f"{method} {path} is denied (HTTP 403, scope {scope})")
        if err.code >= 500:
            return self._down(f"{method} {path}: HTTP {err.code}")
        return EnvironmentMissing(f"the registry at {self.host} answered {method} {path}: HTTP {err.code}")

    def _down(self, why: str) -> RegistryDown:
        return RegistryDown(
            f"the registry at {self._host_port()} does not answer: {why}",
            hint="is it running and reachable from here? (the local one: `scripts/stack up`)",
        )

    def _url_error(self, err: urllib.error.URLError, what: str = "") -> EnvironmentMissing:
        reason = err.reason
        if isinstance(reason, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(reason):
            tls = self.registry.tls
            trust = f"the CA file {tls.ca_file}" if tls.ca_file else "the system trust store"
            return RegistryTlsFailed(
                f"TLS verification of {what or self.host} failed against {trust}: "
                f"{getattr(reason, 'verify_message', None) or reason}",
                hint="set the registry's CA bundle in deployer.yaml: environments.<name>.registry.tls: "
                "{caFile: PATH}",
            )
        return self._down(str(reason))

    # --- the questions deployer asks ------------------------------------------------------------------

    def ping(self) -> None:
        """The registry answers `/v2/` and, when it asks for auth, accepts the credentials."""
        with self.request("GET", "/v2/", scope=""):
            return

    def digest(self, repository: str, reference: str) -> str | None:
        """The manifest digest of `repository:reference`, or None when there is none."""
        scope = _repo_scope(repository, "pull")
        with self.request(
            "HEAD", f"/v2/{repository}/manifests/{reference}", scope=scope,
            headers={"Accept": MANIFEST_TYPES}, ok=(404,),
        ) as response:  # fmt: skip
            return None if response.status == 404 else response.headers.get("Docker-Content-Digest")

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        scope = _repo_scope(repository, "pull")
        with self.request(
            "GET", f"/v2/{repository}/manifests/{reference}", scope=scope,
            headers={"Accept": MANIFEST_TYPES}, ok=(404,),
        ) as response:  # fmt: skip
            if response.status == 404:
                return None
            return Manifest(
                response.read(),
                response.headers.get("Content-Type", ""),
                response.headers.get("Docker-Content-Digest", ""),
            )

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        """Store `manifest` as `repository:reference`; the digest the registry gives it."""
        scope = _repo_scope(repository, "pull,push")
        with self.request(
            "PUT", f"/v2/{repository}/manifests/{reference}", scope=scope,
            headers={"Content-Type": manifest.media_type}, data=manifest.body,
        ) as response:  # fmt: skip
            return str(response.headers.get("Docker-Content-Digest", manifest.digest))

    def delete_manifest(self, repository: str, manifest_digest: str) -> bool:
        """Delete a manifest (and every tag on it). True when deleted, False when it was not there."""
        scope = _repo_scope(repository, "delete")
        path = f"/v2/{repository}/manifests/{manifest_digest}"
        with self.request("DELETE", path, scope=scope, ok=(404,)) as response:
            return response.status != 404

    def tags(self, repository: str, page_size: int = 1000) -> list[str]:
        """Every tag of `repository`, sorted, following `Link` pagination; [] for no such repository."""
        scope = _repo_scope(repository, "pull")
        found: list[str] = []
        path: str | None = f"/v2/{repository}/tags/list?n={page_size}"
        while path:
            with self.request("GET", path, scope=scope, ok=(404,)) as response:
                if response.status == 404:
                    break
                found += json.loads(response.read() or b"{}").get("tags") or []
                path = _next_page(response.headers.get("Link"))
        return sorted(set(found))

    def has_blob(self, repository: str, blob: str) -> bool:
        scope = _repo_scope(repository, "pull")
        with self.request("HEAD", f"/v2/{repository}/blobs/{blob}", scope=scope, ok=(404,)) as response:
            return response.status != 404

    def mount_blob(self, repository: str, blob: str, from_repository: str) -> bool:
        """Cross-repository mount on this registry: True when mounted (201), False when the registry
        started an upload instead (it will not mount; the caller copies the bytes)."""
        scope = f"{_repo_scope(repository, 'pull,push')} {_repo_scope(from_repository, 'pull')}"
        query = urllib.parse.urlencode({"mount": blob, "from": from_repository})
        path = f"/v2/{repository}/blobs/uploads/?{query}"
        with self.request("POST", path, scope=scope, data=b"") as response:
            if response.status == 201:
                return True
            location = response.headers.get("Location")
        if location:  # abandon the upload the registry opened instead of mounting
            with self.request("DELETE", self._absolute(location), scope=scope, ok=(404, 405)):
                pass
        return False

    def open_blob(self, repository: str, blob: str) -> Any:
        """The blob's bytes as an open response (read it in chunks; close it)."""
        return self.request("GET", f"/v2/{repository}/blobs/{blob}", scope=_repo_scope(repository, "pull"))

    def upload_blob(self, repository: str, blob: str, size: int, chunks: Iterator[bytes]) -> None:
        """A monolithic upload of `size` bytes from `chunks` (streamed, never held whole)."""
        scope = _repo_scope(repository, "pull,push")
        self.authorize(scope)  # the chunk iterator cannot be replayed after a challenge
        with self.request("POST", f"/v2/{repository}/blobs/uploads/", scope=scope, data=b"") as response:
            location = self._absolute(response.headers["Location"])
        sep = "&" if "?" in location else "?"
        with self.request(
            "PUT", f"{location}{sep}{urllib.parse.urlencode({'digest': blob})}", scope=scope,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)}, data=chunks,
        ):  # fmt: skip
            pass

    def _absolute(self, location: str) -> str:
        if location.startswith(("http://", "https://")):
            return location
        return f"{self.registry.base_url}{location}"


def copy_blob(source: RegistryClient, src_repo: str, target: RegistryClient, dst_repo: str, blob: str,
              size: int) -> str:  # fmt: skip
    """Put blob `blob` into `target`'s `dst_repo`: already there, mounted (same registry), or streamed.

    Returns how: `present`, `mounted` or `copied`."""
    if target.has_blob(dst_repo, blob):
        return "present"
    if source.host == target.host and target.mount_blob(dst_repo, blob, src_repo):
        return "mounted"
    with source.open_blob(src_repo, blob) as response:
        target.upload_blob(dst_repo, blob, size, iter(lambda: response.read(_CHUNK), b""))
    return "copied"


_INDEX_TYPES = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)


def copy_image(
    source: RegistryClient, src_repo: str, reference: str, target: RegistryClient, dst_repo: str, tag: str
) -> tuple[str, dict[str, int]]:
    """Copy `src_repo@reference` (a digest) into `target`'s `dst_repo:tag` byte for byte, so the digest is
    the same on both sides: blobs mounted (same registry) or streamed, then the manifest (an index's
    children first). Returns (digest, {how: count of blobs}); never pulls or rebuilds an image."""
    counts: dict[str, int] = {}

    def manifest(ref: str, tag_as: str) -> str:
        found = source.manifest(src_repo, ref)
        if found is None:
            raise EnvironmentMissing(f"{source.host}/{src_repo}@{ref} is not in the source registry")
        doc = json.loads(found.body)
        if found.media_type in _INDEX_TYPES:
            for child in doc.get("manifests", []):
                manifest(child["digest"], child["digest"])
        else:
            for blob in [doc["config"], *doc.get("layers", [])]:
                how = copy_blob(source, src_repo, target, dst_repo, blob["digest"], int(blob["size"]))
                counts[how] = counts.get(how, 0) + 1
        return target.put_manifest(dst_repo, tag_as, found)

    return manifest(reference, tag), counts


def _next_page(link: str | None) -> str | None:
    """The path of the next page from a `Link: </v2/…?n=…&last=…>; rel="next"` header (RFC 5988)."""
    if not link or 'rel="next"' not in link:
        return None
    start, end = link.find("<"), link.find(">")
    return link[start + 1 : end] if 0 <= start < end else None
