"""A missing permission stops `deployer ship` before anything is built or pushed (issue 11, item 5).

One namespace made by the admin, the ServiceAccount of e2e/rbac/deployer-role.yaml with a kubeconfig for
it (e2e/rbac/kubeconfig); then, one verb at a time, the Role without that verb and a ship with that
identity: exit 19 naming the verb, the resource and the namespace, and the report shows that the test,
build and push stages never ran. The ship stops at the pre-check (SelfSubjectAccessReviews during the
compile), so each case costs a few seconds; the full Role's ship is e2e/test_least_privilege.py.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from deployer.permissions import SHIP_RULES
from deployer.tools import access
from e2e.conftest import REPO
from e2e.shipping import DEPLOYER

pytestmark = [pytest.mark.cluster, pytest.mark.docker, pytest.mark.registry]

ROLE_FILE = REPO / "e2e" / "rbac" / "deployer-role.yaml"
MAKE_KUBECONFIG = REPO / "e2e" / "rbac" / "kubeconfig"
KUBECTL = "/var/cache/deployer/tools/bin/kubectl"
NODE_HELLO = REPO / "examples" / "node-hello"


def _role() -> dict:
    return next(d for d in yaml.safe_load_all(ROLE_FILE.read_text()) if d and d["kind"] == "Role")


def _role_rules() -> list[dict]:
    return _role()["rules"]


def test_the_pre_check_asks_for_exactly_the_role_ci_is_given() -> None:
    """deployer.permissions and the Role of e2e/rbac (documented in docs/least-privilege.md) are one list."""
    role = {
        (group, resource, verb)
        for rule in _role_rules()
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    asked = {(group, resource, verb) for group, resource, verbs in SHIP_RULES for verb in verbs}
    assert asked == role


VERBS = [(group, resource, verb) for group, resource, verbs in SHIP_RULES for verb in verbs]
# the CLI case: one verb per rule (each costs a `deployer ship` up to its pre-check, ~9 s here)
RULES = [(group, resource, verbs[-1]) for group, resource, verbs in SHIP_RULES]


class Identity:
    def __init__(self, admin: Path, api: Any, namespace: str, kubeconfig: Path) -> None:
        self.admin, self.api, self.namespace, self.kubeconfig = admin, api, namespace, kubeconfig

    def kubectl(self, *args: str, stdin: str | None = None) -> None:
        done = subprocess.run(
            [KUBECTL, "--kubeconfig", str(self.admin), *args],
            input=stdin, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    def role_without(self, group: str, resource: str, verb: str) -> None:
        role = copy.deepcopy(_role())
        for rule in role["rules"]:
            if group in rule["apiGroups"] and resource in rule["resources"]:
                rule["verbs"] = [v for v in rule["verbs"] if v != verb]
        role["rules"] = [rule for rule in role["rules"] if rule["verbs"]]
        self.replace_role(role)

    def replace_role(self, role: dict) -> None:
        # through the API client, not kubectl: a process per verb was most of this file's run time
        rbac = client.RbacAuthorizationV1Api(self.api)
        rbac.replace_namespaced_role(role["metadata"]["name"], self.namespace, role)


@pytest.fixture(scope="module")
def identity(
    cluster_kubeconfig: Path, kube: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Identity]:
    namespace = f"e2e-precheck-{uuid.uuid4().hex[:6]}"
    out = tmp_path_factory.mktemp("precheck") / "deployer.kubeconfig"
    made = Identity(cluster_kubeconfig, kube, namespace, out)
    made.kubectl("create", "namespace", namespace)
    try:
        env = {**os.environ, "ADMIN_KUBECONFIG": str(cluster_kubeconfig)}
        done = subprocess.run(
            [str(MAKE_KUBECONFIG), namespace, str(out)], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, done.stderr
        yield made
    finally:
        made.kubectl("delete", "namespace", namespace, "--wait=false")


def test_each_verb_removed_alone_is_the_one_the_pre_check_names(identity: Identity) -> None:
    """Every verb of the Role, one at a time: the reviews a ship asks find exactly that one missing."""
    assert access.denied(identity.kubeconfig, None, identity.namespace, SHIP_RULES) == []
    for group, resource, verb in VERBS:
        identity.role_without(group, resource, verb)
        found = access.denied(identity.kubeconfig, None, identity.namespace, SHIP_RULES)
        assert found == [(verb, group, resource)], (verb, resource, found)
    identity.replace_role(
        next(d for d in yaml.safe_load_all(ROLE_FILE.read_text()) if d and d["kind"] == "Role")
    )


@pytest.mark.parametrize(("group", "resource", "verb"), RULES, ids=[f"{v}-{r}" for _, r, v in RULES])
def test_one_verb_missing_stops_the_ship_before_anything_is_built(
    identity: Identity, tmp_path: Path, group: str, resource: str, verb: str
) -> None:
    identity.role_without(group, resource, verb)
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "DEPLOYER_KUBECONFIG")}
    argv = [
        DEPLOYER, "ship", str(NODE_HELLO), "--kubeconfig", str(identity.kubeconfig),
        "--namespace", identity.namespace, "--release", "precheck", "--report", str(report),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 19, output[-3000:]
    named = f"{group}/{resource}" if group else resource
    assert f"may not {verb} {named} in namespace '{identity.namespace}'" in output, output[-3000:]
    assert "stopped before building anything" in output
    steps = {stage["name"]: stage["status"] for stage in json.loads(report.read_text())["stages"]}
    # the pre-check's verdict is given where building would start (the test stage), nothing after it runs
    assert (steps["compile"], steps["test"]) == ("success", "failed"), steps
    assert [steps[name] for name in ("build", "push", "chart", "deploy")] == ["not-run"] * 4, steps
