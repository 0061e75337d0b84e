"""May this kubeconfig's identity do what a ship needs? SelfSubjectAccessReviews, without the client.

`deployer ship` asks during its compile, in the background, so a missing permission stops it before it
builds or pushes anything (exit 19 naming verb, resource and namespace) instead of failing at the deploy
stage with half a release. HTTPS POSTs to the API server named by the kubeconfig, with its credentials
(client certificate, bearer token or token file); an identity this module cannot present (an exec plugin,
an auth provider) is not pre-checked: the deploy stage still reports what is refused.

First one SelfSubjectRulesReview (what the identity may do in the namespace); what its rules allow is
allowed. Only a verb they do not cover, or every verb when the server says its list is incomplete (an
authorizer that cannot list rules, e.g. a webhook, which might also deny), is asked with a
SelfSubjectAccessReview of its own, so a refusal is always the server's own verdict. One request instead
of one per verb (31 for a ship): the ship waits for this check before it builds anything, and 31 TLS
handshakes cost 0.35-0.6 s there on 2 busy cores.
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
_RULES_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews"


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
        server = cluster["server"].rstrip("/")
        granted = _rules_review(opener, server, headers, namespace, timeout)
        unsure = [one for one in asked if not any(allows(rule, *one) for rule in granted)]
        if not unsure:
            return []

        def review(one: Denied) -> bool | None:
            return _review(opener, server, headers, *one, namespace, timeout)

        # several reviews at a time: the ship waits for the slowest, not for their sum
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(review, unsure))
        if any(answer is None for answer in answers):
            return None
        return [one for one, allowed in zip(unsure, answers, strict=True) if not allowed]


def allows(rule: dict[str, Any], verb: str, group: str, resource: str) -> bool:
    """Whether one resource rule of a SelfSubjectRulesReview allows `verb` on every object of `resource`
    ("name/subresource") in `group`: the RBAC authorizer's own matching (`*` for any verb, group or
    resource, `*/subresource` for that subresource of any resource). A rule limited to some
    `resourceNames` does not allow a verb on the resource as a whole."""
    if rule.get("resourceNames"):
        return False
    verbs, groups = rule.get("verbs") or [], rule.get("apiGroups") or []
    if "*" not in verbs and verb not in verbs:
        return False
    if "*" not in groups and group not in groups:
        return False
    resources = rule.get("resources") or []
    _, _, sub = resource.partition("/")
    return "*" in resources or resource in resources or (bool(sub) and f"*/{sub}" in resources)


def _rules_review(opener: Any, server: str, headers: dict[str, str], namespace: str,
                  timeout: float) -> list[dict[str, Any]]:  # fmt: skip
    """The resource rules the identity has in `namespace`, or none when the list may be incomplete (then
    every verb is asked on its own) or the review failed."""
    status = _post(opener, server + _RULES_REVIEWS, headers, "SelfSubjectRulesReview",
                   {"namespace": namespace}, timeout)  # fmt: skip
    if status is None or status.get("incomplete") is not False:
        return []
    return [rule for rule in status.get("resourceRules") or [] if isinstance(rule, dict)]


def _review(opener: Any, server: str, headers: dict[str, str], verb: str, group: str, resource: str,
            namespace: str, timeout: float) -> bool | None:  # fmt: skip
    name, _, sub = resource.partition("/")
    attributes = {"verb": verb, "group": group, "resource": name, "namespace": namespace}
    if sub:
        attributes["subresource"] = sub
    status = _post(opener, server + _REVIEWS, headers, "SelfSubjectAccessReview",
                   {"resourceAttributes": attributes}, timeout)  # fmt: skip
    return None if status is None else bool(status.get("allowed"))


def _post(opener: Any, url: str, headers: dict[str, str], kind: str, spec: dict[str, Any],
          timeout: float) -> dict[str, Any] | None:  # fmt: skip
    """The status of one review of `kind`, or None when the review itself failed (not a verdict)."""
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": spec}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with opener.open(request, timeout=timeout) as response:
            status = json.loads(response.read()).get("status")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return status if isinstance(status, dict) else {}


def _named(doc: dict[str, Any], section: str, name: str | None) -> dict[str, Any]:
    return next((item for item in doc.get(section) or [] if item.get("name") == name), {})


def _read(path: str | None, base: Path) -> str | None:
    if not path:
        return None
    return (base / path).read_text().strip()


@contextmanager
def _tls(cluster: dict[str, Any], user: dict[str, Any], base: Path) -> Iterator[ssl.SSLContext]:
    """The API server's trust and the client certificate, as ssl wants them (key material in files that
    only exist, mode 600, while the reviews run).

    A kubeconfig's CA is the only one trusted, as the Kubernetes client (and kubectl) trust it; the
    system's CAs only when it names none. Loading them is also 0.1-0.2 s of CPU before the first request.
    """
    if cluster.get("insecure-skip-tls-verify"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif cluster.get("certificate-authority-data"):
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        context = ssl.create_default_context(cadata=ca)
    elif cluster.get("certificate-authority"):
        context = ssl.create_default_context(cafile=str(base / cluster["certificate-authority"]))
    else:
        context = ssl.create_default_context()
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
