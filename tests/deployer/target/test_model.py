"""The environment values: how a registry names repositories and URLs, how a namespace rule resolves."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.target import CredentialsKind, CredentialsSource, NamespaceRule, Registry, Tls, TlsMode


def _registry(tls: Tls) -> Registry:
    return Registry(
        host="r.example:5443",
        namespace="production",
        charts="oci://r.example:5443/production/charts",
        tls=tls,
        credentials=CredentialsSource(CredentialsKind.NONE),
    )


@pytest.mark.parametrize(
    ("tls", "url"),
    [
        (Tls(), "https://r.example:5443"),
        (Tls(TlsMode.CA_FILE, Path("/ca.crt")), "https://r.example:5443"),
        (Tls(TlsMode.INSECURE), "http://r.example:5443"),
    ],
)
def test_plain_http_only_when_insecure(tls: Tls, url: str) -> None:
    assert _registry(tls).base_url == url
    assert _registry(tls).repository("svc") == "r.example:5443/production/svc"


@pytest.mark.parametrize(
    ("rule", "chosen", "expected"),
    [
        (NamespaceRule(), None, "rel"),
        (NamespaceRule(), "mine", "mine"),
        (NamespaceRule("{service}-prod", service_may_choose=False), "mine", "svc-prod"),
        (NamespaceRule("team-a", service_may_choose=False), None, "team-a"),
    ],
)
def test_namespace_rule(rule: NamespaceRule, chosen: str | None, expected: str) -> None:
    assert rule.namespace("rel", "svc", chosen) == expected


@pytest.mark.parametrize(
    ("source", "text"),
    [
        (CredentialsSource(CredentialsKind.ENV, user_var="U", password_var="P"), "$U/$P"),
        (CredentialsSource(CredentialsKind.DOCKER_CONFIG), "docker config ($DOCKER_CONFIG or ~/.docker)"),
        (CredentialsSource(CredentialsKind.DOCKER_CONFIG, path=Path("/c.json")), "docker config /c.json"),
        (
            CredentialsSource(CredentialsKind.FILE, path=Path("/r.env")),
            "/r.env (REGISTRY_USER, REGISTRY_PASSWORD)",
        ),
        (CredentialsSource(CredentialsKind.NONE), "anonymous"),
    ],
)
def test_credentials_source_describes_itself_by_name(source: CredentialsSource, text: str) -> None:
    assert source.describe() == text
