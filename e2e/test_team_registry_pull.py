"""The local cluster pulls from the team registry (TLS, bearer tokens) with an imagePullSecret.

containerd trusts the registry's CA through its certs.d hosts.toml (e2e/localcluster/configs.py) and has
no credentials for it, as on a real cluster: a pod without the Secret cannot pull (the token issuer
wants an identity), the same pod with a `kubernetes.io/dockerconfigjson` Secret of the read-only
`puller` user runs the image pushed there by digest.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from e2e.conftest import DOCKER
from e2e.localcluster import pause
from tests.conftest import require
from tests.integration.teamregistry import HOW_TO_START, REGISTRY, answers, password

# The trust (certs.d hosts.toml) and the forwarders into the netns are the local provider's.
LOCAL_ONLY = pytest.mark.provider("local")
pytestmark = [pytest.mark.cluster, pytest.mark.registry, pytest.mark.docker, pytest.mark.slow, LOCAL_ONLY]


@pytest.fixture
def pushed_image(tmp_path: Path) -> Iterator[str]:
    """The catatonit sandbox image, pushed to the team registry by `ci`; its reference by digest."""
    require("the team registry", answers(), HOW_TO_START)
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"} | {"DOCKER_CONFIG": str(tmp_path)}
    tag = f"{REGISTRY}/staging/e2e-pull-{uuid.uuid4().hex[:8]}:1"

    def docker(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([DOCKER, *args], input=stdin, capture_output=True, env=env, timeout=300)

    loaded = docker("load", stdin=pause.docker_archive(tag))
    assert loaded.returncode == 0, loaded.stderr
    assert (
        docker("login", REGISTRY, "-u", "ci", "--password-stdin", stdin=password("ci").encode()).returncode
        == 0
    )
    pushed = docker("push", tag)
    assert pushed.returncode == 0, pushed.stderr
    digest = docker("image", "inspect", "--format", "{{index .RepoDigests 0}}", tag).stdout.decode().strip()
    assert "@sha256:" in digest
    yield digest
    docker("image", "rm", tag)


@pytest.fixture
def namespace(kube: client.ApiClient) -> Iterator[str]:
    name = f"e2e-team-pull-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(kube)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name, grace_period_seconds=0)


def _pull_secret(user: str) -> dict[str, str]:
    auth = base64.b64encode(f"{user}:{password(user)}".encode()).decode()
    config = {"auths": {REGISTRY: {"auth": auth}}}
    return {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()}


def _pod(name: str, image: str, secret: str | None) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="main", image=image, image_pull_policy="Always")],
            image_pull_secrets=[client.V1LocalObjectReference(name=secret)] if secret else None,
            automount_service_account_token=False,
            termination_grace_period_seconds=0,
        ),
    )


def _wait(core: client.CoreV1Api, namespace: str, name: str, until, timeout: float = 120) -> client.V1Pod:
    deadline = time.monotonic() + timeout
    while True:
        pod = core.read_namespaced_pod(name, namespace)
        if until(pod):
            return pod
        assert time.monotonic() < deadline, f"pod {namespace}/{name} never got there: {pod.status}"
        time.sleep(1)


def _waiting_reason(pod: client.V1Pod) -> str | None:
    for status in pod.status.container_statuses or []:
        if status.state and status.state.waiting:
            return status.state.waiting.reason
    return None


def test_a_pod_pulls_from_the_team_registry_with_an_image_pull_secret(
    kube: client.ApiClient, namespace: str, pushed_image: str
) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_pod(namespace, _pod("without-secret", pushed_image, None))
    refused = _wait(
        core,
        namespace,
        "without-secret",
        lambda p: _waiting_reason(p) in ("ErrImagePull", "ImagePullBackOff"),
    )
    message = next(s.state.waiting.message for s in refused.status.container_statuses)
    # TLS passed (the CA is trusted); the token issuer wanted credentials.
    assert "401" in message or "unauthorized" in message.lower(), message
    assert "x509" not in message

    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="team-registry"),
            type="kubernetes.io/dockerconfigjson",
            data=_pull_secret("puller"),
        ),
    )
    core.create_namespaced_pod(namespace, _pod("with-secret", pushed_image, "team-registry"))
    running = _wait(core, namespace, "with-secret", lambda p: p.status.phase == "Running")
    status = running.status.container_statuses[0]
    assert status.ready
    assert status.image_id.endswith(pushed_image.split("@", 1)[1])
