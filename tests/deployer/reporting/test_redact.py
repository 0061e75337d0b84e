"""deployer.reporting.redact: registered secrets and credential-shaped values never survive (STYLE 4.4)."""

from __future__ import annotations

import base64

import pytest

from deployer.reporting import redact
from deployer.reporting.redact import MASK


@pytest.fixture(autouse=True)
def _clean():
    redact.clear()
    yield
    redact.clear()


def test_registered_secret_is_masked_everywhere():
    redact.register("pa55word-xyz")
    assert redact.redact("login with pa55word-xyz, again pa55word-xyz") == f"login with {MASK}, again {MASK}"


def test_base64_user_colon_secret_is_masked_too():
    redact.register("pa55word-xyz", user="deployer")
    token = base64.b64encode(b"deployer:pa55word-xyz").decode()
    assert redact.redact(f'{{"x": "{token}"}}') == f'{{"x": "{MASK}"}}'


def test_longest_secret_wins():
    redact.register("abcd")
    redact.register("abcdefgh")
    assert redact.redact("abcdefgh") == MASK


def test_short_and_empty_values_are_ignored():
    redact.register("on")
    redact.register("")
    redact.register(None)
    assert redact.registered() == frozenset()
    assert redact.redact("turn it on") == "turn it on"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://bob:hunter22@registry.example/v2/", f"https://bob:{MASK}@registry.example/v2/"),
        ("Authorization: Basic Ym9iOmh1bnRlcjIy", f"Authorization: Basic {MASK}"),
        ("authorization: bearer abc.def.ghi", f"authorization: bearer {MASK}"),
        ("REGISTRY_PASSWORD=hunter22", f"REGISTRY_PASSWORD={MASK}"),
        ("--password=hunter22 --user bob", f"--password={MASK} --user bob"),
        ('"auth": "Ym9iOmh1bnRlcjIy"', f'"auth": "{MASK}"'),
        ("token: abc123", f"token: {MASK}"),
        ("  secret: abc123", f"  secret: {MASK}"),
    ],
)
def test_credential_shapes_are_masked(text, expected):
    assert redact.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "docker login --password-stdin",
        "author: Jane",
        'secret "db-creds" not found',
        "auth.user.name=deployer",
        "no tokens here",
        f"password: {MASK}",
        # JSON structure after a credential-like key (helm --output json of a secretEnv entry): parseable
        '{"GREETING_TOKEN":{"key":"token"},"DB_PASSWORDS":["a"],"AUTH":{}}',
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert redact.redact(text) == text


def test_redact_argv_masks_the_value_after_password_flags():
    redact.register("hunter22x")
    argv = ["tool", "-p", "whatever", "--password", "x1", "--user", "bob", "hunter22x"]
    assert redact.redact_argv(argv) == ["tool", "-p", MASK, "--password", MASK, "--user", "bob", MASK]


def test_empty_text():
    assert redact.redact("") == ""
