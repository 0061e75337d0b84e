"""A minimal Kubernetes API client on the standard library (the cluster script runs without the venv)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

from . import layout as L
from .host import ClusterError


class Api:
    """Talks to the local apiserver from the root netns over the veth, as the admin identity."""

    def __init__(self, base: str = L.APISERVER_URL) -> None:
        self.base = base
        ctx = ssl.create_default_context(cafile=str(L.PKI / "ca.crt"))
        ctx.load_cert_chain(str(L.PKI / "admin.crt"), str(L.PKI / "admin.key"))
        self._ctx = ctx

    def request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        timeout: float = 10,
        content_type: str = "application/json",
    ) -> tuple[int, str]:
        """(HTTP status, body text); connection failures give status 0 and the error text."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except (OSError, urllib.error.URLError) as e:
            return 0, str(e)

    def get(self, path: str) -> dict | None:
        """The decoded object, or None when it is absent or the apiserver does not answer."""
        status, text = self.request("GET", path)
        return json.loads(text) if status == 200 else None

    def apply(self, path: str, obj: dict, manager: str = "e2e-cluster") -> dict:
        """Server-side apply of `obj` at its object path (created if absent, unchanged if equal)."""
        status, text = self.request(
            "PATCH",
            f"{path}?fieldManager={manager}&force=true",
            obj,
            content_type="application/apply-patch+yaml",  # JSON is YAML
        )
        if status not in (200, 201):
            raise ClusterError(f"apply {path} failed: HTTP {status}: {text[:500]}")
        return json.loads(text)

    def ready(self) -> bool:
        status, text = self.request("GET", "/readyz", timeout=3)
        return status == 200 and text.strip() == "ok"


def node_ready(node: dict | None) -> bool:
    conditions = (node or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def pod_running(pod: dict | None) -> bool:
    status = (pod or {}).get("status", {})
    statuses = status.get("containerStatuses") or []
    return status.get("phase") == "Running" and bool(statuses) and all(s.get("ready") for s in statuses)
