"""deployer.tools.access.allows: which verbs one rule of a SelfSubjectRulesReview allows (RBAC's own
matching). A verb it does not allow is asked with its own SelfSubjectAccessReview (e2e/test_access_precheck.py
removes each verb of the Role on the real cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deployer.permissions import SHIP_RULES
from deployer.tools.access import allows

ROLE_FILE = Path(__file__).resolve().parents[3] / "e2e" / "rbac" / "deployer-role.yaml"
ASKED = [(verb, group, resource) for group, resource, verbs in SHIP_RULES for verb in verbs]


@pytest.mark.parametrize(
    ("rule", "asked", "allowed"),
    [
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, ("get", "", "pods"), True),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, ("list", "", "pods"), False),
        ({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["pods"]}, ("get", "", "pods"), False),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, ("get", "", "pods/log"), False),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}, ("get", "", "pods"), False),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}, ("get", "", "pods/log"), True),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]}, ("get", "", "pods/log"), True),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]}, ("get", "", "pods"), False),
        ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, ("delete", "apps", "deployments"), True),
        ({"verbs": ["*"], "apiGroups": ["apps"], "resources": ["*"]}, ("delete", "", "secrets"), False),
        # a rule for some objects only (resourceNames) does not allow the verb on the resource as a whole
        (
            {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["one"]},
            ("get", "", "secrets"),
            False,
        ),
        ({}, ("get", "", "pods"), False),
    ],
)
def test_one_rule(rule: dict, asked: tuple[str, str, str], allowed: bool) -> None:
    assert allows(rule, *asked) is allowed


def _role_rules() -> list[dict]:
    docs = yaml.safe_load_all(ROLE_FILE.read_text())
    return next(d for d in docs if d and d["kind"] == "Role")["rules"]


def test_the_role_ci_is_given_allows_every_verb_a_ship_asks() -> None:
    """As a rules review lists that Role, its rules alone answer the pre-check: no review per verb."""
    rules = _role_rules()
    assert [one for one in ASKED if not any(allows(rule, *one) for rule in rules)] == []


@pytest.mark.parametrize("missing", ASKED, ids=[f"{v}-{r}" for v, _, r in ASKED])
def test_a_verb_removed_from_the_role_is_the_only_one_left_to_ask(missing: tuple[str, str, str]) -> None:
    verb, group, resource = missing
    rules = [
        {**rule, "verbs": [v for v in rule["verbs"] if v != verb]}
        if group in rule["apiGroups"] and resource in rule["resources"]
        else rule
        for rule in _role_rules()
    ]
    assert [one for one in ASKED if not any(allows(rule, *one) for rule in rules)] == [missing]
