"""The rollout watcher against the real cluster: Deployments applied with the client, verdicts checked.

Each test gets its own namespace (random suffix, deleted without waiting). The scenarios are the ones
the unit-test fixtures were recorded from (tests/resources/k8s/scenarios.py); images come from the
build stack's registry.
"""

from __future__ import annotations

import copy
import secrets
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from deployer.rollout import FailurePolicy, feed, watch_rollout
from tests.conftest import require
from tests.resources.k8s.scenarios import REGISTRY, deployment

pytestmark = [pytest.mark.cluster, pytest.mark.registry]


def _registry_up() -> bool:
    try:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=3):
            return True
    except urllib.error.HTTPError as e:
        return e.code == 401
    except OSError:
        return False


@pytest.fixture
def namespace(kube: client.ApiClient) -> Iterator[str]:
    require("registry", _registry_up(), "scripts/stack up")
    core = client.CoreV1Api(kube)
    ns = f"e2e-rollout-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": ns}})
    yield ns
    core.delete_namespace(ns, grace_period_seconds=0)


def _deploy(kube: client.ApiClient, ns: str, scenario: str, **kw) -> datetime:
    since = datetime.now(UTC)
    client.AppsV1Api(kube).create_namespaced_deployment(ns, deployment("web", scenario, **kw))
    return since


def test_healthy_rollout(kube, namespace) -> None:
    since = _deploy(kube, namespace, "healthy", replicas=2)
    events: list[feed.RolloutEvent] = []
    verdict = watch_rollout(kube, namespace, "web", timeout=120, since=since, on_event=events.append)
    assert verdict.healthy, verdict.summary()
    assert verdict.reason == "Available"
    assert verdict.message == "deployment web successfully rolled out (2/2 available)"
    assert sum(isinstance(e, feed.PodReady) for e in events) == 2
    dep = client.AppsV1Api(kube).read_namespaced_deployment("web", namespace)
    assert dep.status.available_replicas == 2  # the cluster agrees


def test_crashloop_is_diagnosed_with_its_log(kube, namespace) -> None:
    since = _deploy(kube, namespace, "crashloop")
    verdict = watch_rollout(kube, namespace, "web", timeout=120, since=since)
    assert not verdict.healthy
    assert (verdict.reason, verdict.rule, verdict.container, verdict.exit_code) == (
        "Error",
        "2 exits, budget 2",
        "app",
        3,
    )
    assert verdict.pod and verdict.pod.startswith("web-")
    # stdout and stderr are separate streams: their lines may interleave either way.
    assert sorted(verdict.log_tail) == ["fatal: no config", "starting up"]


def test_crashloop_with_kubelet_back_off_when_exits_are_forgiven(kube, namespace) -> None:
    # With a large exit budget, the kubelet's CrashLoopBackOff is what fails it.
    since = _deploy(kube, namespace, "crashloop")
    verdict = watch_rollout(
        kube, namespace, "web", timeout=120, since=since, policy=FailurePolicy(max_exits=99)
    )
    assert (verdict.reason, verdict.rule) == ("CrashLoopBackOff", "back-off")
    assert verdict.message.startswith("last exit: Error (exit code 3); back-off")
    # stdout and stderr are separate streams: their lines may interleave either way.
    assert sorted(verdict.log_tail) == ["fatal: no config", "starting up"]  # the previous run's log


def test_unpullable_image(kube, namespace) -> None:
    since = _deploy(kube, namespace, "imagepull")
    verdict = watch_rollout(kube, namespace, "web", timeout=120, since=since)
    assert (verdict.reason, verdict.rule) == ("ErrImagePull", "definitive")
    assert verdict.message.endswith("127.0.0.1:5000/e2e/does-not-exist:never-pushed: not found")
    assert verdict.hint.startswith("the image does not exist in the registry")
    assert verdict.log_tail == []


def test_readiness_never_passing(kube, namespace) -> None:
    since = _deploy(kube, namespace, "notready")
    verdict = watch_rollout(kube, namespace, "web", timeout=120, since=since)
    assert (verdict.reason, verdict.rule) == ("ReadinessProbeFailed", "grace")
    assert verdict.message.endswith("its probes allow 4s")
    # The kubelet reports the first failed probe about a second after start, the verdict comes after 4 s.
    unhealthy = [line for line in verdict.warning_events if ": Unhealthy: Readiness probe failed: " in line]
    assert unhealthy and unhealthy[0].startswith(f"pod/{verdict.pod}: ")
    assert "8081" in unhealthy[0]


def test_progress_deadline(kube, namespace) -> None:
    since = _deploy(kube, namespace, "deadline")
    verdict = watch_rollout(kube, namespace, "web", timeout=120, since=since)
    assert (verdict.reason, verdict.object) == ("ProgressDeadlineExceeded", "deployment/web")
    assert verdict.message.endswith("has timed out progressing.")


def test_unschedulable(kube, namespace) -> None:
    since = _deploy(kube, namespace, "unschedulable")
    verdict = watch_rollout(
        kube, namespace, "web", timeout=120, since=since, policy=FailurePolicy(unschedulable_grace=2)
    )
    assert verdict.reason == "Unschedulable"
    assert "didn't match Pod's node affinity/selector" in verdict.message


def test_missing_command(kube, namespace) -> None:
    since = _deploy(kube, namespace, "nocommand")
    verdict = watch_rollout(kube, namespace, "web", timeout=120, since=since)
    assert (verdict.reason, verdict.rule) == ("RunContainerError", "definitive")
    assert "/no/such/binary" in verdict.message


def test_broken_upgrade_fails_on_the_new_pods_while_old_ones_serve(kube, namespace) -> None:
    apps = client.AppsV1Api(kube)
    _deploy(kube, namespace, "healthy", replicas=2)
    assert watch_rollout(kube, namespace, "web", timeout=120).healthy
    old_pods = {
        p.metadata.name
        for p in client.CoreV1Api(kube).list_namespaced_pod(namespace, label_selector="app=web").items
    }
    since = datetime.now(UTC)
    apps.replace_namespaced_deployment("web", namespace, deployment("web", "crashloop", replicas=2))
    verdict = watch_rollout(kube, namespace, "web", timeout=120, since=since)
    assert verdict.reason == "Error" and verdict.revision == 2
    assert verdict.pod not in old_pods
    ready_old = [
        p
        for p in client.CoreV1Api(kube).list_namespaced_pod(namespace, label_selector="app=web").items
        if p.metadata.name in old_pods
        and p.status.container_statuses
        and p.status.container_statuses[0].ready
    ]
    assert ready_old, "the rolling update keeps old pods serving while the new ones crash"


# --- upgrades the way `deployer ship` does them: the chart's strategy (maxSurge 1, maxUnavailable 0), a
# readiness probe on a path the server answers 404 (/never-ready), the watch started after the apply with
# the generation the apply produced.

_CHART_STRATEGY = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def _web(
    *, never_ready: bool = False, replicas: int = 1, marker: str = "1", stubborn: bool = False
) -> dict[str, Any]:
    """The healthy scenario with the chart's strategy; `stubborn` pods ignore SIGTERM for 20 s."""
    manifest = deployment("web", "healthy", replicas=replicas)
    manifest["spec"]["strategy"] = copy.deepcopy(_CHART_STRATEGY)
    pod = manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    container["env"] = [{"name": "DEPLOY_MARKER", "value": marker}]  # a new template on every apply
    if stubborn:
        # An ignored signal stays ignored across exec: the server lingers until the kubelet kills it.
        container["command"] = ["sh", "-c", "trap '' TERM; exec python3 -m http.server 8080"]
        pod["terminationGracePeriodSeconds"] = 20
    if never_ready:
        container["readinessProbe"]["httpGet"]["path"] = "/never-ready"
    return manifest


def _apply(kube: client.ApiClient, ns: str, manifest: dict[str, Any]) -> tuple[datetime, int]:
    """(when the apply began, the generation it produced), what `deployer ship` knows after helm."""
    apps = client.AppsV1Api(kube)
    since = datetime.now(UTC)
    try:
        applied = apps.replace_namespaced_deployment("web", ns, manifest)
    except client.ApiException as e:
        if e.status != 404:
            raise
        applied = apps.create_namespaced_deployment(ns, manifest)
    return since, applied.metadata.generation


def _pods(kube: client.ApiClient, ns: str) -> list[client.V1Pod]:
    return client.CoreV1Api(kube).list_namespaced_pod(ns, label_selector="app=web").items


def test_upgrade_to_a_never_ready_probe_path_fails_on_the_new_pod(kube, namespace) -> None:
    since, generation = _apply(kube, namespace, _web())
    assert watch_rollout(kube, namespace, "web", timeout=120, since=since, generation=generation).healthy
    old_pods = {p.metadata.name for p in _pods(kube, namespace)}

    since, generation = _apply(kube, namespace, _web(never_ready=True, marker="2"))
    assert generation == 2
    events: list[feed.RolloutEvent] = []
    verdict = watch_rollout(
        kube, namespace, "web", timeout=120, since=since, generation=generation, on_event=events.append
    )
    assert not verdict.healthy, [e.text() for e in events]
    assert (verdict.reason, verdict.rule, verdict.revision) == ("ReadinessProbeFailed", "grace", 2)
    assert verdict.pod not in old_pods
    assert not any(isinstance(e, feed.RolloutSucceeded) for e in events)
    unhealthy = [line for line in verdict.warning_events if ": Unhealthy: Readiness probe failed: " in line]
    # A loaded node may probe before the app listens (connection refused) before it answers 404.
    assert any("statuscode: 404" in line for line in unhealthy), unhealthy
    serving = [p.metadata.name for p in _pods(kube, namespace) if p.metadata.name in old_pods]
    assert serving, "maxUnavailable 0 keeps the old pod while the new one is not ready"


def test_first_install_with_a_never_ready_probe_path_fails(kube, namespace) -> None:
    since, generation = _apply(kube, namespace, _web(never_ready=True))
    assert generation == 1
    verdict = watch_rollout(kube, namespace, "web", timeout=120, since=since, generation=generation)
    assert (verdict.healthy, verdict.reason, verdict.revision) == (False, "ReadinessProbeFailed", 1)


def test_watch_started_before_the_apply_waits_for_the_deploys_generation(kube, namespace) -> None:
    # The watcher's first lists may show the complete previous revision; given the generation the
    # deploy produces, it waits for that one instead of calling the old rollout healthy.
    since, generation = _apply(kube, namespace, _web())
    assert watch_rollout(kube, namespace, "web", timeout=120, since=since, generation=generation).healthy
    verdicts: list[Any] = []
    early = threading.Thread(
        target=lambda: verdicts.append(
            watch_rollout(kube, namespace, "web", timeout=120, since=since, generation=generation + 1)
        )
    )
    early.start()
    _apply(kube, namespace, _web(never_ready=True, marker="2"))
    early.join(timeout=150)
    (verdict,) = verdicts
    assert (verdict.healthy, verdict.reason, verdict.revision) == (False, "ReadinessProbeFailed", 2)


@pytest.mark.parametrize("strategy", ["chart", "default"])
def test_healthy_upgrade_succeeds_while_old_pods_terminate(kube, namespace, strategy: str) -> None:
    # The old pods stay Terminating for 20 s after they are told to stop, then are killed: neither their
    # lingering nor their exit may hold up or fail the new revision.
    since, generation = _apply(kube, namespace, _web(replicas=2, stubborn=True))
    assert watch_rollout(kube, namespace, "web", timeout=120, since=since, generation=generation).healthy
    old_pods = {p.metadata.name for p in _pods(kube, namespace)}
    manifest = _web(replicas=2, marker="2", stubborn=True)
    if strategy == "default":
        del manifest["spec"]["strategy"]  # 25 % / 25 %: an old pod goes before the new ones are ready
    since, generation = _apply(kube, namespace, manifest)
    events: list[feed.RolloutEvent] = []
    verdict = watch_rollout(
        kube, namespace, "web", timeout=120, since=since, generation=generation, on_event=events.append
    )
    assert verdict.healthy, verdict.summary()
    assert verdict.revision == 2
    assert verdict.message == "deployment web successfully rolled out (2/2 available)"
    new = [p for p in _pods(kube, namespace) if p.metadata.name not in old_pods]
    ready = [
        p for p in new if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]
    assert len(ready) == 2 and all(p.metadata.name.startswith(verdict.replicaset) for p in ready)


def test_rollout_of_another_image_than_the_deployed_one_fails(kube, namespace) -> None:
    # What another deploy put there (e.g. a chart whose version tag it overwrote) rolls out fine, but it
    # is not what this deploy applied: the watch says so instead of reporting success.
    since, generation = _apply(kube, namespace, _web())
    ours = {"app": "127.0.0.1:5000/staging/web@sha256:" + "0" * 64}
    verdict = watch_rollout(
        kube, namespace, "web", timeout=120, since=since, generation=generation, images=ours
    )
    assert (verdict.healthy, verdict.reason, verdict.object) == (False, "UnexpectedImage", "deployment/web")
    assert "runs 127.0.0.1:5000/base/python3:12" in verdict.message
