"""HTTP requests to a pod through the API server's port-forward (kubernetes client, in-process).

No local port is opened and no kubectl process runs: the request is written to the port-forward stream's
socket and the response parsed with `http.client`. Used by smoke checks to reach a service that has no
route from the machine running deployer (the local cluster lives in its own network namespace).
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.stream import portforward

from deployer.errors import SmokeFailed
from deployer.tools.kube import api_errors, call

__all__ = ["HttpResponse", "http_get", "ready_pod"]

MAX_BODY = 1 << 20  # a smoke check never needs more than 1 MiB of body


@dataclass(frozen=True)
class HttpResponse:
    status: int
    reason: str
    body: bytes


def ready_pod(api: client.ApiClient | None, namespace: str, selector: str, *, core: Any = None) -> str:
    """Name of a Ready, not-terminating pod matching `selector` (sorted by name, so the choice is stable).

    `core` replaces `CoreV1Api(api)` (tests).
    """
    pods = call(
        f"list pods {selector} in {namespace}",
        (core or client.CoreV1Api(api)).list_namespaced_pod,
        namespace,
        label_selector=selector,
    )
    for pod in sorted(pods.items, key=lambda p: p.metadata.name):
        if pod.metadata.deletion_timestamp is not None:
            continue
        conditions = pod.status.conditions or []
        if any(c.type == "Ready" and c.status == "True" for c in conditions):
            return pod.metadata.name
    raise SmokeFailed(
        f"no Ready pod matches {selector} in namespace {namespace}",
        hint=f"kubectl --namespace {namespace} get pods -l {selector}",
    )


def http_get(
    api: client.ApiClient, namespace: str, pod: str, port: int, path: str, *, timeout: float = 10.0
) -> HttpResponse:
    """GET `path` on `pod:port` through a port-forward; connection problems raise SmokeFailed."""
    core = client.CoreV1Api(api)
    with api_errors(f"port-forward to pod {pod}:{port} in {namespace}"):
        forward = portforward(core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
    try:
        sock = forward.socket(port)
        sock.settimeout(timeout)
        request = (
            f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUser-Agent: deployer-smoke\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(request.encode("ascii"))
        response = http.client.HTTPResponse(sock, method="GET")  # type: ignore[arg-type]
        try:
            response.begin()
            body = response.read(MAX_BODY)
        except (OSError, http.client.HTTPException) as e:
            error = forward.error(port)
            raise SmokeFailed(
                f"GET {path} on pod {pod}:{port} got no HTTP response: {error or e}",
                hint=f"is the app listening on port {port}? check `port:` in .pipeline/deploy.yaml",
            ) from e
        return HttpResponse(status=response.status, reason=response.reason, body=body)
    finally:
        forward.close()
