"""Faults during a real `deployer ship`, on the real parts: the API server stopped mid-watch, the registry
stopped mid-push (for a while, and for good), the kubelet restarted mid-rollout.

Each test ships a copy of node-hello (its own service, namespace and release) in CI mode and injects the
fault when the ship prints the line that starts the stage (`e2e/localcluster/faults.py` stops and starts
the part by its pid file). The parts are shared with everyone on this machine: every outage is short and
every stopped part is started again, also when the test fails. Local cluster only (the parts are its
host processes).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jsonschema
import pytest
from junitparser import JUnitXml
from kubernetes import client

from deployer.errors import ExitCode
from deployer.reporting.report import report_schema
from deployer.tools import registry as deployer_registry
from e2e.conftest import Registry
from e2e.localcluster import faults
from e2e.shipping import DEPLOYER, ServiceCopy, Ship, assert_no_secret, service_copy

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.registry,
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.provider("local"),
]

# Readiness only after ~12 s: the rollout is still in progress while the fault lasts.
DEPLOY = """namespace: {namespace}
probes:
  readiness:
    {{path: /healthz, initialDelaySeconds: 12, periodSeconds: 1, timeoutSeconds: 2, failureThreshold: 30}}
smoke:
  helmTest: false
  checks:
    - {{name: root, path: /, body: hello from node-hello}}
timeouts: {{progressDeadline: 120, rollout: 150, helm: 90, smoke: 30}}
"""

# What the watch says about the API server itself (an outage, a restarted stream).
API_LINE = re.compile(r"Kubernetes API|watch on \w+ restarted")


class Service(ServiceCopy):
    def ship_with_fault(self, when: str, fault: Callable[[], None]) -> tuple[Ship, float]:
        """Ship, calling `fault` (in a thread) as soon as a printed line contains `when`. Returns the ship
        and the seconds from the fault's start to the ship's exit."""
        self.runs += 1
        report, junit = self.root.parent / f"ship{self.runs}.json", self.root.parent / f"ship{self.runs}.xml"
        argv = [
            DEPLOYER, "ship", str(self.root), "--kubeconfig", str(self.kubeconfig),
            "--report", str(report), "--junit", str(junit), "--timeout", "600",
        ]  # fmt: skip
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "CI": "true"},
        )
        lines: list[str] = []
        injected: list[float] = []
        errors: list[BaseException] = []

        def inject() -> None:
            try:
                fault()
            except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
                errors.append(e)

        worker: threading.Thread | None = None
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if worker is None and when in line:
                injected.append(time.monotonic())
                worker = threading.Thread(target=inject, name="fault")
                worker.start()
        proc.wait(timeout=900)
        ended = time.monotonic()
        if worker is not None:
            worker.join(timeout=300)
        if errors:
            raise errors[0]
        output = "".join(lines)
        assert injected, f"the ship never printed {when!r}:\n{output[-4000:]}"
        data = json.loads(report.read_text())
        jsonschema.Draft202012Validator(report_schema()).validate(data)
        assert data["outcome"]["exit_code"] == proc.returncode
        ship = Ship(
            proc.returncode,
            output,
            "",
            data,
            JUnitXml.fromfile(str(junit)),
            {"report": report.read_text(), "junit": junit.read_text()},
        )
        assert_no_secret(ship)
        return ship, ended - injected[0]


@pytest.fixture
def service(
    cluster_kubeconfig: Path, kube: client.ApiClient, registry: Registry, tmp_path: Path
) -> Iterator[Service]:
    with service_copy(
        Service,
        "node-hello",
        "flt",
        kubeconfig=cluster_kubeconfig,
        api=kube,
        registry=registry,
        tmp_path=tmp_path,
    ) as svc:
        svc.write(".pipeline/deploy.yaml", DEPLOY.format(namespace=svc.namespace))
        svc.commit("node-hello copy")
        yield svc


def _api_outage(seconds: float) -> Callable[[], None]:
    def outage() -> None:
        faults.stop_apiserver()
        try:
            time.sleep(seconds)
        finally:
            faults.start_apiserver()

    return outage


def _registry_outage(seconds: float | None, stopped: threading.Event | None = None) -> Callable[[], None]:
    """Stop the registry; start it again after `seconds` (None: the test starts it once the ship ended)."""

    def outage() -> None:
        faults.stop_registry()
        if stopped is not None:
            stopped.set()
        if seconds is not None:
            try:
                time.sleep(seconds)
            finally:
                faults.start_registry()

    return outage


def test_an_api_server_stopped_20s_mid_watch_is_ridden_out_in_at_most_4_lines(service: Service) -> None:
    ship, _ = service.ship_with_fault("watch: started", _api_outage(20))
    assert ship.returncode == 0, ship.output[-5000:]
    assert ship.report["rollout"]["verdict"] == "healthy"
    about_api = [line for line in ship.output.splitlines() if API_LINE.search(line)]
    assert 2 <= len(about_api) <= 4, about_api
    assert any("Kubernetes API unreachable" in line for line in about_api), about_api
    back = [re.search(r"answers again after ([\d.]+)s", line) for line in about_api]
    lengths = [float(m.group(1)) for m in back if m]
    assert lengths and lengths[0] >= 15, (
        about_api
    )  # the outage's length: 20 s stopped, less the first reconnect


def test_a_registry_stopped_8s_mid_push_is_ridden_out_with_visible_retries(service: Service) -> None:
    ship, _ = service.ship_with_fault("push: started", _registry_outage(8))
    assert ship.returncode == 0, ship.output[-5000:]
    retries = [line for line in ship.output.splitlines() if "next try in" in line]
    assert retries, ship.output[-5000:]
    assert re.search(
        r"push to 127\.0\.0\.1:5000: the registry does not answer \(.*\); "
        r"attempt 1/6 failed, next try in 1 s",
        retries[0],
    ), retries
    assert ship.report["rollout"]["verdict"] == "healthy"


def test_a_registry_gone_for_good_fails_the_push_with_14_within_the_bound_and_deploys_nothing(
    service: Service,
) -> None:
    stopped = threading.Event()
    try:
        ship, after_stop = service.ship_with_fault("push: started", _registry_outage(None, stopped))
    finally:
        if stopped.wait(30):
            faults.start_registry()
    assert ship.returncode == ExitCode.PUSH == 14, ship.output[-5000:]
    assert ship.report["outcome"]["failed_stage"] == "push"
    retries = [line for line in ship.output.splitlines() if "next try in" in line]
    assert [re.search(r"attempt (\d)/6", line).group(1) for line in retries] == ["1", "2", "3", "4", "5"], (
        retries
    )
    assert "the registry did not answer in 6 attempts over 23 s of retries" in ship.output
    # The documented bound: 23 s of waits plus the six attempts, each refused at once.
    assert after_stop < deployer_registry.PUSH_RETRY.bound() + 30, after_stop
    # Nothing was deployed: no release, no pod.
    assert service.helm().status(service.name, service.namespace) is None
    assert service.running_images() == set()
    assert ship.stage("deploy")["status"] != "ok"


def test_a_kubelet_restarted_mid_rollout_gives_the_right_verdict(service: Service) -> None:
    ship, _ = service.ship_with_fault("watch: started", faults.restart_kubelet)
    assert ship.returncode == 0, ship.output[-5000:]
    assert ship.report["rollout"]["verdict"] == "healthy"
    assert service.get("/").body == b"hello from node-hello\n"


def _pushed(ship: Ship) -> str:
    (image,) = [i for i in ship.report["images"] if i.get("pushed")]
    return f"{image['repository']}@{image['digest']}"


ROOT_CHECK = "    - {name: root, path: /, body: hello from node-hello}\n"


def _failing_checks(namespace: str, on_failure: str | None = None) -> str:
    """DEPLOY plus a check node-hello fails (it has no /version: 404), and smoke.onFailure if given."""
    text = DEPLOY.format(namespace=namespace).replace(
        ROOT_CHECK, ROOT_CHECK + "    - {name: version, path: /version}\n"
    )
    return (
        text.replace("  helmTest: false\n", f"  helmTest: false\n  onFailure: {on_failure}\n")
        if on_failure
        else text
    )


def test_a_failing_smoke_check_rolls_back_and_the_old_version_serves_unless_kept(service: Service) -> None:
    good = service.ship("--timeout", "600")
    assert good.returncode == 0, good.output[-5000:]

    # A changed image whose smoke checks fail: rolled back, and the old image serves again.
    service.write("app.js", (service.root / "app.js").read_text() + "// v2\n")
    service.write(".pipeline/deploy.yaml", _failing_checks(service.namespace))
    service.commit("v2, with a check it fails")
    failed = service.ship("--timeout", "600")
    assert failed.returncode == ExitCode.SMOKE == 17, failed.output[-5000:]
    rollout = failed.report["rollout"]
    assert rollout["verdict"] == "healthy" and rollout["rolled_back"] is True, rollout
    assert rollout["rollback"]["action"] == "rollback" and rollout["rollback"]["verified"] is True, rollout
    assert "rolled back to revision 1, which serves again" in failed.output
    # the check that failed, in deploy.yaml (the second under smoke.checks)
    failed.assert_traced("smoke.checks[1]", "service", ".pipeline/deploy.yaml", 9)
    assert service.running_images() == {_pushed(good)}
    assert service.get("/").body == b"hello from node-hello\n"
    assert _pushed(failed) != _pushed(good)

    # smoke.onFailure: keep leaves the failing revision running, and the report says so.
    service.write(".pipeline/deploy.yaml", _failing_checks(service.namespace, "keep"))
    service.commit("keep it")
    kept = service.ship("--timeout", "600")
    assert kept.returncode == ExitCode.SMOKE, kept.output[-5000:]
    assert kept.report["rollout"]["rolled_back"] is False
    assert (
        kept.report["rollout"]["rollback"]["detail"]
        == "the failing revision was kept (smoke.onFailure: keep)"
    )
    assert service.running_images() == {_pushed(kept)}
