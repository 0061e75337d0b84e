"""The team registry (scripts/team-registry) on its real parts: docker, helm, the registry, the token issuer.

What a team's registry does and deployer will rely on (issue 11): TLS from the set-up's CA, bearer tokens
from the token issuer, per-namespace rights (developer may push staging/ but only pull production/), a
wrong password refused with 401, scopes the issuer does not know refused rather than narrowed.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from e2e.localcluster import configs
from e2e.localcluster.layout import tool
from tests.conftest import require
from tests.integration.conftest import DOCKER, docker_answers
from tests.integration.teamregistry import CA, HOW_TO_START, REGISTRY, TOKEN_URL, answers, get, password, tls

pytestmark = [pytest.mark.docker, pytest.mark.registry]


@pytest.fixture
def team_registry() -> None:
    require("the Docker engine", docker_answers(), "scripts/stack up")
    require("the team registry", answers(), HOW_TO_START)
    require(
        "the team registry credentials", os.access(configs.TEAM_REGISTRY_CREDENTIALS, os.R_OK), HOW_TO_START
    )


Docker = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def docker(tmp_path: Path, team_registry: None) -> Docker:
    """docker with a client config of its own (logins stay in the test)."""
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    env |= {"DOCKER_CONFIG": str(tmp_path / "docker"), "DOCKER_BUILDKIT": "1"}

    def run(
        *args: str, stdin: str | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DOCKER, *args], input=stdin, capture_output=True, text=True, env=env, cwd=cwd, timeout=300
        )

    return run


def login(docker: Docker, user: str, secret: str) -> subprocess.CompletedProcess[str]:
    return docker("login", REGISTRY, "-u", user, "--password-stdin", stdin=secret)


def tiny_image(docker: Docker, tmp_path: Path, *refs: str) -> None:
    """A one-file image (FROM scratch), unique per test so its layer is new to the registry."""
    context = tmp_path / "image"
    context.mkdir()
    (context / "payload").write_text(uuid.uuid4().hex)
    (context / "Dockerfile").write_text("FROM scratch\nCOPY payload /payload\n")
    tags = [arg for ref in refs for arg in ("-t", ref)]
    built = docker("build", "-q", *tags, ".", cwd=context)
    assert built.returncode == 0, built.stderr


def test_push_and_pull_through_the_token_flow(docker: Docker, tmp_path: Path) -> None:
    ref = f"{REGISTRY}/staging/it-{uuid.uuid4().hex[:8]}:1"
    tiny_image(docker, tmp_path, ref)
    assert login(docker, "ci", password("ci")).returncode == 0
    pushed = docker("push", ref)
    assert pushed.returncode == 0, pushed.stderr
    assert "digest: sha256:" in pushed.stdout
    # Pulled back by the read-only identity, after the local copy is gone: the bytes come from the registry.
    assert docker("image", "rm", ref).returncode == 0
    assert login(docker, "puller", password("puller")).returncode == 0
    pulled = docker("pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    assert docker("image", "inspect", ref).returncode == 0
    docker("image", "rm", ref)


def test_wrong_password_is_refused_with_401(docker: Docker) -> None:
    refused = login(docker, "ci", "not-" + password("ci"))
    assert refused.returncode != 0
    assert "unauthorized" in refused.stderr
    status, body = get(f"{TOKEN_URL}?service={urllib.parse.quote(REGISTRY)}", "ci", "wrong")
    assert status == 401
    assert body["errors"][0]["code"] == "UNAUTHORIZED"
    # No token, no registry: the registry itself answers 401 with the bearer challenge.
    request = urllib.request.Request(f"https://{REGISTRY}/v2/")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=tls())
        ).open(request, timeout=10)
    challenge = err.value.headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer realm="{TOKEN_URL}"')
    assert f'service="{REGISTRY}"' in challenge


def test_push_to_production_without_the_right_is_denied(docker: Docker, tmp_path: Path) -> None:
    name = f"it-{uuid.uuid4().hex[:8]}"
    staging, production = f"{REGISTRY}/staging/{name}:1", f"{REGISTRY}/production/{name}:1"
    tiny_image(docker, tmp_path, staging, production)
    assert login(docker, "developer", password("developer")).returncode == 0
    allowed = docker("push", staging)
    assert allowed.returncode == 0, allowed.stderr
    denied = docker("push", production)
    assert denied.returncode != 0
    assert "denied: requested access to the resource is denied" in denied.stderr
    docker("image", "rm", staging, production)


def test_helm_login_and_push_with_the_ca_file(team_registry: None, tmp_path: Path) -> None:
    helm = tool("helm")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "HELM_REGISTRY_CONFIG": str(tmp_path / "registry.json"),
        "HELM_CACHE_HOME": str(tmp_path / "cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "config"),
        "HELM_DATA_HOME": str(tmp_path / "data"),
    }

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [helm, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120
        )

    chart = f"it-{uuid.uuid4().hex[:8]}"
    assert run("create", str(tmp_path / chart)).returncode == 0
    assert run("package", str(tmp_path / chart), "-d", str(tmp_path)).returncode == 0
    archive = str(tmp_path / f"{chart}-0.1.0.tgz")
    repo = f"oci://{REGISTRY}/staging/charts"

    logged_in = run(
        "registry",
        "login",
        REGISTRY,
        "-u",
        "ci",
        "--password-stdin",
        "--ca-file",
        str(CA),
        stdin=password("ci"),
    )
    assert logged_in.returncode == 0, logged_in.stderr
    untrusted = run("push", archive, repo)
    assert untrusted.returncode != 0
    assert "certificate signed by unknown authority" in untrusted.stderr
    pushed = run("push", archive, repo, "--ca-file", str(CA))
    assert pushed.returncode == 0, pushed.stderr
    shown = run("show", "chart", f"{repo}/{chart}", "--version", "0.1.0", "--ca-file", str(CA))
    assert shown.returncode == 0, shown.stderr
    assert f"name: {chart}" in shown.stdout


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ("registry:catalog:*", "unsupported scope type 'registry'"),
        ("repository:staging/app:pull,admin", "unknown action 'admin'"),
        ("repository:Staging/App:pull", "invalid repository name 'Staging/App'"),
        ("repository:staging/app", "malformed scope"),
    ],
)
def test_token_issuer_refuses_unknown_scopes(team_registry: None, scope: str, message: str) -> None:
    query = urllib.parse.urlencode({"service": REGISTRY, "scope": scope})
    status, body = get(f"{TOKEN_URL}?{query}", "ci", password("ci"))
    assert status == 400
    assert message in body["errors"][0]["message"]


def test_token_carries_only_the_granted_actions(team_registry: None) -> None:
    query = urllib.parse.urlencode(
        [
            ("service", REGISTRY),
            ("scope", "repository:production/app:pull,push"),
            ("scope", "repository:other/app:pull"),
        ]
    )
    status, body = get(f"{TOKEN_URL}?{query}", "developer", password("developer"))
    assert status == 200
    claims = _claims(body["token"])
    assert claims["access"] == [{"type": "repository", "name": "production/app", "actions": ["pull"]}]
    assert claims["aud"] == REGISTRY
    assert claims["sub"] == "developer"
    assert 0 < claims["exp"] - claims["iat"] <= body["expires_in"]
