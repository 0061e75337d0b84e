"""The rollout watcher against the real cluster: Deployments applied with the client, verdicts checked.

Each test gets its own namespace (random suffix, deleted without waiting). The scenarios are the ones
the unit-test fixtures were recorded from (tests/resources/k8s/scenarios.py); images come from the
build stack's registry.
"""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime

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
