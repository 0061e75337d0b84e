"""Cluster DNS: CoreDNS as a Deployment in kube-system behind the kube-dns Service (10.96.0.10).

The binary is the one e2e/tools.sh builds (CoreDNS with only the plugins used below), wrapped into a
one-file image that is imported into the cluster's containerd: nothing is pulled. It answers for
cluster.local and the reverse zones only; there is no `forward` plugin, since nothing outside the
cluster netns is reachable. Kubelet's clusterDNS points pods at it, so a pod with the default
`ClusterFirst` DNS policy no longer gets the `MissingClusterDNS` warning event.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from . import layout as L
from . import pause
from .api import Api

NAMESPACE = "kube-system"
NAME = "coredns"
LABELS = {"k8s-app": "kube-dns"}
BINARY = L.TOOLS_BIN / "coredns"

# Only the cluster's zones are served: other names get a quick REFUSED (pods cannot reach anything
# outside the netns anyway), instead of a SERVFAIL logged by `errors` for every lookup.
COREFILE = f"""{L.CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    errors
    health {{
        lameduck 5s
    }}
    ready
    kubernetes {L.CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        ttl 30
    }}
    cache 30
}}
"""


def image_tag(binary: Path = BINARY) -> str:
    """`localhost/e2e/coredns:<version>-<content hash>`: a rebuilt binary gets a new tag, so it rolls out."""
    data = binary.read_bytes()
    out = subprocess.run([str(binary), "-version"], capture_output=True, text=True, check=False).stdout
    first = out.splitlines()[0] if out else ""
    version = first.removeprefix("CoreDNS-") if first.startswith("CoreDNS-") else "unknown"
    return f"localhost/e2e/coredns:{version}-{hashlib.sha256(data).hexdigest()[:12]}"


def image_archive(tag: str, binary: Path = BINARY) -> bytes:
    return pause.single_file_archive(
        tag, "coredns", binary.read_bytes(), ["/coredns"], f"e2e/localcluster/dns.py from {binary}"
    )


def manifests(image: str) -> list[tuple[str, dict]]:
    """(object path, object) for every API object of the cluster DNS, in the order to apply them."""
    ns = NAMESPACE
    meta = {"name": NAME, "namespace": ns, "labels": LABELS}
    corefile_hash = hashlib.sha256(COREFILE.encode()).hexdigest()[:16]
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    return [
        (
            f"/api/v1/namespaces/{ns}/serviceaccounts/{NAME}",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        ),
        (
            f"{rbac}/clusterroles/system:{NAME}",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": f"system:{NAME}", "labels": LABELS},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["endpoints", "services", "pods", "namespaces"],
                        "verbs": ["list", "watch"],
                    },
                    {
                        "apiGroups": ["discovery.k8s.io"],
                        "resources": ["endpointslices"],
                        "verbs": ["list", "watch"],
                    },
                ],
            },
        ),
        (
            f"{rbac}/clusterrolebindings/system:{NAME}",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"system:{NAME}", "labels": LABELS},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": f"system:{NAME}",
                },
                "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": ns}],
            },
        ),
        (
            f"/api/v1/namespaces/{ns}/configmaps/{NAME}",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"Corefile": COREFILE}},
        ),
        (
            f"/apis/apps/v1/namespaces/{ns}/deployments/{NAME}",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": meta,
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": LABELS},
                    "template": {
                        # No `reload` plugin: a changed Corefile rolls the pod instead.
                        "metadata": {"labels": LABELS, "annotations": {"e2e/corefile-sha256": corefile_hash}},
                        "spec": _pod_spec(image),
                    },
                },
            },
        ),
        (
            f"/api/v1/namespaces/{ns}/services/kube-dns",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "kube-dns", "namespace": ns, "labels": LABELS},
                "spec": {
                    "selector": LABELS,
                    "clusterIP": L.DNS_SERVICE_IP,
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                    ],
                },
            },
        ),
    ]


def _pod_spec(image: str) -> dict:
    return {
        "serviceAccountName": NAME,
        "priorityClassName": "system-cluster-critical",
        # CoreDNS must not be its own resolver; with kubelet's empty resolvConf it has none (no forward).
        "dnsPolicy": "Default",
        "terminationGracePeriodSeconds": 5,
        "containers": [
            {
                "name": "coredns",
                "image": image,
                "imagePullPolicy": "Never",  # imported into containerd by `e2e/cluster up`
                "args": ["-conf", "/etc/coredns/Corefile"],
                "ports": [
                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                ],
                "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                },
                "livenessProbe": {
                    "httpGet": {"path": "/health", "port": 8080},
                    "periodSeconds": 10,
                    "failureThreshold": 5,
                },
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 1},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
            }
        ],
        "volumes": [{"name": "config", "configMap": {"name": NAME}}],
    }


def apply(api: Api, image: str) -> None:
    """Create or update every object (server-side apply: unchanged objects stay as they are)."""
    for path, obj in manifests(image):
        api.apply(path, obj)


def ready(api: Api) -> bool:
    """The CoreDNS Deployment runs its current template and its pod is ready."""
    dep = api.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{NAME}")
    if not dep:
        return False
    status, spec = dep.get("status", {}), dep.get("spec", {})
    want = spec.get("replicas", 1)
    return (
        status.get("observedGeneration", 0) >= dep["metadata"].get("generation", 0)
        and status.get("updatedReplicas", 0) == want
        and status.get("availableReplicas", 0) == want
        and status.get("replicas", 0) == want
    )
