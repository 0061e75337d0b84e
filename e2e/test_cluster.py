"""The local Kubernetes cluster runs real pods from images our build stack pushed to our registry."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deployer.tools.kube import pod_log
from e2e.localcluster import layout

pytestmark = [pytest.mark.cluster, pytest.mark.registry, pytest.mark.docker]

HELLO = Path(__file__).parent / "testdata" / "hello"


@pytest.fixture
def local_cluster() -> None:
    """Properties of the local cluster only (pinned version, node name, isolated netns)."""
    if os.environ.get("DEPLOYER_KUBECONFIG"):
        pytest.skip("checks the local cluster; DEPLOYER_KUBECONFIG selects another one")


def test_node_ready_at_pinned_version(kube, local_cluster) -> None:
    from kubernetes import client

    assert client.VersionApi(kube).get_code().git_version == layout.KUBE_VERSION
    nodes = client.CoreV1Api(kube).list_node().items
    assert [n.metadata.name for n in nodes] == [layout.NODE_NAME]
    ready = {c.type: c.status for c in nodes[0].status.conditions}["Ready"]
    assert ready == "True"


@pytest.fixture(scope="module")
def hello_image(registry) -> str:
    """Build the hello service from the stack's python3 base image, push it, return `repo@digest`."""
    repo = f"{registry.host}/e2e/cluster-hello"
    build = registry.docker("build", "-q", "-t", f"{repo}:e2e", ".", cwd=HELLO)
    assert build.returncode == 0, f"docker build failed:\n{build.stderr}"
    push = registry.docker("push", f"{repo}:e2e")
    assert push.returncode == 0, f"docker push failed:\n{push.stderr}"
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", push.stdout)
    assert digest, f"no digest in docker push output:\n{push.stdout}"
    return f"{repo}@{digest.group(1)}"


def _deployment(name: str, image: str) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    # No imagePullSecrets: the cluster's containerd holds the registry credentials.
                    "containers": [
                        {
                            "name": "hello",
                            "image": image,
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                        }
                    ],
                    "terminationGracePeriodSeconds": 1,
                },
            },
        },
    }


def _service(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": "http"}]},
    }


@pytest.fixture(scope="module")
def hello(kube, hello_image):
    """The hello Deployment + Service in a fresh namespace, rolled out; namespace deleted afterwards."""
    from kubernetes import client

    core, apps = client.CoreV1Api(kube), client.AppsV1Api(kube)
    ns = f"e2e-cluster-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    try:
        apps.create_namespaced_deployment(ns, _deployment("hello", hello_image))
        core.create_namespaced_service(ns, _service("hello"))
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            dep = apps.read_namespaced_deployment("hello", ns)
            if (dep.status.available_replicas or 0) == 1 and dep.status.updated_replicas == 1:
                break
            time.sleep(1)
        else:
            events = core.list_namespaced_event(ns).items
            pytest.fail(
                "rollout of hello did not finish:\n" + "\n".join(f"{e.reason}: {e.message}" for e in events)
            )
        pods = core.list_namespaced_pod(ns, label_selector="app=hello").items
        yield ns, [p for p in pods if p.status.phase == "Running"], hello_image
    finally:
        core.delete_namespace(ns)


def test_pod_runs_the_image_pulled_from_our_registry(hello) -> None:
    ns, pods, image = hello
    assert len(pods) == 1
    status = pods[0].status.container_statuses[0]
    # imageID is the digest the runtime pulled: the one our build pushed, from our registry.
    assert status.image_id == image, (status.image, status.image_id)


def test_kubectl_port_forward_from_root_netns(hello) -> None:
    ns, pods, _ = hello
    kubectl = str(layout.TOOLS_BIN / "kubectl")
    proc = subprocess.Popen(
        [kubectl, f"--kubeconfig={layout.KUBECONFIG}", "-n", ns, "port-forward", "svc/hello", ":80"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # "Forwarding from 127.0.0.1:NNNNN -> 8080"
        port = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert port, f"unexpected port-forward output: {line!r} {proc.stderr.read() if proc.poll() else ''}"
        with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/hello", timeout=30) as resp:
            assert resp.status == 200
            answer = json.loads(resp.read())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert answer == {"service": "cluster-hello", "pod": pods[0].metadata.name, "path": "/hello"}


def test_python_client_port_forward(kube, hello) -> None:
    from kubernetes import client
    from kubernetes.stream import portforward

    ns, pods, _ = hello
    name = pods[0].metadata.name
    pf = portforward(client.CoreV1Api(kube).connect_get_namespaced_pod_portforward, name, ns, ports="8080")
    sock = pf.socket(8080)
    sock.setblocking(True)
    sock.settimeout(30)
    try:
        sock.sendall(b"GET /pf HTTP/1.0\r\nHost: hello\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pass
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200"), data[:200]
    assert json.loads(body) == {"service": "cluster-hello", "pod": name, "path": "/pf"}


def test_pods_have_no_route_out(hello, local_cluster) -> None:
    """The cluster netns has no default route: a connection to an outside address fails at once."""
    ns, pods, _ = hello
    kubectl = str(layout.TOOLS_BIN / "kubectl")
    # 203.0.113.1 is TEST-NET-3; the packet cannot leave the cluster's netns.
    probe = (
        "import socket\n"
        "try:\n socket.create_connection(('203.0.113.1', 80), timeout=5); print('connected')\n"
        "except OSError as e:\n print(type(e).__name__, e.errno)\n"
    )
    r = subprocess.run(
        [
            kubectl,
            f"--kubeconfig={layout.KUBECONFIG}",
            "-n",
            ns,
            "exec",
            pods[0].metadata.name,
            "--",
            "python3",
            "-c",
            probe,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    # 113 EHOSTUNREACH / 101 ENETUNREACH: rejected in the netns, not a timeout that went anywhere.
    assert r.stdout.split()[-1] in {"113", "101"}, r.stdout


def test_cluster_ip_service_from_another_pod(kube, hello) -> None:
    """kube-proxy works: a pod reaches the Service by its ClusterIP (service-link env, no DNS needed)."""
    from kubernetes import client

    ns, pods, image = hello
    core = client.CoreV1Api(kube)
    # Retries cover the second or so kube-proxy may take to program a fresh Service's endpoints.
    script = (
        "import os, time, urllib.request\n"
        "env = os.environ\n"
        "url = 'http://%s:%s/via-service' % (env['HELLO_SERVICE_HOST'], env['HELLO_SERVICE_PORT'])\n"
        "for attempt in range(20):\n"
        "    try:\n"
        "        print(urllib.request.urlopen(url, timeout=5).read().decode()); break\n"
        "    except OSError as e:\n"
        "        err = e; time.sleep(1)\n"
        "else:\n"
        "    raise SystemExit('no answer from %s: %s' % (url, err))\n"
    )
    pod = {
        "metadata": {"name": "service-client"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "client", "image": image, "command": ["python3", "-c", script]}],
        },
    }
    core.create_namespaced_pod(ns, pod)
    deadline = time.monotonic() + 120
    phase = None
    while time.monotonic() < deadline:
        phase = core.read_namespaced_pod("service-client", ns).status.phase
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(1)
    log = pod_log(core, "service-client", ns)
    assert phase == "Succeeded", log
    assert json.loads(log.strip().splitlines()[-1]) == {
        "service": "cluster-hello",
        "pod": pods[0].metadata.name,
        "path": "/via-service",
    }


def _kubectl_exec(kubeconfig: Path, ns: str, pod: str, *argv: str) -> subprocess.CompletedProcess[str]:
    kubectl = str(layout.TOOLS_BIN / "kubectl")
    return subprocess.run(
        [kubectl, f"--kubeconfig={kubeconfig}", "-n", ns, "exec", pod, "--", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_pod_reaches_the_service_that_selects_it(cluster_kubeconfig: Path, hello) -> None:
    """Hairpin: the Service's only endpoint is the calling pod, so the DNATed packet goes back out the
    bridge port it came in on (needs hairpin mode on cni0's ports and kube-proxy's masquerade)."""
    ns, pods, _ = hello
    me = pods[0].metadata.name
    probe = (
        "import os, urllib.request\n"
        "env = os.environ\n"
        "url = 'http://%s:%s/hairpin' % (env['HELLO_SERVICE_HOST'], env['HELLO_SERVICE_PORT'])\n"
        "print(urllib.request.urlopen(url, timeout=10).read().decode())\n"
    )
    r = _kubectl_exec(cluster_kubeconfig, ns, me, "python3", "-c", probe)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"service": "cluster-hello", "pod": me, "path": "/hairpin"}


# A client that starts a new connection to the Service every 50 ms, each in its own thread (so one
# hanging attempt does not pause the sampling), and logs one line per attempt when it ends:
# "<start epoch> ok <pod>" or "<start epoch> fail <error>". Attempts are bounded: a hang is a timeout.
PROBE_LOOP = """
import json, os, socket, sys, threading, time
addr = (os.environ['FLIP_SERVICE_HOST'], int(os.environ['FLIP_SERVICE_PORT']))
out = threading.Lock()
def attempt():
    start = time.time()
    try:
        with socket.create_connection(addr, timeout=3) as s:
            s.settimeout(3)
            s.sendall(b'GET /probe HTTP/1.0\\r\\n\\r\\n')
            data = b''
            while chunk := s.recv(65536):
                data += chunk
        line = '%.3f ok %s' % (start, json.loads(data.partition(b'\\r\\n\\r\\n')[2])['pod'])
    except (OSError, ValueError) as e:
        line = '%.3f fail %s' % (start, type(e).__name__)
    with out:
        print(line, flush=True)
while True:
    threading.Thread(target=attempt, daemon=True).start()
    time.sleep(0.05)
"""

# Nearly like node-hello, which exits at once on SIGTERM: this server exits 0.3 s after it (as pid 1 it
# would otherwise ignore SIGTERM). kube-proxy must have moved the rules by then; the 0.3 s keep the
# test about kube-proxy rather than about which of two processes a loaded machine schedules first.
EXIT_ON_SIGTERM = (
    "import os, runpy, signal, threading\n"
    "signal.signal(signal.SIGTERM, lambda *_: threading.Timer(0.3, os._exit, (0,)).start())\n"
    "runpy.run_path('/srv/server.py')\n"
)


def _wait(what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
    """Poll `check` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _attempts(core: Any, ns: str) -> list[tuple[float, str, str]]:
    """(start time, "ok"/"fail", pod name/error) of each finished attempt of the probe client."""
    from deployer.tools.kube import KubeRequestFailed

    try:
        lines = pod_log(core, "flip-client", ns).splitlines()
    except KubeRequestFailed:  # not started yet: 400
        return []
    return sorted((float(t), kind, rest) for t, kind, rest in (line.split(" ", 2) for line in lines if line))


FLIPS = 3
REPLICAS = 3


def test_cluster_ip_follows_a_replaced_endpoint(kube, hello) -> None:
    """The failing path of a re-ship: the Service's only pod is replaced by a new one and the old one
    exits at once. While kube-proxy's rules still DNAT to the old pod's address, new connections go to
    an address whose pod is gone; conntrack pins the SYN retries of each such connection to it, so the
    connect hangs (the `helm test` pod of an upgrade in a used namespace timed out this way).

    A client keeps opening connections through the ClusterIP while the pods are replaced several
    times: none may hang, and once the old pods are deleted every connection reaches a new one.
    """
    from kubernetes import client

    ns, _, image = hello
    core, apps = client.CoreV1Api(kube), client.AppsV1Api(kube)
    dep = _deployment("flip", image)
    # Several replicas: each rollout changes the EndpointSlice many times in a few seconds, the churn
    # in which a rate-limited kube-proxy falls behind.
    dep["spec"]["replicas"] = REPLICAS
    container = dep["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["python3", "-c", EXIT_ON_SIGTERM]
    container["readinessProbe"]["periodSeconds"] = 1
    dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 10
    apps.create_namespaced_deployment(ns, dep)
    core.create_namespaced_service(ns, _service("flip"))

    def pods() -> tuple[set[str], set[str]]:
        """(all pod names, names of the ready and not terminating ones)."""
        items = core.list_namespaced_pod(ns, label_selector="app=flip").items
        ready = {
            p.metadata.name
            for p in items
            if p.metadata.deletion_timestamp is None
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        }
        return {p.metadata.name for p in items}, ready

    def replaced(old: set[str]) -> set[str] | None:
        """The new ready pods once the old ones are deleted and all replicas are ready."""
        names, ready = pods()
        return ready if not names & old and len(ready) == REPLICAS and names == ready else None

    old = _wait("the first pods", lambda: replaced(set()))
    client_pod = {
        "metadata": {"name": "flip-client"},
        "spec": {
            "containers": [{"name": "probe", "image": image, "command": ["python3", "-c", PROBE_LOOP]}],
            "terminationGracePeriodSeconds": 0,
        },
    }
    core.create_namespaced_pod(ns, client_pod)
    _wait("the client to reach the pods", lambda: any(a[2] in old for a in _attempts(core, ns)))

    first = time.time()
    flips = []  # (pods replaced, their replacements, time of the rollout, time the last old pod was deleted)
    for revision in range(2, FLIPS + 2):
        patch = {"spec": {"template": {"metadata": {"annotations": {"e2e/revision": str(revision)}}}}}
        patched = time.time()
        apps.patch_namespaced_deployment("flip", ns, patch)
        new = _wait("the rollout", lambda: replaced(old))  # noqa: B023
        gone = time.time()
        _wait("20 attempts after it", lambda: sum(a[0] > gone for a in _attempts(core, ns)) >= 20)  # noqa: B023
        flips.append((old, new, patched, gone))
        old = new
    end = time.time()
    # Once an attempt that started 3.5 s later has ended, every earlier one (bounded at 3 s) has too.
    _wait("the last attempts to end", lambda: any(a[0] > end + 3.5 for a in _attempts(core, ns)))

    attempts = [a for a in _attempts(core, ns) if a[0] >= first]
    shown = "\n".join(f"{t - first:6.2f}s {kind} {rest}" for t, kind, rest in attempts)
    hung = [a for a in attempts if a[1] == "fail" and a[2] in ("TimeoutError", "timeout")]
    assert not hung, f"{len(hung)} connections through the ClusterIP hung while pods were replaced:\n{shown}"
    for i, (before, new, _, gone) in enumerate(flips):
        until = flips[i + 1][2] if i + 1 < len(flips) else float("inf")
        after = {(kind, rest) for t, kind, rest in attempts if gone < t < until}
        assert after and after <= {("ok", p) for p in new}, f"after {sorted(before)} were deleted:\n{shown}"
    answered = {rest for _, kind, rest in attempts if kind == "ok"}
    assert all(before & answered for before, *_ in flips), shown  # old pods served during each rollout


def test_pods_resolve_service_names_through_cluster_dns(kube, hello, local_cluster) -> None:
    """CoreDNS behind kube-dns answers for cluster.local (short names via the search path), and a pod
    with the default ClusterFirst DNS policy gets no MissingClusterDNS warning."""
    from kubernetes import client

    ns, pods, image = hello
    core = client.CoreV1Api(kube)
    hello_ip = core.read_namespaced_service("hello", ns).spec.cluster_ip
    script = (
        "import json, os, socket\n"
        "names = ['hello', 'hello.' + os.environ['NS'], 'kubernetes.default.svc.cluster.local']\n"
        "print(json.dumps({n: socket.gethostbyname(n) for n in names}))\n"
        "print(open('/etc/resolv.conf').read())\n"
    )
    pod = {
        "metadata": {"name": "dns-client"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "client",
                    "image": image,
                    "command": ["python3", "-c", script],
                    "env": [{"name": "NS", "value": ns}],
                }
            ],
        },
    }
    core.create_namespaced_pod(ns, pod)

    def finished() -> str | None:
        phase = core.read_namespaced_pod("dns-client", ns).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = _wait("dns-client to finish", finished)
    log = pod_log(core, "dns-client", ns)
    assert phase == "Succeeded", log
    answers = json.loads(log.splitlines()[0])
    assert answers == {
        "hello": hello_ip,
        f"hello.{ns}": hello_ip,
        "kubernetes.default.svc.cluster.local": layout.API_SERVICE_IP,
    }
    assert f"nameserver {layout.DNS_SERVICE_IP}" in log

    def kubelet_events() -> list[str] | None:
        """Reasons of kubelet's events about dns-client, once its Started event is there."""
        items = core.list_namespaced_event(ns, field_selector="involvedObject.name=dns-client").items
        reasons = [e.reason for e in items if e.source and e.source.component == "kubelet"]
        return reasons if "Started" in reasons else None

    # kubelet records MissingClusterDNS while it sets up the sandbox, before it starts the container.
    reasons = _wait("kubelet's Started event of dns-client", kubelet_events)
    assert "MissingClusterDNS" not in reasons, reasons


def test_existing_provider_uses_deployer_kubeconfig(cluster_kubeconfig: Path, tmp_path: Path) -> None:
    """DEPLOYER_KUBECONFIG selects the `existing` provider: `up` checks readiness, `down` stops nothing."""
    cluster = Path(__file__).parent / "cluster"
    env = {**os.environ, "DEPLOYER_KUBECONFIG": str(cluster_kubeconfig)}
    up = subprocess.run([cluster, "up"], capture_output=True, text=True, env=env, timeout=60)
    assert up.returncode == 0, up.stderr
    assert "using existing cluster" in up.stderr
    down = subprocess.run([cluster, "down"], capture_output=True, text=True, env=env, timeout=60)
    assert down.returncode == 0, down.stderr
    still = subprocess.run([cluster, "up"], capture_output=True, text=True, env=env, timeout=60)
    assert still.returncode == 0, still.stderr  # the cluster behind it was not touched

    env["DEPLOYER_KUBECONFIG"] = str(tmp_path / "missing.kubeconfig")
    bad = subprocess.run([cluster, "up"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 1
    assert "DEPLOYER_KUBECONFIG must name an existing kubeconfig file" in bad.stderr
