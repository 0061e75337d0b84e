"""May this kubeconfig's identity do what a ship needs? SelfSubjectAccessReviews, without the client.

`deployer ship` asks during its compile, in the background, so a missing permission stops it before it
builds or pushes anything (exit 19 naming verb, resource and namespace) instead of failing at the deploy
stage with half a release. One HTTPS POST per verb to the API server named by the kubeconfig, with its
credentials (client certificate, bearer token or token file); an identity this module cannot present
(an exec plugin, an auth provider) is not pre-checked: the deploy stage still reports what is refused.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from deployer.permissions import Rule
from deployer.reporting import redact

__all__ = ["Denied", "denied"]

Denied = tuple[str, str, str]  # (verb, group, resource)

_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def denied(
    kubeconfig: Path, context: str | None, namespace: str, rules: Iterable[Rule], *, timeout: float = 5.0
) -> list[Denied] | None:
    """Each (verb, group, resource) of `rules` the identity may not do in `namespace`; None when it
    cannot be asked (an identity presented by a plugin, an unusable kubeconfig: the reachability check
    says why, or the API server refused the review itself)."""
    try:
        return _denied(kubeconfig, context, namespace, rules, timeout)
    except (OSError, ValueError, yaml.YAMLError, ssl.SSLError):
        return None


def _denied(
    kubeconfig: Path, context: str | None, namespace: str, rules: Iterable[Rule], timeout: float
) -> list[Denied] | None:
    doc = yaml.safe_load(kubeconfig.read_text(encoding="utf-8")) or {}
    name = context or doc.get("current-context")
    ctx = _named(doc, "contexts", name).get("context") or {}
    cluster = _named(doc, "clusters", ctx.get("cluster")).get("cluster") or {}
    user = _named(doc, "users", ctx.get("user")).get("user") or {}
    if not cluster.get("server") or user.get("exec") or user.get("auth-provider"):
        return None
    base = kubeconfig.parent
    with _tls(cluster, user, base) as context_ssl:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        token = user.get("token") or _read(user.get("tokenFile"), base)
        if token:
            redact.register(token)
            headers["Authorization"] = f"Bearer {token}"
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context_ssl)
        )
        asked = [(verb, group, resource) for group, resource, verbs in rules for verb in verbs]

        def review(one: Denied) -> bool | None:
            return _review(opener, cluster["server"], headers, *one, namespace, timeout)

        # several reviews at a time: the ship waits for the slowest, not for their sum
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(review, asked))
        if any(answer is None for answer in answers):
            return None
        return [one for one, allowed in zip(asked, answers, strict=True) if not allowed]


def _review(opener: Any, server: str, headers: dict[str, str], verb: str, group: str, resource: str,
            namespace: str, timeout: float) -> bool | None:  # fmt: skip
    name, _, sub = resource.partition("/")
    attributes = {"verb": verb, "group": group, "resource": name, "namespace": namespace}
    if sub:
        attributes["subresource"] = sub
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }
    request = urllib.request.Request(
        server.rstrip("/") + _REVIEWS, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            return bool(json.loads(response.read()).get("status", {}).get("allowed"))
    except (urllib.error.URLError, OSError, ValueError):
        return None  # the review itself failed: not a verdict on the permission


def _named(doc: dict[str, Any], section: str, name: str | None) -> dict[str, Any]:
    return next((item for item in doc.get(section) or [] if item.get("name") == name), {})


def _read(path: str | None, base: Path) -> str | None:
    if not path:
        return None
    return (base / path).read_text().strip()


@contextmanager
def _tls(cluster: dict[str, Any], user: dict[str, Any], base: Path) -> Iterator[ssl.SSLContext]:
    """The API server's trust and the client certificate, as ssl wants them (key material in files that
    only exist, mode 600, while the reviews run)."""
    context = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif cluster.get("certificate-authority-data"):
        context.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    elif cluster.get("certificate-authority"):
        context.load_verify_locations(cafile=str(base / cluster["certificate-authority"]))
    with tempfile.TemporaryDirectory(prefix="deployer-access-") as tmp:
        cert, key = user.get("client-certificate"), user.get("client-key")
        if user.get("client-certificate-data") and user.get("client-key-data"):
            cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            for path, field in ((cert, "client-certificate-data"), (key, "client-key-data")):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(base64.b64decode(user[field]))
        if cert and key:
            context.load_cert_chain(str(base / cert), str(base / key))
        yield context
