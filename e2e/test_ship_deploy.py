"""The deploy half of `deployer ship` on the real cluster: chart → registry → helm → rollout → smoke checks.

Each test ships the real node-hello image (built from examples/node-hello with blubber, pushed to the build
stack's registry) into its own namespace, through the same modules `deployer ship` uses: deploy_config,
chart (render + publish as OCI artifact), lock (Lease), helm (recover pending, upgrade --install from the
registry), rollout (watch) and smoke (helm test + HTTP over port-forward). Nothing is faked.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from deployer.policies import BLUBBER as BLUBBER_POLICY
from kubernetes import client

from blubber import load as load_blubber
from blubber import runtime
from deployer import chart, deploy_config, smoke
from deployer.chart import ImageRef
from deployer.errors import SmokeFailed
from deployer.release.lock import ReleaseLock, ShipInProgress
from deployer.rollout import watch_rollout
from deployer.tools import portforward
from deployer.tools.helm import Helm, Recovery
from e2e.conftest import REPO, Registry
from e2e.localcluster.configs import registry_credentials

pytestmark = [pytest.mark.cluster, pytest.mark.registry, pytest.mark.slow]

NODE_HELLO = REPO / "examples" / "node-hello"


@pytest.fixture(scope="module")
def node_hello_image(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> ImageRef:
    """node-hello's production variant, built with blubber's Dockerfile and pushed; by digest."""
    from blubber import compile_dockerfile

    dockerfile = tmp_path_factory.mktemp("node-hello") / "Dockerfile"
    config = load_blubber(NODE_HELLO / ".pipeline" / "blubber.yaml", policy=BLUBBER_POLICY)
    dockerfile.write_text(compile_dockerfile(config, "production"))
    tag = f"{registry.host}/staging/node-hello:e2e-ship-production"
    build = registry.docker(
        "build", "--network", "host", "-f", str(dockerfile), "-t", tag, ".", cwd=NODE_HELLO
    )
    assert build.returncode == 0, build.stderr[-3000:]
    push = registry.docker("push", tag)
    assert push.returncode == 0, push.stderr[-3000:]
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", push.stdout)
    assert digest, push.stdout
    return ImageRef(f"{registry.host}/staging/node-hello", digest.group(1), "e2e-ship-production")


@dataclass
class Target:
    """One test's namespace on the cluster, with a helm logged in to the registry."""

    api: client.ApiClient
    helm: Helm
    namespace: str
    work: Path


@pytest.fixture
def target(kube: client.ApiClient, cluster_kubeconfig: Path, tmp_path: Path) -> Iterator[Target]:
    creds = registry_credentials()
    assert creds is not None
    namespace = f"e2e-ship-{uuid.uuid4().hex[:6]}"
    helm = Helm(kubeconfig=cluster_kubeconfig, registry_config=tmp_path / "registry.json", timeout=120)
    helm.registry_login("127.0.0.1:5000", creds[0], creds[1], insecure=True)
    yield Target(kube, helm, namespace, tmp_path)
    client.CoreV1Api(kube).delete_namespace(namespace, propagation_policy="Background")


def service_dir(target: Target, deploy_yaml: str, copy: str = "main") -> Path:
    """A copy of node-hello's .pipeline with the test's deploy.yaml (namespace forced to the test's)."""
    root = target.work / copy / "node-hello"
    (root / ".pipeline").mkdir(parents=True, exist_ok=True)
    shutil.copy(NODE_HELLO / ".pipeline" / "blubber.yaml", root / ".pipeline" / "blubber.yaml")
    (root / ".pipeline" / "deploy.yaml").write_text(f"namespace: {target.namespace}\n{deploy_yaml}")
    return root


@dataclass
class Shipped:
    config: deploy_config.DeployConfig
    published: chart.PublishedChart
    recovery: Recovery
    revision: int
    healthy: bool
    smoke: list[smoke.CheckResult]
    verdict: list[str]  # the watcher's failure summary (empty when healthy)


def ship(target: Target, service: Path, image: ImageRef, *, lock_holder: str | None = None) -> Shipped:
    """The deploy stage of `deployer ship`: render, publish, lock, recover, upgrade, watch, smoke."""
    policy = deploy_config.load_policy()
    config = deploy_config.load(service, policy)
    blubber_file = service / ".pipeline" / "blubber.yaml"
    facts = runtime(load_blubber(blubber_file, policy=BLUBBER_POLICY), config.variant)
    values = chart.render_values(config, facts, image, policy=policy, blubber_file=str(blubber_file))
    rendered = chart.write_chart(target.work / "charts", config.release, chart.chart_version(), values)
    published = chart.publish(rendered, target.helm, destination=target.work)
    with ReleaseLock(target.api, config.namespace, config.release, holder=lock_holder):
        recovery = target.helm.recover_pending(config.release, config.namespace)
        since = datetime.now(UTC)
        release = target.helm.upgrade_install(
            config.release, config.namespace, published.reference, version=published.version, plain_http=True
        )
        verdict = watch_rollout(
            target.api, config.namespace, config.release, timeout=config.timeouts.rollout, since=since
        )
        results: list[smoke.CheckResult] = []
        if verdict.healthy:
            selector = f"app.kubernetes.io/instance={config.release},app.kubernetes.io/component=server"
            pod = portforward.ready_pod(target.api, config.namespace, selector)

            def get(path: str, timeout: float) -> tuple[int, bytes]:
                answer = portforward.http_get(
                    target.api, config.namespace, pod, config.port, path, timeout=timeout
                )
                return answer.status, answer.body

            def helm_test(release: str, namespace: str, timeout: int) -> str:
                return target.helm.test(release, namespace, timeout=timeout)

            results = smoke.run_checks(config, helm_test=helm_test, http_get=get)
    return Shipped(config, published, recovery, release.revision, verdict.healthy, results, verdict.summary())


HEALTHY = """
probes:
  readiness: {path: /healthz, periodSeconds: 1}
smoke:
  checks:
    - {name: root, path: /, body: hello from node-hello}
    - {name: health, path: /healthz, body: '"ok"'}
"""


def test_healthy_ship_of_node_hello(target: Target, node_hello_image: ImageRef) -> None:
    shipped = ship(target, service_dir(target, HEALTHY), node_hello_image)

    assert shipped.healthy, shipped.verdict
    assert (shipped.revision, shipped.recovery.action) == (1, "none")
    assert [(r.name, r.passed) for r in shipped.smoke] == [
        ("helm-test", True),
        ("root", True),
        ("health", True),
    ]
    # The pods run the pushed image by digest, as blubber's runtime user, in its working directory.
    pods = client.CoreV1Api(target.api).list_namespaced_pod(
        target.namespace, label_selector="app.kubernetes.io/component=server"
    )
    (pod,) = pods.items
    (container,) = pod.spec.containers
    assert container.image == node_hello_image.pinned
    assert container.security_context.run_as_user == 900
    assert container.security_context.run_as_non_root is True
    assert container.security_context.capabilities.drop == ["ALL"]
    assert container.working_dir == "/srv/app"
    assert pod.status.container_statuses[0].image_id.endswith(node_hello_image.digest)
    # The release came from the chart in the registry, pinned by its version.
    (revision,) = target.helm.history("node-hello", target.namespace)
    assert (revision.status, revision.chart) == ("deployed", f"node-hello-{shipped.published.version}")
    # The lock is gone once the ship is over.
    leases = client.CoordinationV1Api(target.api).list_namespaced_lease(target.namespace)
    assert [lease.metadata.name for lease in leases.items] == []


def test_failing_smoke_checks_are_reported_one_by_one(target: Target, node_hello_image: ImageRef) -> None:
    service = service_dir(
        target,
        """
smoke:
  testPath: /no-such-page
  checks:
    - {name: root, path: /, body: hello from node-hello}
    - {name: greeting, path: /, body: goodbye}
    - {name: missing, path: /missing}
""",
    )
    with pytest.raises(SmokeFailed) as info:
        ship(target, service, node_hello_image)

    results = {r.name: r for r in info.value.results}  # type: ignore[attr-defined]
    assert {name: r.passed for name, r in results.items()} == {
        "helm-test": False,
        "root": True,
        "greeting": False,
        "missing": False,
    }
    assert "404" in results["helm-test"].output  # the test pod's own log line, via helm test --logs
    assert results["greeting"].message == "GET /: status 200 but body does not contain 'goodbye'"
    assert results["missing"].message == "GET /missing: status 404, expected 200"
    assert info.value.exit_code == SmokeFailed.exit_code


def _helm_status(target: Target) -> str:
    release = target.helm.status("node-hello", target.namespace)
    return release.status if release else ""


def test_interrupted_ship_then_new_ship_recovers_the_pending_release(
    target: Target, node_hello_image: ImageRef, cluster_kubeconfig: Path
) -> None:
    service = service_dir(target, HEALTHY)
    first = ship(target, service, node_hello_image)
    assert first.healthy and first.revision == 1, first.verdict

    # A second ship dies mid-upgrade: helm is killed while it waits on a rollout that never gets ready,
    # leaving the release in pending-upgrade (and, as if the process died, a Lease nobody renews).
    broken = service_dir(target, "probes:\n  readiness: {path: /never-ready}\n", copy="broken")
    config = deploy_config.load(broken, deploy_config.load_policy())
    facts = runtime(
        load_blubber(broken / ".pipeline" / "blubber.yaml", policy=BLUBBER_POLICY), config.variant
    )
    values = chart.render_values(config, facts, node_hello_image)
    rendered = chart.write_chart(target.work / "broken", "node-hello", chart.chart_version(), values)
    dead = ReleaseLock(target.api, target.namespace, "node-hello", holder="ci@dead-runner pid=1", duration=30)
    dead.acquire()
    interrupted = subprocess.Popen(
        target.helm.argv(
            "upgrade", "--install", "node-hello", str(rendered.path), "--namespace", target.namespace,
            "--wait", "--timeout", "300s",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while _helm_status(target) != "pending-upgrade" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _helm_status(target) == "pending-upgrade"
    finally:
        interrupted.send_signal(signal.SIGKILL)
        interrupted.wait()
    assert _helm_status(target) == "pending-upgrade"  # stuck: plain `helm upgrade` would now refuse

    # While the dead run's Lease is fresh, a new ship is refused with a message naming the holder.
    with pytest.raises(ShipInProgress, match="ci@dead-runner pid=1"):
        ship(target, service, node_hello_image)

    # Once the Lease has expired (no renewals), the next ship takes it over, repairs and ships.
    lease_api = client.CoordinationV1Api(target.api)
    lease = lease_api.read_namespaced_lease(dead.name, target.namespace)
    lease.spec.renew_time = datetime.now(UTC) - timedelta(seconds=31)
    lease_api.replace_namespaced_lease(dead.name, target.namespace, lease)

    second = ship(target, service, node_hello_image)

    assert (second.recovery.action, second.recovery.stuck_status, second.recovery.to_revision) == (
        "rolled-back",
        "pending-upgrade",
        1,
    )
    assert second.healthy, second.verdict
    assert all(r.passed for r in second.smoke)
    # helm keeps the interrupted revision's pending-upgrade in history (rollback does not rewrite it);
    # what matters is that the latest revision is deployed, so later upgrades go through.
    history = target.helm.history("node-hello", target.namespace)
    assert [(r.revision, r.status) for r in history] == [
        (1, "superseded"),
        (2, "pending-upgrade"),
        (3, "superseded"),
        (4, "deployed"),
    ]
    assert "Rollback to 1" in history[2].description


def test_diff_shows_what_a_ship_would_change(target: Target, node_hello_image: ImageRef) -> None:
    shipped = ship(target, service_dir(target, HEALTHY), node_hello_image)
    assert shipped.healthy, shipped.verdict
    config = shipped.config
    facts = runtime(
        load_blubber(NODE_HELLO / ".pipeline" / "blubber.yaml", policy=BLUBBER_POLICY), config.variant
    )
    same = chart.render_values(config, facts, node_hello_image)
    rendered = chart.write_chart(target.work / "diff", "node-hello", shipped.published.version, same)
    assert target.helm.diff("node-hello", target.namespace, rendered.path) == []
    more = chart.render_values(replace(config, replicas=2), facts, node_hello_image)
    rendered = chart.write_chart(target.work / "diff", "node-hello", shipped.published.version, more)
    diffs = target.helm.diff("node-hello", target.namespace, rendered.path)
    assert [(d.kind, d.change) for d in diffs] == [("Deployment", "changed")]
    assert "+  replicas: 2" in diffs[0].diff


def test_interrupted_first_install_is_uninstalled_then_installed(
    target: Target, node_hello_image: ImageRef
) -> None:
    # The very first ship dies inside `helm install --wait`: pending-install, nothing to roll back to.
    broken = service_dir(target, "probes:\n  readiness: {path: /never-ready}\n", copy="broken")
    config = deploy_config.load(broken, deploy_config.load_policy())
    facts = runtime(
        load_blubber(broken / ".pipeline" / "blubber.yaml", policy=BLUBBER_POLICY), config.variant
    )
    rendered = chart.write_chart(
        target.work / "broken",
        "node-hello",
        chart.chart_version(),
        chart.render_values(config, facts, node_hello_image),
    )
    interrupted = subprocess.Popen(
        target.helm.argv(
            "upgrade", "--install", "node-hello", str(rendered.path), "--namespace", target.namespace,
            "--create-namespace", "--wait", "--timeout", "300s",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while _helm_status(target) != "pending-install" and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        interrupted.send_signal(signal.SIGKILL)
        interrupted.wait()
    assert _helm_status(target) == "pending-install"

    shipped = ship(target, service_dir(target, HEALTHY), node_hello_image)

    assert (shipped.recovery.action, shipped.recovery.stuck_status) == ("uninstalled", "pending-install")
    assert shipped.healthy, shipped.verdict
    assert all(r.passed for r in shipped.smoke)
    assert [(r.revision, r.status) for r in target.helm.history("node-hello", target.namespace)] == [
        (1, "deployed")
    ]
