"""Failures traced to the configuration line on the real cluster (issue 14, item 7): the ones the other
failing-ship tests do not produce. Crash (entrypoint), refused pull (imagePullSecrets), readiness
(probe path), missing Secret or key (secretEnv) and a failing smoke check are traced in
test_ship_failures.py, test_secret_env.py and test_faults.py.

Each case is a first install of a node-hello copy that fails the way its deploy.yaml (or its app) is built
to, is uninstalled (exit 16), and must name in the report, the CI summary and the JUnit message the
setting to fix and who set it:

- a memory limit node cannot start in → `resources.limits.memory` in deploy.yaml (OOMKilled);
- a CPU request no node has → `resources.requests.cpu` in deploy.yaml (Unschedulable);
- an app that writes a file at start, on a read-only root file system → `readOnlyRootFilesystem`;
- the same app as the policy's runtime user, who may not write the app's files (owned by `lives`) →
  `defaults.runs.uid` in the ops policy (policies/default.yaml), as blubber.yaml sets no `runs`;
- a liveness probe on a path the app does not serve, killing it before it is ready →
  `probes.liveness.path`;
- a `port` the app does not listen on: every probe refused → `port`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from deployer.errors import ExitCode
from e2e.conftest import REPO, Registry
from e2e.shipping import ServiceCopy, service_copy

pytestmark = [pytest.mark.cluster, pytest.mark.registry, pytest.mark.docker, pytest.mark.slow]

DEPLOY = """namespace: {namespace}
probes:
  readiness: {{path: /healthz, periodSeconds: 1, timeoutSeconds: 1, failureThreshold: 3}}
smoke: {{helmTest: false}}
timeouts: {{progressDeadline: 30, rollout: 45, helm: 60, smoke: 15}}
"""

# Readiness waits 60 s while liveness asks a path node-hello does not serve, once it listens (5 s: a probe
# before that is refused, which names the port): the kubelet kills the container before it could be ready,
# and the restarts fail the rollout.
LIVENESS = """  readiness: {path: /healthz, initialDelaySeconds: 60, periodSeconds: 1}
  liveness: {path: /nope, initialDelaySeconds: 5, periodSeconds: 1, failureThreshold: 2}
"""

# node under a limit below its start-up footprint (20Mi) was OOM-killed on some runs and on others only
# thrashed, never listening, until the progress deadline (seen in CI): so the app takes 128 MiB at start
# under a 64Mi limit, which the kernel kills at once, and readiness allows 30 s (within the 45 s rollout).
HOG = "globalThis.hog = Buffer.alloc(128 * 1024 * 1024, 1);\n"
PATIENT_READINESS = "  readiness: {path: /healthz, periodSeconds: 1, failureThreshold: 30}\n"

# node-hello writes a file into its own directory before it listens, as an app with a cache or pid file would
WRITES = "require('fs').writeFileSync(__dirname + '/started', String(process.pid));\n"

# (what deploy.yaml adds, whether the app writes at start, and the origin: YAML path, layer, file, line)
CASES = {
    "oom": (
        "resources:\n  requests: {memory: 32Mi}\n  limits: {memory: 64Mi}\n",
        False,
        ("resources.limits.memory", "service", ".pipeline/deploy.yaml", 8),
    ),
    "unschedulable": (
        'resources:\n  requests: {cpu: "64"}\n  limits: {cpu: "64"}\n',
        False,
        ("resources.requests.cpu", "service", ".pipeline/deploy.yaml", 7),
    ),
    "read-only": (
        "readOnlyRootFilesystem: true\n",
        True,
        ("readOnlyRootFilesystem", "service", ".pipeline/deploy.yaml", 6),
    ),
    "runtime-user": ("", True, ("defaults.runs.uid", "policy", "policies/default.yaml", None)),
    "liveness": (LIVENESS, False, ("probes.liveness.path", "service", ".pipeline/deploy.yaml", 4)),
    # node-hello listens on $PORT, 8080 when unset, and the chart does not set it: probes on 3000 are refused
    "port": ("port: 3000\n", False, ("port", "service", ".pipeline/deploy.yaml", 6)),
}


@pytest.fixture
def service(
    cluster_kubeconfig: Path, kube: client.ApiClient, registry: Registry, tmp_path: Path
) -> Iterator[ServiceCopy]:
    where = dict(kubeconfig=cluster_kubeconfig, api=kube, registry=registry, tmp_path=tmp_path)
    with service_copy(ServiceCopy, "node-hello", "eorg", **where) as svc:
        # No test variant: these ships are about the rollout, and the test run is most of a ship's time
        blubber = (svc.root / ".pipeline" / "blubber.yaml").read_text()
        test_variant = "  test:\n    includes: [build]\n    entrypoint: [npm, test]\n"
        assert test_variant in blubber
        svc.write(".pipeline/blubber.yaml", blubber.replace(test_variant, ""))
        yield svc


def _policy_line(key: str) -> int:
    """The line of `defaults.runs.<key>` in the repository's blubber policy."""
    lines = (REPO / "policies" / "default.yaml").read_text().splitlines()
    runs = lines.index("  runs:")
    return next(i + 1 for i, line in enumerate(lines) if i > runs and line.strip().startswith(f"{key}:"))


@pytest.mark.parametrize("case", list(CASES))
def test_a_failed_first_install_names_the_line_to_fix(service: ServiceCopy, case: str) -> None:
    extra, writes, (yaml_path, layer, file, line) = CASES[case]
    deploy = DEPLOY.format(namespace=service.namespace)
    if case == "liveness":  # its probes replace the readiness probe's line
        deploy = deploy.replace(deploy.splitlines()[2] + "\n", extra)
    else:
        deploy += extra
    if case == "oom":  # the kill, not a slow start, must come first (line numbers unchanged)
        deploy = deploy.replace(deploy.splitlines()[2] + "\n", PATIENT_READINESS)
    service.write(".pipeline/deploy.yaml", deploy)
    if writes:
        service.write("server.js", WRITES + (service.root / "server.js").read_text())
    if case == "oom":
        service.write("server.js", HOG + (service.root / "server.js").read_text())
    service.commit(f"fails by {case}")

    ship = service.ship("--timeout", "240")

    assert ship.returncode == ExitCode.ROLLOUT, ship.output[-4000:]
    assert ship.report["rollout"]["rollback"]["action"] == "uninstall", ship.report["rollout"]
    origin = ship.assert_traced(yaml_path, layer, file, line or _policy_line("uid"))
    print(f"{case}: {ship.report['rollout']['reason']}\n  config: {origin}")
