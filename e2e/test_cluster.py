"""The local Kubernetes cluster runs real pods from images our build stack pushed to our registry."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

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
    log = core.read_namespaced_pod_log("service-client", ns)
    assert phase == "Succeeded", log
    assert json.loads(log.strip().splitlines()[-1]) == {
        "service": "cluster-hello",
        "pod": pods[0].metadata.name,
        "path": "/via-service",
    }


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
