"""One CA, the component certificates and the kubeconfigs of the local cluster (made with openssl).

Kept across `down`/`up`, so a kubeconfig handed out once stays valid; `down --purge` removes them.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from . import layout as L
from .host import run, say

APISERVER_SANS = [
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
    "IP:127.0.0.1",
    f"IP:{L.NODE_IP}",
    f"IP:{L.API_SERVICE_IP}",
    f"IP:{L.NS_VETH_IP}",  # the address deployer uses from the root netns
]

# name -> (CN, O); identities the bootstrap RBAC already knows.
CLIENTS = {
    "admin": ("kubernetes-admin", "system:masters"),
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", "system:masters"),
    "kcm": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    "kubelet": (f"system:node:{L.NODE_NAME}", "system:nodes"),
    "kube-proxy": ("system:kube-proxy", None),
    "front-proxy-client": ("front-proxy-client", None),
}


def _cert(name: str, cn: str, org: str | None, sans: list[str] | None = None) -> None:
    pki = L.PKI
    key, csr, crt, ext = (pki / f"{name}.{s}" for s in ("key", "csr", "crt", "ext"))
    subj = f"/CN={cn}" + (f"/O={org}" if org else "")
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", subj])
    lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment"]
    if sans:
        lines += ["extendedKeyUsage=serverAuth,clientAuth", "subjectAltName=" + ",".join(sans)]
    else:
        lines += ["extendedKeyUsage=clientAuth"]
    ext.write_text("\n".join(lines) + "\n")
    run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            pki / "ca.crt",
            "-CAkey",
            pki / "ca.key",
            "-CAcreateserial",
            "-days",
            "3650",
            "-out",
            crt,
            "-extfile",
            ext,
        ]
    )
    csr.unlink()
    ext.unlink()


def ensure_pki() -> None:
    """Create the CA, certificates and service-account key pair that do not exist yet."""
    pki = L.PKI
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    if not (pki / "ca.crt").exists():
        say("creating cluster CA and certificates")
        run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                pki / "ca.key",
                "-out",
                pki / "ca.crt",
                "-days",
                "3650",
                "-subj",
                "/CN=deployer-e2e-ca",
            ]
        )
    if not (pki / "apiserver.crt").exists():
        _cert("apiserver", "kube-apiserver", None, APISERVER_SANS)
    for name, (cn, org) in CLIENTS.items():
        if not (pki / f"{name}.crt").exists():
            _cert(name, cn, org)
    if not (pki / "sa.key").exists():
        run(["openssl", "genrsa", "-out", pki / "sa.key", "2048"])
        run(["openssl", "rsa", "-in", pki / "sa.key", "-pubout", "-out", pki / "sa.pub"])


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def kubeconfig_text(user: str, server: str) -> str:
    """A self-contained kubeconfig (certificates embedded) for client certificate `user`."""
    pki = L.PKI
    return f"""apiVersion: v1
kind: Config
clusters:
- name: deployer-e2e
  cluster:
    server: {server}
    certificate-authority-data: {_b64(pki / "ca.crt")}
users:
- name: {user}
  user:
    client-certificate-data: {_b64(pki / f"{user}.crt")}
    client-key-data: {_b64(pki / f"{user}.key")}
contexts:
- name: deployer-e2e
  context:
    cluster: deployer-e2e
    user: {user}
current-context: deployer-e2e
"""


def write(path: Path, text: str, mode: int = 0o600) -> None:
    """Write a file only when its content changes (keeps config fingerprints stable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.chmod(tmp, mode)
        tmp.replace(path)


def ensure_kubeconfigs() -> None:
    """Component kubeconfigs (netns-internal address) and the root-netns admin kubeconfig for deployer."""
    for name in ("admin", "kcm", "scheduler", "kubelet", "kube-proxy"):
        write(L.ETC / f"{name}.kubeconfig", kubeconfig_text(name, L.INTERNAL_APISERVER_URL))
    write(L.KUBECONFIG, kubeconfig_text("admin", L.APISERVER_URL))
