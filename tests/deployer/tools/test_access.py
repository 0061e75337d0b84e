"""deployer.tools.access: which verbs one rule of a SelfSubjectRulesReview allows (RBAC's own matching),
and which verbs are then asked with a SelfSubjectAccessReview of their own (against the two endpoints on
loopback; e2e/test_access_precheck.py removes each verb of the Role on the real cluster)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from deployer.permissions import SHIP_RULES
from deployer.tools.access import allows, denied

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


class _ApiServer:
    """The two review endpoints of an API server on loopback: a rules review answered with `rules`
    (or refused with 403 when None), access reviews allowed unless in `refused`; what was asked is kept."""

    def __init__(self, rules: dict | None, refused: set[tuple[str, str, str]]) -> None:
        self.asked: list[tuple[str, str, str]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if body["kind"] == "SelfSubjectRulesReview":
                    if rules is None:
                        self.send_response(403)
                        self.end_headers()
                        return
                    answer = {"status": rules}
                else:
                    attrs = body["spec"]["resourceAttributes"]
                    resource = attrs["resource"] + (
                        f"/{attrs['subresource']}" if "subresource" in attrs else ""
                    )
                    one = (attrs["verb"], attrs["group"], resource)
                    server.asked.append(one)
                    answer = {"status": {"allowed": one not in refused}}
                data = json.dumps(answer).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def kubeconfig(self, tmp_path: Path) -> Path:
        path = tmp_path / "kubeconfig"
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
            "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
            f"clusters: [{{name: k, cluster: {{server: 'http://127.0.0.1:{self.httpd.server_port}'}}}}]\n"
            "users: [{name: u, user: {token: not-a-secret}}]\n"
        )
        return path


@pytest.fixture
def api_server() -> Iterator[Callable[..., _ApiServer]]:
    made: list[_ApiServer] = []

    def make(rules: dict | None, refused: set[tuple[str, str, str]] = frozenset()) -> _ApiServer:
        made.append(_ApiServer(rules, set(refused)))
        return made[-1]

    yield make
    for server in made:
        server.httpd.shutdown()


def _rules(incomplete: bool) -> dict:
    return {"incomplete": incomplete, "resourceRules": _role_rules()}


def test_rules_that_cover_everything_answer_alone(api_server, tmp_path) -> None:
    server = api_server(_rules(incomplete=False))
    assert denied(server.kubeconfig(tmp_path), None, "ns", SHIP_RULES) == []
    assert server.asked == []


def test_a_verb_the_rules_do_not_cover_is_asked_and_its_review_decides(api_server, tmp_path) -> None:
    rules = _rules(incomplete=False)
    rules["resourceRules"] = [r for r in rules["resourceRules"] if "leases" not in r["resources"]]
    leases = [one for one in ASKED if one[2] == "leases"]
    server = api_server(rules, refused={leases[0]})
    assert denied(server.kubeconfig(tmp_path), None, "ns", SHIP_RULES) == [leases[0]]
    assert sorted(server.asked) == sorted(leases)  # asked side by side, in any order


@pytest.mark.parametrize("rules", [_rules(incomplete=True), None], ids=["incomplete", "refused"])
def test_without_a_complete_rules_review_every_verb_is_asked(api_server, tmp_path, rules) -> None:
    server = api_server(rules, refused={ASKED[3]})
    assert denied(server.kubeconfig(tmp_path), None, "ns", SHIP_RULES) == [ASKED[3]]
    assert sorted(server.asked) == sorted(ASKED)
