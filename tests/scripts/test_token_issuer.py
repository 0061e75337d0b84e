"""The team registry's token issuer without a server: scope parsing, the ACL's grant, password hashes.

The HTTP side, signing and the registry's verification are tested on the real parts in
tests/integration/test_team_registry.py.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "scripts" / "teamregistry" / "token_issuer.py"
_spec = importlib.util.spec_from_file_location("token_issuer", _PATH)
issuer = importlib.util.module_from_spec(_spec)
sys.modules["token_issuer"] = issuer  # dataclasses look their module up there
_spec.loader.exec_module(issuer)

ACL = json.loads((_PATH.parent / "acl.json").read_text())["users"]


@pytest.mark.parametrize(
    ("text", "scope"),
    [
        ("repository:staging/app:pull", ("repository", "staging/app", ("pull",))),
        ("repository:staging/app:push,pull", ("repository", "staging/app", ("push", "pull"))),
        (
            "repository:production/team/app:*",
            ("repository", "production/team/app", ("pull", "push", "delete")),
        ),
        ("repository:staging/app:pull,pull", ("repository", "staging/app", ("pull",))),
    ],
)
def test_parse_scope(text: str, scope: tuple) -> None:
    parsed = issuer.parse_scope(text)
    assert (parsed.type, parsed.name, parsed.actions) == scope


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "registry:catalog:*",
            "unsupported scope type 'registry' in 'registry:catalog:*' (only 'repository')",
        ),
        (
            "repository:staging/app:pull,admin",
            "unknown action 'admin' in 'repository:staging/app:pull,admin'",
        ),
        ("repository:Staging/app:pull", "invalid repository name 'Staging/app'"),
        ("repository:staging/app", "malformed scope 'repository:staging/app' (want repository:NAME:ACTIONS)"),
        ("repository::pull", "malformed scope 'repository::pull' (want repository:NAME:ACTIONS)"),
    ],
)
def test_unknown_scopes_are_refused(text: str, message: str) -> None:
    with pytest.raises(issuer.ScopeError) as err:
        issuer.parse_scope(text)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(
    ("user", "scope", "granted"),
    [
        ("ci", "repository:production/app:push,pull", ("push", "pull")),
        ("developer", "repository:staging/app:push,pull", ("push", "pull")),
        ("developer", "repository:production/app:push,pull", ("pull",)),
        ("developer", "repository:production/app:delete", ()),
        ("puller", "repository:staging/app:*", ("pull",)),
        ("puller", "repository:other/app:pull", ()),
        ("nobody", "repository:staging/app:pull", ()),
    ],
)
def test_grant_follows_the_acl_by_namespace(user: str, scope: str, granted: tuple) -> None:
    assert issuer.grant(ACL, user, issuer.parse_scope(scope)).actions == granted


def test_password_hashes() -> None:
    stored = issuer.hash_password("correct horse")
    assert stored.startswith("scrypt$")
    assert "correct horse" not in stored
    assert issuer.check_password(stored, "correct horse")
    assert not issuer.check_password(stored, "correct hors")
    assert not issuer.check_password("md5$00$00", "correct horse")
    assert stored != issuer.hash_password("correct horse")  # salted
