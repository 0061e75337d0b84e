"""Where the team registry (scripts/team-registry) is and how tests reach it: CA, users' passwords."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request

from e2e.localcluster import configs

REGISTRY = configs.TEAM_REGISTRY
TOKEN_URL = f"https://{configs.TEAM_REGISTRY_HOST}:{configs.TEAM_TOKEN_PORT}/token"
CA = configs.TEAM_REGISTRY_CA
HOW_TO_START = "scripts/team-registry up (or make team-registry)"


def tls() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(CA))


def get(url: str, user: str | None = None, password: str | None = None) -> tuple[int, dict]:
    """(status, JSON body) of a GET over the team CA, with Basic credentials when given."""
    request = urllib.request.Request(url)
    if user is not None:
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {basic}")
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=tls())
    )
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def answers() -> bool:
    if not CA.exists():
        return False
    try:
        return get(f"https://{REGISTRY}/v2/")[0] == 401 and get(TOKEN_URL)[0] == 401
    except OSError:
        return False


def password(user: str) -> str:
    value = configs.team_registry_password(user)
    assert value, f"no password for {user} in {configs.TEAM_REGISTRY_CREDENTIALS}"
    return value
