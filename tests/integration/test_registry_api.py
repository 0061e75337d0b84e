"""The registry HTTP client (deployer.tools.registry_api) on real registries: the team registry (TLS from
the set-up's CA, bearer tokens from the token issuer) and the local one (plain HTTP, Basic auth).

An image is copied by digest from the local registry into the team registry's staging/ (streamed), then
into production/ (a cross-repository mount on the same registry); tags, digests and delete go through
the token flow; a wrong password, a missing CA and a closed port each give the error that names what to
fix (the credentials source, the CA setting, host and port), never the secret. A token past its expiry is
fetched again, and one the registry refuses (a really expired one, signed by the set-up's key) is replaced
once; `deployer push` with a wrong password exits 14 naming the source.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from deployer import target as t
from deployer.tools import credentials, registry_api
from e2e.localcluster import configs
from tests.conftest import require
from tests.integration.teamregistry import CA, HOW_TO_START, REGISTRY, answers, password

REPO = Path(__file__).resolve().parents[2]
DEPLOYER = str(Path(sys.executable).parent / "deployer")
TEAM_DIR = configs.TEAM_REGISTRY_CA.parent  # the set-up's CA, signing key, users (scripts/team-registry)

pytestmark = [pytest.mark.registry]

BASE = "base/bookworm"  # in the local registry after `scripts/stack up`


def _team(tls: t.Tls | None = None, user_var: str = "TEST_TEAM_USER") -> t.Registry:
    return t.Registry(
        host=REGISTRY,
        namespace="staging",
        charts=f"oci://{REGISTRY}/staging/charts",
        tls=tls or t.Tls(t.TlsMode.CA_FILE, CA),
        credentials=t.CredentialsSource(
            t.CredentialsKind.ENV, user_var=user_var, password_var="TEST_TEAM_PASSWORD"
        ),
    )


@pytest.fixture
def team(monkeypatch: pytest.MonkeyPatch) -> registry_api.RegistryClient:
    require("the team registry", answers(), HOW_TO_START)
    require("its credentials", os.access(configs.TEAM_REGISTRY_CREDENTIALS, os.R_OK), HOW_TO_START)
    monkeypatch.setenv("TEST_TEAM_USER", "ci")
    monkeypatch.setenv("TEST_TEAM_PASSWORD", password("ci"))
    reg = _team()
    return registry_api.RegistryClient(reg, credentials.read(reg.credentials, reg.host))


@pytest.fixture
def local() -> registry_api.RegistryClient:
    reg = t.LOCAL.registry
    require(
        "the local registry credentials",
        os.access(reg.credentials.path or Path(), os.R_OK),
        "scripts/stack up",
    )
    client = registry_api.RegistryClient(reg, credentials.read(reg.credentials, reg.host))
    require("the local registry", bool(client.tags(BASE)), "scripts/stack up")
    return client


def test_copy_by_digest_streamed_then_mounted_then_deleted(
    team: registry_api.RegistryClient, local: registry_api.RegistryClient
) -> None:
    name = f"apitest-{uuid.uuid4().hex[:6]}"
    source_digest = local.digest(BASE, local.tags(BASE)[-1])
    assert source_digest

    staged, how = registry_api.copy_image(local, BASE, source_digest, team, f"staging/{name}", "v1")
    assert staged == source_digest
    assert how.get("copied", 0) >= 2  # config and at least one layer crossed registries as bytes
    assert team.digest(f"staging/{name}", "v1") == source_digest
    assert team.tags(f"staging/{name}") == ["v1"]

    promoted, how = registry_api.copy_image(team, f"staging/{name}", staged, team, f"production/{name}", "v1")
    assert promoted == source_digest
    assert set(how) == {"mounted"}  # same registry: no byte moved

    for repo in (f"staging/{name}", f"production/{name}"):
        assert team.delete_manifest(repo, source_digest) is True
        assert team.digest(repo, "v1") is None
        assert team.delete_manifest(repo, source_digest) is False
    # one token per scope asked for, reused across calls
    assert f"repository:staging/{name}:pull" in team._tokens


def test_wrong_password_names_the_source_not_the_value(
    team: registry_api.RegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "not-" + uuid.uuid4().hex
    monkeypatch.setenv("TEST_TEAM_PASSWORD", wrong)
    reg = _team()
    client = registry_api.RegistryClient(reg, credentials.read(reg.credentials, reg.host))
    with pytest.raises(registry_api.RegistryAuthFailed) as failed:
        client.tags("staging/anything")
    assert "$TEST_TEAM_USER/$TEST_TEAM_PASSWORD" in str(failed.value)
    assert wrong not in str(failed.value) and wrong not in str(failed.value.hint)
    assert failed.value.exit_code == 19


def test_denied_scope_is_named(monkeypatch: pytest.MonkeyPatch, team: registry_api.RegistryClient) -> None:
    monkeypatch.setenv("TEST_TEAM_USER", "developer")
    monkeypatch.setenv("TEST_TEAM_PASSWORD", password("developer"))
    reg = _team()
    client = registry_api.RegistryClient(reg, credentials.read(reg.credentials, reg.host))
    with pytest.raises(registry_api.RegistryAuthFailed) as failed:
        client.delete_manifest("production/anything", "sha256:" + "0" * 64)
    assert "production/anything" in str(failed.value) and "$TEST_TEAM_USER" in str(failed.value)


def test_tls_without_the_ca_names_the_setting(team: registry_api.RegistryClient) -> None:
    client = registry_api.RegistryClient(_team(t.Tls(t.TlsMode.SYSTEM)), team.creds)
    with pytest.raises(registry_api.RegistryTlsFailed) as failed:
        client.ping()
    assert "system trust store" in str(failed.value)
    assert "caFile" in str(failed.value.hint)


def test_unreachable_names_host_and_port(team: registry_api.RegistryClient) -> None:
    reg = _team()
    closed = t.Registry(**{**reg.__dict__, "host": f"{configs.TEAM_REGISTRY_HOST}:1"})
    with pytest.raises(registry_api.RegistryDown) as failed:
        registry_api.RegistryClient(closed, team.creds, timeout=3).ping()
    assert f"{configs.TEAM_REGISTRY_HOST} port 1" in str(failed.value)


def test_missing_env_credentials_name_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_TEAM_PASSWORD", raising=False)
    monkeypatch.setenv("TEST_TEAM_USER", "ci")
    reg = _team()
    with pytest.raises(registry_api.EnvironmentMissing, match=r"\$TEST_TEAM_PASSWORD not set"):
        credentials.read(reg.credentials, reg.host)


def _scope_token(client: registry_api.RegistryClient, scope: str) -> str:
    return client._tokens[scope][0]


def test_a_token_past_its_expiry_is_fetched_again(team: registry_api.RegistryClient) -> None:
    repo = f"staging/apitest-{uuid.uuid4().hex[:6]}"
    scope = f"repository:{repo}:pull"
    assert team.tags(repo) == []
    first = _scope_token(team, scope)
    team._tokens[scope] = (first, time.monotonic() - 1)  # as it stands once its expires_in has passed
    assert team.tags(repo) == []
    assert _scope_token(team, scope) != first  # a new token (each has its own jti), and the call passed


def _expired_token(scope: str) -> str:
    """A token for `ci` and `scope` signed by the set-up's own key, expired two minutes ago: what a
    client holds when its clock says the token is good and the registry's says not."""
    mint = (
        "import argparse, sys; sys.path.insert(0, sys.argv[1]); import token_issuer as t\n"
        "d = sys.argv[2]\n"
        "args = argparse.Namespace(signing_key=d + '/token-signer.key', signing_cert=d + '/token-signer.crt',"
        " users=d + '/users.json', acl=sys.argv[3], issuer='deployer-team-token-issuer', service=sys.argv[4],"
        " ttl=-120)\n"
        "print(t.load_issuer(args).token('ci', [t.parse_scope(sys.argv[5])])[0])\n"
    )
    issuer_dir = REPO / "scripts" / "teamregistry"
    # the issuer's own interpreter: PyJWT and cryptography are Debian's, not the virtualenv's
    done = subprocess.run(
        ["/usr/bin/python3", "-c", mint, str(issuer_dir), str(TEAM_DIR), str(issuer_dir / "acl.json"),
         REGISTRY, scope],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_token_the_registry_refuses_is_replaced_once(team: registry_api.RegistryClient) -> None:
    repo = f"staging/apitest-{uuid.uuid4().hex[:6]}"
    scope = f"repository:{repo}:pull"
    assert team.tags(repo) == []  # learns the Bearer challenge
    expired = _expired_token(scope)
    team._tokens[scope] = (expired, time.monotonic() + 300)  # the client believes it is good
    assert team.tags(repo) == []  # the registry said 401; the client fetched a new token and asked again
    assert _scope_token(team, scope) not in ("", expired)


@pytest.mark.docker
def test_push_with_a_wrong_password_exits_14_naming_the_source(tmp_path: Path) -> None:
    require("the team registry", answers(), HOW_TO_START)
    wrong = "not-" + uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k != "DEPLOYER_REGISTRY"}
    env |= {"TEAM_REGISTRY_USER": "ci", "TEAM_REGISTRY_PASSWORD": wrong, "CI": "true"}
    done = subprocess.run(
        [DEPLOYER, "push", str(REPO / "examples" / "node-hello"), "--env", "staging",
         "--config", str(REPO / "e2e" / "testdata" / "deployer.yaml")],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 14, output
    assert "$TEAM_REGISTRY_USER/$TEAM_REGISTRY_PASSWORD" in output
    assert "refused the credentials (HTTP 401)" in output
    assert wrong not in output and "Traceback" not in output
