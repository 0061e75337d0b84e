"""`e2e/cluster [--provider P] up | down | status | logs [component]` for the e2e Kubernetes cluster.

Provider: --provider, else DEPLOYER_CLUSTER_PROVIDER, else local: local (host processes in a netns)
| kind (nodes in docker; DEPLOYER_KIND_NODES=3 for one control plane and two workers) | existing.
Setting DEPLOYER_KUBECONFIG selects `existing` unless a provider is named explicitly.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
from pathlib import Path
from types import ModuleType

from . import layout as L
from .host import ClusterError, say

PROVIDERS = ("local", "kind", "existing")


def provider_name() -> str:
    """The provider named by DEPLOYER_CLUSTER_PROVIDER, else the default (see the module docstring)."""
    return os.environ.get("DEPLOYER_CLUSTER_PROVIDER") or (
        "existing" if os.environ.get("DEPLOYER_KUBECONFIG") else "local"
    )


def provider(name: str | None = None) -> ModuleType:
    name = name or provider_name()
    if name == "local":
        from . import local as mod
    elif name == "kind":
        from . import kind as mod
    elif name == "existing":
        from . import existing as mod
    else:
        raise ClusterError(f"unknown DEPLOYER_CLUSTER_PROVIDER {name!r} (local, kind or existing)")
    return mod


def _lock(name: str) -> None:
    """Serialize up/down: several test sessions may ask for the cluster at once. Held until exit."""
    where = L.STATE if name != "kind" else Path("/var/lib/deployer/kind")
    where.mkdir(parents=True, exist_ok=True)
    fd = os.open(where / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say("another e2e/cluster up/down is running; waiting for it")
        fcntl.flock(fd, fcntl.LOCK_EX)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="e2e/cluster", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--provider", choices=PROVIDERS, help="default: $DEPLOYER_CLUSTER_PROVIDER or local")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the cluster (idempotent); returns when a test pod runs")
    down = sub.add_parser("down", help="stop it and remove processes, mounts, netns, iptables rules")
    down.add_argument("--purge", action="store_true", help="also remove certificates, configs and logs")
    sub.add_parser("status", help="what runs; exit 0 only when all components run and the node is Ready")
    logs = sub.add_parser("logs", help="component logs")
    logs.add_argument("component", nargs="?")
    logs.add_argument("-n", "--lines", type=int, default=None)
    logs.add_argument("-f", "--follow", action="store_true")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 and args.command in ("up", "down"):
        print("e2e/cluster: must run as root (network namespaces, mounts, cgroups)", file=sys.stderr)
        return 2
    try:
        name = args.provider or provider_name()
        mod = provider(name)
        if args.command in ("up", "down"):
            _lock(name)
        if args.command == "up":
            mod.up()
        elif args.command == "down":
            mod.down(purge=args.purge)
        elif args.command == "status":
            return 0 if mod.status() else 3
        else:
            lines = args.lines or (200 if args.component else 20)
            mod.logs(args.component, lines, args.follow)
    except ClusterError as e:
        print(f"e2e/cluster {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
