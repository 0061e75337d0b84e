"""Check and time the local cluster's lifecycle: down, up (from nothing), up again, down, up.

Not a pytest test (it tears down a cluster other sessions may use); run it by hand, preferably on a
second instance so the default cluster stays up for others:
    DEPLOYER_CLUSTER_INSTANCE=b python3 -m e2e.lifecycle_check
It exits non-zero when `down` leaves anything behind or an `up` fails, and prints durations and the
peak summed RSS of the cluster's processes (components, shims, containers) during each `up`.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from e2e.localcluster import host, procs
from e2e.localcluster import layout as L

CLUSTER = Path(__file__).parent / "cluster"
# Every component's command line names a file under STATE or RUN; the socats name the veth address.
OUR_MARKS = (f"{L.STATE}/", f"{L.RUN}/", f"bind={L.HOST_VETH_IP},", f"TCP:{L.HOST_VETH_IP}:")


def our_processes() -> list[str]:
    """Command lines of processes that mention our paths (ours, whatever their netns)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(m in cmd for m in OUR_MARKS) and "lifecycle_check" not in cmd:
                found.append(f"{entry.name}: {cmd[:120]}")
    return found


def leftovers() -> list[str]:
    left = [f"process {p}" for p in our_processes()]
    left += [f"mount {m}" for m in host.mounts_under(L.RUN, L.DATA, L.NETNS_PATH)]
    left += [f"cgroup {c}" for c in host.kubepods_cgroups()]
    if L.CGROUP_ROOT != "/":
        left += [f"cgroup {c}" for c in Path("/sys/fs/cgroup").glob(f"*/{L.CGROUP_ROOT.strip('/')}")]
    if host.netns_exists():
        left.append(f"netns {L.NETNS}")
    if host.run(["ip", "link", "show", L.VETH_HOST], check=False, quiet=True).returncode == 0:
        left.append(f"link {L.VETH_HOST}")
    rules = host.run(["iptables-save"]).stdout
    left += [f"root-netns iptables: {r}" for r in rules.splitlines() if "KUBE" in r or "CNI" in r]
    return left


class PeakRss:
    """Samples the summed RSS of the cluster's processes twice a second."""

    def __init__(self) -> None:
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = set(host.pids_in_netns()) | set(host.pids_in_kubepods())
            fwd = procs.running_pid(L.PIDS / "registry-forward-host.pid")
            pids |= {fwd} if fwd else set()
            self.peak_kib = max(self.peak_kib, sum(procs.rss_kib(p) for p in pids))
            time.sleep(0.5)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def step(name: str, *args: str) -> float:
    started = time.monotonic()
    with PeakRss() as rss:
        r = subprocess.run([str(CLUSTER), *args], capture_output=True, text=True)
    took = time.monotonic() - started
    print(f"{name:32} {took:6.1f}s   peak rss {rss.peak_kib // 1024:5d} MiB   exit {r.returncode}")
    if r.returncode != 0:
        print(r.stderr[-3000:], file=sys.stderr)
        sys.exit(1)
    return took


def expect_clean(after: str) -> None:
    left = leftovers()
    print(f"leftovers after {after}: {left or 'none'}")
    if left:
        sys.exit(1)


def main() -> None:
    step("down", "down")
    expect_clean("down")
    step("up (from nothing)", "up")
    step("up again (running)", "up")
    step("status", "status")
    step("down", "down")
    expect_clean("second down")
    step("up (after down)", "up")
    step("status", "status")


if __name__ == "__main__":
    main()
