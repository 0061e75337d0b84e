"""Provider for a cluster somebody else runs (e.g. the real staging cluster): DEPLOYER_KUBECONFIG.

Nothing is started or stopped; `up` only checks that the API answers through that kubeconfig.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .host import ClusterError, say

ENV = "DEPLOYER_KUBECONFIG"


def kubeconfig() -> Path:
    value = os.environ.get(ENV, "")
    path = Path(value)
    if not value or not path.is_file():
        raise ClusterError(f"{ENV} must name an existing kubeconfig file (got {value!r})")
    return path


def _kubectl(*args: str) -> subprocess.CompletedProcess[str]:
    from . import layout as L

    exe = L.tool("kubectl") if Path(L.tool("kubectl")).exists() else "kubectl"
    return subprocess.run([exe, f"--kubeconfig={kubeconfig()}", *args], capture_output=True, text=True)


def up() -> None:
    r = _kubectl("get", "--raw", "/readyz")
    if r.returncode != 0 or r.stdout.strip() != "ok":
        raise ClusterError(f"the cluster of {kubeconfig()} is not ready: {(r.stderr or r.stdout).strip()}")
    say(f"using existing cluster from {ENV}={kubeconfig()}")


def down(purge: bool = False) -> None:
    say(f"existing cluster ({ENV}): nothing to stop")


def status() -> bool:
    r = _kubectl("get", "nodes", "-o", "wide")
    print(f"provider:   existing ({ENV}={kubeconfig()})")
    print(r.stdout or r.stderr)
    return r.returncode == 0


def logs(component: str | None, lines: int, follow: bool) -> None:
    raise ClusterError("logs are not available for an existing cluster; use its own tooling")
