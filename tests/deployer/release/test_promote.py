"""`deployer promote`'s decisions (deployer.release.promote, deployer.release.passed): which digest may go
from one environment to the next, what refuses it, what --force overrides, and the record of a pass.

The whole promote on the real registry and cluster: e2e/test_promote.py.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from deployer.errors import DeployFailed, ExitCode
from deployer.release import passed
from deployer.release.passed import Pass
from deployer.release.promote import PromotionRefused, SourceRelease, decide, values_overlay

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
REPO = "registry.team.test:5443/staging/node-hello"


def _source(**changes: object) -> SourceRelease:
    fields: dict[str, object] = {
        "environment": "staging",
        "namespace": "node-hello",
        "release": "node-hello",
        "helm_status": "deployed",
        "image": f"{REPO}@{D1}",
        "healthy": True,
        "ready": "1/1",
        "passes": (Pass(D1, "staging", 3, "2026-12-03T12:00:00+00:00"),),
    }
    return SourceRelease(**(fields | changes))  # type: ignore[arg-type]


def test_a_deployed_healthy_passed_digest_is_promoted() -> None:
    decision = decide(_source(), force=False, service="examples/node-hello")
    assert (decision.repository, decision.digest, decision.forced) == (REPO, D1, ())
    assert decision.passed == Pass(D1, "staging", 3, "2026-12-03T12:00:00+00:00")
    assert decision.pinned == f"{REPO}@{D1}"


def test_an_older_pass_of_the_running_digest_counts() -> None:
    # D1 passed, then D2 passed, then `deployer rollback` went back to D1: D1 did pass here
    passes = (Pass(D2, "staging", 4), Pass(D1, "staging", 3))
    assert decide(_source(passes=passes), force=False, service="svc").passed == Pass(D1, "staging", 3)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"passes": ()},
            "it has no record of passing smoke checks in staging (shipped with --skip-smoke, without smoke "
            "checks, or they failed)",
        ),
        ({"passes": (Pass(D2, "staging"),)}, "it has no record of passing smoke checks in staging"),
        ({"passes": (Pass(D1, "qa"),)}, "it passed its smoke checks only in qa, never in staging"),
        ({"healthy": False, "ready": "0/2"}, "its pods are not healthy (0/2 ready)"),
        ({"helm_status": "failed"}, "helm says the release is failed, not deployed"),
    ],
)
def test_an_untested_digest_is_refused_naming_why_and_force(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(PromotionRefused) as caught:
        decide(_source(**changes), force=False, service="examples/node-hello")
    err = caught.value
    assert err.exit_code == ExitCode.POLICY
    assert err.message.startswith(f"refusing to promote {D1} from staging: ")
    assert reason in err.message
    assert err.hint == (
        "ship it to staging with its smoke checks (deployer ship examples/node-hello --env staging), then "
        "promote again; or promote it untested with --force"
    )


def test_every_reason_is_named_at_once() -> None:
    with pytest.raises(PromotionRefused) as caught:
        decide(_source(passes=(), healthy=False, ready="0/1"), force=False, service="svc")
    assert caught.value.details["source"]["refused"] == [
        "its pods are not healthy (0/1 ready)",
        "it has no record of passing smoke checks in staging (shipped with --skip-smoke, without smoke "
        "checks, or they failed)",
    ]


def test_force_promotes_and_keeps_what_it_overrode() -> None:
    decision = decide(_source(passes=(), helm_status="failed"), force=True, service="svc")
    assert decision.digest == D1
    assert decision.passed is None
    assert decision.forced == (
        "helm says the release is failed, not deployed",
        "it has no record of passing smoke checks in staging (shipped with --skip-smoke, without smoke "
        "checks, or they failed)",
    )


@pytest.mark.parametrize("image", [None, f"{REPO}:20261203T120000Z-production"])
def test_a_release_without_a_digest_cannot_be_promoted_even_forced(image: str | None) -> None:
    with pytest.raises(DeployFailed) as caught:
        decide(_source(image=image), force=True, service="svc")
    assert caught.value.exit_code == ExitCode.DEPLOY
    assert "runs no image by digest" in caught.value.message
    assert caught.value.hint == "ship it there first: deployer ship svc --env staging"


# --- the record --------------------------------------------------------------------------------------------


def test_a_pass_goes_first_replaces_its_older_entry_and_the_list_is_bounded() -> None:
    old = [Pass(f"sha256:{n:064x}", "staging", n) for n in range(passed.KEEP)]
    again = Pass(old[3].digest, "staging", 99)
    updated = passed.with_pass(old, again)
    assert updated[0] == again
    assert len(updated) == passed.KEEP
    assert [p.digest for p in updated].count(again.digest) == 1
    new = Pass(D1, "staging", 100)
    assert passed.with_pass(updated, new)[0] == new
    assert old[-1] not in passed.with_pass(old, new)  # the oldest falls off


def test_the_record_round_trips_through_the_annotation() -> None:
    entries = [Pass(D1, "staging", 2, "2026-12-03T12:00:00+00:00"), Pass(D2, "production", None, "")]
    text = json.dumps([p.to_json() for p in entries])
    assert passed.parse({passed.ANNOTATION: text, "other": "x"}) == entries


@pytest.mark.parametrize(
    "text", ["", "not json", '{"digest": "x"}', '[{"environment": "staging"}]', '[{"digest": "sha256:1"}]']
)
def test_a_missing_or_mangled_record_vouches_for_nothing(text: str) -> None:
    assert passed.parse({passed.ANNOTATION: text}) == []
    assert passed.parse(None) == []


def test_passed_in_matches_digest_and_environment() -> None:
    passes = [Pass(D1, "production"), Pass(D1, "staging", 1), Pass(D2, "staging", 2)]
    assert passed.passed_in(passes, D1, "staging") == Pass(D1, "staging", 1)
    assert passed.passed_in(passes, D2, "production") is None


# --- the target environment's values ---------------------------------------------------------------------


def test_the_overlay_holds_only_what_belongs_to_the_environment() -> None:
    deploy = SimpleNamespace(replicas=2, resources={"limits": {"cpu": "1"}, "requests": {"cpu": "100m"}})
    overlay = values_overlay(
        "registry.team.test:5443/production/node-hello", D1, "t1", pull_secrets=["deployer-registry"],
        deploy=deploy,
    )  # fmt: skip
    assert overlay == {
        "image": {"repository": "registry.team.test:5443/production/node-hello", "digest": D1, "tag": "t1"},
        "imagePullSecrets": ["deployer-registry"],
        "replicaCount": 2,
        "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "100m"}},
    }


class _Apps:
    """AppsV1Api at its seam: one Deployment's annotations, and the patches sent."""

    def __init__(self, annotations: dict[str, str] | None, refuse: int | None = None) -> None:
        self.annotations = annotations
        self.refuse = refuse
        self.patches: list[dict[str, object]] = []

    def read_namespaced_deployment(self, name: str, namespace: str) -> SimpleNamespace:
        return SimpleNamespace(metadata=SimpleNamespace(annotations=self.annotations))

    def patch_namespaced_deployment(self, name: str, namespace: str, body: dict[str, object]) -> None:
        if self.refuse:
            from kubernetes.client import ApiException

            raise ApiException(status=self.refuse, reason="Forbidden")
        self.patches.append({"name": name, "namespace": namespace, "body": body})


def test_record_adds_the_pass_to_what_the_deployment_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    import kubernetes.client

    before = json.dumps([Pass(D2, "staging", 1).to_json()])
    apps = _Apps({passed.ANNOTATION: before, "deployment.kubernetes.io/revision": "1"})
    monkeypatch.setattr(kubernetes.client, "AppsV1Api", lambda api: apps)
    result = passed.record(object(), "ns", "hello", D1, "staging", revision=2)
    assert result == {
        "recorded": True,
        "environment": "staging",
        "digest": D1,
        "detail": "deployer/passed on deployment hello",
    }
    (patch,) = apps.patches
    assert (patch["name"], patch["namespace"]) == ("hello", "ns")
    written = patch["body"]["metadata"]["annotations"]  # type: ignore[index]
    assert list(written) == [passed.ANNOTATION]  # helm's and Kubernetes' own annotations untouched
    assert [(p.digest, p.revision) for p in passed.parse(written)] == [(D1, 2), (D2, 1)]


def test_a_record_the_cluster_refuses_is_said_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    import kubernetes.client

    monkeypatch.setattr(kubernetes.client, "AppsV1Api", lambda api: _Apps(None, refuse=403))
    result = passed.record(object(), "ns", "hello", D1, "staging")
    assert result["recorded"] is False
    assert result["detail"] == "cannot annotate deployment hello: Forbidden (403)"


# --- the copy step's checks before anything lands in the target environment -------------------------------


def test_a_verb_the_target_identity_lacks_stops_the_copy_before_any_registry_call(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from pathlib import Path

    from deployer.errors import EnvironmentMissing
    from deployer.release import promote_steps
    from deployer.ship.context import ShipState
    from deployer.target import LOCAL, Target
    from deployer.tools import access
    from deployer.workflow import StepContext

    asked: list[tuple[str, object]] = []

    def denied(kubeconfig: Path, context: str | None, namespace: str, rules: object) -> list[tuple[str, ...]]:
        asked.append((namespace, rules))
        return [("patch", "apps", "deployments")]

    def no_registry(registry: object) -> object:
        raise AssertionError("the registry was called before the permissions were known")

    monkeypatch.setattr(access, "denied", denied)
    monkeypatch.setattr(promote_steps, "_client", no_registry)
    production = Target(LOCAL, Path("/nonexistent/kubeconfig"), None, LOCAL.registry)
    promote = promote_steps.PromoteConfig(service="svc", source=production, target=production)
    state = ShipState(workdir=Path(str(tmp_path)))
    state.deploy = SimpleNamespace(namespace="svc-production", release="svc")  # type: ignore[assignment]
    found = promote_steps.Promotion(decision=decide(_source(), force=False, service="svc"))
    ctx = StepContext(promote.ship_config(), state)
    with pytest.raises(EnvironmentMissing) as caught:
        promote_steps.step_copy(ctx, promote, found)
    assert caught.value.message == (
        "the cluster identity of local may not patch apps/deployments in namespace 'svc-production'; "
        "nothing was copied"
    )
    assert [namespace for namespace, _ in asked] == ["svc-production"]


def test_a_promote_s_junit_names_its_stages_and_has_no_test_variant_suite(tmp_path: object) -> None:
    from pathlib import Path

    from junitparser import JUnitXml

    from deployer.release.promote_steps import STAGES
    from deployer.reporting.junit import write_junit
    from deployer.workflow import Status, StepResult, WorkflowRun

    smoke = [{"name": "helm test", "kind": "helm-test", "status": "passed", "detail": "ok",
              "duration_seconds": 1.0}]  # fmt: skip
    details = {"smoke": {"smoke": smoke}}
    results = tuple(StepResult(name, Status.SUCCESS, details=details.get(name, {})) for name in STAGES)
    path = Path(str(tmp_path)) / "promote.xml"
    write_junit(path, WorkflowRun(results, 3.0), "node-hello", command="promote")
    xml = JUnitXml.fromfile(str(path))
    suites = {suite.name: [case.name for case in suite] for suite in xml}
    assert suites == {"node-hello.smoke": ["helm test"], "node-hello.promote": list(STAGES)}
    assert path.read_text().count('name="deployer promote node-hello"') == 1


def test_status_says_a_revision_was_promoted_and_from_where() -> None:
    from deployer.release.status import last_ship
    from deployer.tools.helm import Revision

    image = f"registry.team.test:5443/production/node-hello@{D1}"
    history = [
        Revision(1, "superseded", "node-hello-0.0.1", "t1", f"deployer ship {image}"),
        Revision(2, "deployed", "node-hello-0.0.2", "t2", f"deployer promote {image} from staging"),
    ]
    assert last_ship(history) == f"revision 2 ({image} from staging) promoted, now deployed"
    assert last_ship(history[:1]) == f"revision 1 ({image}) shipped, now superseded"


def test_promote_to_the_environment_it_comes_from_is_a_usage_error() -> None:
    from click.testing import CliRunner

    from deployer import cli

    result = CliRunner().invoke(cli.main, ["promote", "svc", "--from", "staging", "--to", "staging"])
    assert result.exit_code == ExitCode.USAGE
    assert "--from and --to both name 'staging': promote goes from one environment to another" in (
        result.output
    )


def test_two_environments_that_resolve_to_one_release_are_a_config_error() -> None:
    from dataclasses import replace
    from pathlib import Path

    from deployer.errors import ConfigError
    from deployer.release.promote_steps import _not_the_same_release
    from deployer.target import LOCAL, Target

    staging = Target(replace(LOCAL, name="staging"), Path("/k"), None, LOCAL.registry)
    production = Target(replace(LOCAL, name="production", file="deployer.yaml", line=9), Path("/k"), None,
                        LOCAL.registry)  # fmt: skip
    _not_the_same_release(staging, production, "svc", "svc-production", "svc")  # different namespaces
    elsewhere = replace(production, kubeconfig=Path("/other"))
    _not_the_same_release(staging, elsewhere, "svc", "svc", "svc")  # another cluster
    with pytest.raises(ConfigError) as caught:
        _not_the_same_release(staging, production, "svc", "svc", "svc")
    assert str(caught.value).startswith(
        "deployer.yaml:9: environments.production.cluster.namespace: staging and production resolve to the "
        "same release: svc in namespace svc of the same cluster; a promote would replace what it promotes"
    )
