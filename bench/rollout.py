"""Rollout benchmark: how soon our watcher reports a failure or a success, next to its peers: helm 3
`--wait`, helm 4 `--wait=watcher --rollback-on-failure` (kstatus) and kubedog (werf's rollout tracker).

    python bench/rollout.py [--kubeconfig PATH] [--repeat 3] [--helm-timeout 120] [--no-helm]
                            [--no-peers | --peers "helm 3 --wait,helm 4 watcher,kubedog"]
                            [--cases "crash loop,bad image,never ready,no such command"]

helm 4 and kubedog are built from their Go modules, pinned, by bench/peers.sh (into
/var/cache/deployer/tools/peers; not part of `make test`); a peer that is not built is left out and said so.

Needs the local cluster (e2e/cluster up) and the build stack's registry (scripts/stack up). Prints numbers,
asserts nothing. Everything runs on the same cluster in the same run, one thing at a time, each in a fresh
namespace that is deleted afterwards.

1. Watcher only: a Deployment from tests/resources/k8s/scenarios.py is created with the client; time from
   the create call to the watcher's verdict.
2. Failure detection, side by side, on the same broken releases of charts/service (crash loop, bad image,
   never ready, no such command): ours = `helm upgrade --install` (no --wait, as `deployer ship` runs it)
   then the watcher, timed from the helm call to the verdict; helm 3 = `helm upgrade --install --wait
   --timeout <T>` and helm 4 = the same with `--wait=watcher --rollback-on-failure`, timed to helm's exit;
   kubedog = helm 3 without --wait then `kubedog rollout track deployment` and our watcher on that same
   release at once, each timed from the helm call to its verdict (n pairs: it is as quick as ours, so the
   case-to-case spread of the cluster would otherwise decide). The helm peers run once per case (they
   mostly wait for the timeout); ratios are peer / ours.
3. Success detection: time from the Deployment being complete and Available (seen by a separate watch on
   its own connection) to each tool reporting success.
Last, issue 14's targets next to this run's numbers (met or not), and the load average at start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubernetes import client  # noqa: E402

from deployer.rollout import deployment_status, watch_rollout  # noqa: E402
from deployer.rollout.feed import RolloutFailed, RolloutSucceeded, RolloutTimedOut  # noqa: E402
from deployer.rollout.source import ApiSource  # noqa: E402
from deployer.tools.kube import DEFAULT_KUBECONFIG, load_api  # noqa: E402
from tests.resources.k8s.scenarios import deployment  # noqa: E402

HELM = os.environ.get("DEPLOYER_HELM", "/var/cache/deployer/tools/bin/helm")
PEERS = Path(os.environ.get("DEPLOYER_PEERS", "/var/cache/deployer/tools/peers"))
HELM4 = str(PEERS / "helm4")
KUBEDOG = str(PEERS / "kubedog")
CHART = REPO / "charts" / "service"
CRASH = ["sh", "-c", "echo starting up; echo 'fatal: no config' >&2; exit 3"]
SERVE = ["python3", "-m", "http.server", "8080"]
NO_COMMAND = ["/no/such/binary"]
# Quick probes for every case, as in tests/resources/k8s/scenarios.py: a never-ready pod is known after
# about 0 + 1*2 + 1 s, whatever the tool; /never is a 404 from http.server.
FAST_PROBE = {"initialDelaySeconds": 0, "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 2}
ABSENT_DIGEST = "sha256:" + "0" * 63 + "1"


@contextmanager
def namespace(api: client.ApiClient, prefix: str) -> Iterator[str]:
    core = client.CoreV1Api(api)
    ns = f"bench-{prefix}-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": ns}})
    try:
        yield ns
    finally:
        core.delete_namespace(ns, grace_period_seconds=0)


def stats(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}s"
    median, low, high = statistics.median(values), min(values), max(values)
    return f"median {median:.2f}s (min {low:.2f}, max {high:.2f}, n={len(values)})"


class AvailableObserver:
    """Watches one Deployment on its own connection and notes when it first is complete and Available."""

    def __init__(self, api: client.ApiClient, ns: str, name: str) -> None:
        self.source = ApiSource(api, ns, name)
        self.at: float | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _seen(self, obj: dict) -> None:
        if self.at is None and deployment_status(obj).complete:
            self.at = time.monotonic()

    def _run(self) -> None:
        items, version = self.source.list("deployment")
        for obj in items:
            self._seen(obj)
        for _, obj in self.source.watch("deployment", version, 300):
            if obj.get("kind") != "Status":
                self._seen(obj)
            if self.at is not None:
                return

    def __enter__(self) -> AvailableObserver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=5)
        self.source.stop()


def helm(
    kubeconfig: str,
    ns: str,
    values: dict,
    *,
    wait_timeout: int | None = None,
    binary: str = HELM,
    wait_flags: tuple[str, ...] = ("--wait",),
) -> tuple[int, float, str]:
    """`helm upgrade --install web charts/service -f values`: (exit code, seconds, last stderr line).
    With `wait_timeout`, `wait_flags` and `--timeout` are added (helm 4: `--wait=watcher …`)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(values, f)
    argv = [
        binary,
        "upgrade",
        "--install",
        "web",
        str(CHART),
        "-n",
        ns,
        "--kubeconfig",
        kubeconfig,
        "-f",
        f.name,
    ]
    if wait_timeout is not None:
        argv += [*wait_flags, "--timeout", f"{wait_timeout}s"]
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=(wait_timeout or 60) + 60)
    took = time.monotonic() - start
    os.unlink(f.name)
    return done.returncode, took, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


def chart_values(image: str, digest: str, command: list[str], readiness_path: str = "/") -> dict:
    return {
        "fullnameOverride": "web",
        "image": {"repository": image, "digest": digest, "tag": "12"},
        "app": {"command": command, "port": 8080},
        "probes": {
            "readiness": {"enabled": True, "path": readiness_path, **FAST_PROBE},
            "liveness": {"enabled": True, "path": "/", **FAST_PROBE, "initialDelaySeconds": 5},
        },
        "test": {"enabled": False},
    }


def base_image_digest(api: client.ApiClient) -> tuple[str, str]:
    """Repository and digest of the python3 base image, as the node pulled it (from a healthy pod)."""
    with namespace(api, "digest") as ns:
        client.AppsV1Api(api).create_namespaced_deployment(ns, deployment("web", "healthy"))
        verdict = watch_rollout(api, ns, "web", timeout=120)
        if not verdict.healthy:
            raise SystemExit(f"the healthy scenario did not roll out: {verdict.summary()}")
        pod = client.CoreV1Api(api).list_namespaced_pod(ns, label_selector="app=web").items[0]
        image_id = pod.status.container_statuses[0].image_id  # 127.0.0.1:5000/base/python3@sha256:...
        repo, digest = image_id.split("@", 1)
        return repo, digest


def watcher_only(api: client.ApiClient, scenario: str) -> tuple[str, float]:
    with namespace(api, scenario) as ns:
        since = datetime.now(UTC)
        start = time.monotonic()
        client.AppsV1Api(api).create_namespaced_deployment(ns, deployment("web", scenario))
        verdict = watch_rollout(api, ns, "web", timeout=120, since=since)
        return verdict.reason, time.monotonic() - start


def ours_via_helm(api: client.ApiClient, kubeconfig: str, values: dict) -> tuple[str, float, float]:
    """(verdict reason, seconds from the helm call to the verdict, seconds helm itself took)."""
    with namespace(api, "ours") as ns:
        since = datetime.now(UTC)
        start = time.monotonic()
        rc, helm_took, err = helm(kubeconfig, ns, values)
        if rc != 0:
            raise SystemExit(f"helm upgrade --install failed: {err}")
        verdict = watch_rollout(api, ns, "web", timeout=180, since=since)
        return verdict.reason, time.monotonic() - start, helm_took


def helm_wait(api: client.ApiClient, kubeconfig: str, values: dict, timeout: int) -> tuple[int, float, str]:
    with namespace(api, "helm") as ns:
        return helm(kubeconfig, ns, values, wait_timeout=timeout)


HELM4_WAIT = ("--wait=watcher", "--rollback-on-failure")
CASES = ("crash loop", "bad image", "never ready", "no such command")
PEER_NAMES = ("helm 3 --wait", "helm 4 watcher", "kubedog")


def helm4_wait(api: client.ApiClient, kubeconfig: str, values: dict, timeout: int) -> tuple[int, float, str]:
    with namespace(api, "helm4") as ns:
        return helm(kubeconfig, ns, values, wait_timeout=timeout, binary=HELM4, wait_flags=HELM4_WAIT)


def kubedog_track(kubeconfig: str, ns: str, timeout: int) -> tuple[int, str]:
    """`kubedog rollout track deployment web`: (exit code, its last error line)."""
    argv = [KUBEDOG, "rollout", "track", "deployment", "web", "-n", ns, "--kube-config", kubeconfig]
    argv += ["--timeout", str(timeout)]
    env = {**os.environ, "KUBEDOG_NO_COLOR": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 60, env=env)
    said = (done.stderr.strip() or done.stdout.strip()).splitlines()
    panic = [line.strip() for line in said if line.startswith("panic:") or "/pkg/tracker/" in line]
    if panic:  # a Go panic: its message and where, not the last line of the goroutine dump
        return done.returncode, "crashed: " + " at ".join(panic[:2])
    return done.returncode, said[-1] if said else ""


def kubedog_beside_ours(
    api: client.ApiClient, kubeconfig: str, values: dict, timeout: int
) -> tuple[int, float, str, str, float, float]:
    """One release, both trackers at once: helm 3 without --wait, then kubedog (its own process) and our
    watcher (this process) follow the same Deployment, each timed from the helm call to its verdict:
    (kubedog's exit code, its seconds, its last line, our reason, our seconds, and when our watch had
    decided: the verdict then still fetches the failing container's log tail and the Warning events). Two
    releases of the same case differ by more (image pull, kubelet back-off, the probe's phase) than two
    watch-based trackers do, so only a pair on one release says which of the two is sooner."""
    with namespace(api, "kubedog") as ns:
        since = datetime.now(UTC)
        start = time.monotonic()
        rc, _, err = helm(kubeconfig, ns, values)
        if rc != 0:
            raise SystemExit(f"helm upgrade --install failed: {err}")
        theirs: list[tuple[int, str, float]] = []

        def track() -> None:
            rc, said = kubedog_track(kubeconfig, ns, timeout)
            theirs.append((rc, said, time.monotonic() - start))

        decided: list[float] = []

        def seen(event: object) -> None:
            if isinstance(event, RolloutFailed | RolloutSucceeded | RolloutTimedOut):
                decided.append(time.monotonic() - start)

        thread = threading.Thread(target=track, daemon=True)
        thread.start()
        verdict = watch_rollout(api, ns, "web", timeout=180, since=since, on_event=seen)
        ours_took = time.monotonic() - start
        thread.join(timeout + 90)
        if not theirs:
            raise SystemExit(f"kubedog did not exit within {timeout + 60}s of its own --timeout {timeout}")
        rc, said, took = theirs[0]
        return rc, took, said, verdict.reason, ours_took, decided[0] if decided else ours_took


def kubedog_case(api: client.ApiClient, kubeconfig: str, values: dict, timeout: int, n: int) -> float:
    """n pairs on one broken case, each printed; kubedog's median over ours' median beside it."""
    pairs = [kubedog_beside_ours(api, kubeconfig, values, timeout) for _ in range(n)]
    for rc, took, said, reason, ours_took, decided in pairs:
        beside = f"ours {reason} after {ours_took:5.2f}s (decided {decided:5.2f}s; {took / ours_took:4.2f}x)"
        print(f"    {'kubedog':15s} exit {rc} after {took:6.2f}s, {beside}: {said[:80]}")
    return statistics.median([p[1] for p in pairs]) / statistics.median([p[4] for p in pairs])


HelmPeer = Callable[[client.ApiClient, str, dict, int], tuple[int, float, str]]


def peers(wanted: set[str]) -> tuple[dict[str, HelmPeer], bool]:
    """The helm peers in `wanted` that are built here, by label, and whether kubedog runs; each one
    wanted but not built is said."""
    found: dict[str, HelmPeer] = {"helm 3 --wait": helm_wait}
    if os.access(HELM4, os.X_OK):
        found["helm 4 watcher"] = helm4_wait
    elif "helm 4 watcher" in wanted:
        print(f"(helm 4 watcher left out: {HELM4} is not built; run bench/peers.sh)")
    kubedog = "kubedog" in wanted and os.access(KUBEDOG, os.X_OK)
    if "kubedog" in wanted and not kubedog:
        print(f"(kubedog left out: {KUBEDOG} is not built; run bench/peers.sh)")
    return {label: run for label, run in found.items() if label in wanted}, kubedog


def success_latency(
    api: client.ApiClient, kubeconfig: str, values: dict, run: Callable[[str], object]
) -> tuple[float | None, str]:
    with namespace(api, "ok") as ns, AvailableObserver(api, ns, "web") as observer:
        run(ns)
        end = time.monotonic()
        time.sleep(0.2)
        if observer.at is None:
            return None, "the observer never saw the Deployment available"
        return end - observer.at, ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="rollout watcher vs helm --wait")
    parser.add_argument("--kubeconfig", default=DEFAULT_KUBECONFIG)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--helm-timeout", type=int, default=120)
    parser.add_argument("--no-helm", action="store_true", help="only the watcher-only numbers")
    parser.add_argument("--no-peers", action="store_true", help="leave helm 4 and kubedog out")
    parser.add_argument("--peers", default=",".join(PEER_NAMES), help="the peers to run, comma-separated")
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help="the broken releases of part 2, comma-separated (each costs a timeout)",
    )
    args = parser.parse_args(argv)
    api = load_api(args.kubeconfig)
    n = args.repeat

    print(f"load average at start: {load()}")
    print("== 1. watcher only: Deployment created with the client -> verdict")
    for scenario in ("crashloop", "imagepull", "nocommand", "notready", "deadline"):
        runs = [watcher_only(api, scenario) for _ in range(n)]
        reasons = sorted({r for r, _ in runs})
        print(f"  {scenario:10s} {','.join(reasons):26s} {stats([t for _, t in runs])}")

    if args.no_helm or not CHART.is_dir() or not Path(HELM).exists():
        print("(helm comparison skipped: --no-helm, or charts/service or helm missing)")
        return 0

    wanted = {"helm 3 --wait"} if args.no_peers else set(args.peers.split(","))
    if wanted - set(PEER_NAMES):
        parser.error(f"--peers: unknown {sorted(wanted - set(PEER_NAMES))}; known: {', '.join(PEER_NAMES)}")
    others, with_kubedog = peers(wanted)
    repo, digest = base_image_digest(api)
    healthy = chart_values(repo, digest, SERVE)
    broken = {
        "crash loop": chart_values(repo, digest, CRASH),
        "bad image": chart_values(repo, ABSENT_DIGEST, SERVE),
        "never ready": chart_values(repo, digest, SERVE, readiness_path="/never"),
        "no such command": chart_values(repo, digest, NO_COMMAND),
    }
    names = ", ".join([*others, "kubedog"] if with_kubedog else others)
    print(
        f"\n== 2. failure detection, same broken release of charts/service: ours (helm without --wait + "
        f"watcher) vs {names} (timeout {args.helm_timeout}s)"
    )
    if with_kubedog:
        print(f"  (kubedog and ours on one release at once, {n} times; the helm peers once per case)")
    ratios: dict[str, dict[str, float]] = {}
    cases = args.cases.split(",")
    if set(cases) - set(CASES):
        parser.error(f"--cases: unknown {sorted(set(cases) - set(CASES))}; known: {', '.join(CASES)}")
    for label, values in ((case, broken[case]) for case in cases):
        ours = [ours_via_helm(api, args.kubeconfig, values) for _ in range(n)]
        reasons = ",".join(sorted({r for r, _, _ in ours}))
        ours_t = [t for _, t, _ in ours]
        print(f"  {label}")
        applied = stats([h for _, _, h in ours])
        print(f"    {'ours':15s} {reasons} after {stats(ours_t)}  (of which helm apply {applied})")
        for peer, run in others.items():
            rc, took, err = run(api, args.kubeconfig, values, args.helm_timeout)
            ratio = took / statistics.median(ours_t)
            ratios.setdefault(peer, {})[label] = ratio
            print(f"    {peer:15s} exit {rc} after {took:6.2f}s ({ratio:5.1f}x ours): {err[:140]}")
        if with_kubedog:
            ratios.setdefault("kubedog", {})[label] = kubedog_case(
                api, args.kubeconfig, values, args.helm_timeout, n
            )
    print(
        "  peer / ours per case (helm: its run / median of ours; kubedog: median / median of ours beside it):"
    )
    for peer, by_case in ratios.items():
        print(f"    {peer:15s} " + "  ".join(f"{case} {r:.1f}x" for case, r in by_case.items()))

    print("\n== 3. success detection: Deployment complete+Available (own watch) -> success reported")
    runners: dict[str, Callable[[str], object]] = {
        "ours": lambda ns: (helm(args.kubeconfig, ns, healthy), watch_rollout(api, ns, "web", timeout=120)),
    }
    if "helm 3 --wait" in others:
        runners["helm 3 --wait"] = lambda ns: helm(args.kubeconfig, ns, healthy, wait_timeout=120)
    if "helm 4 watcher" in others:
        runners["helm 4 watcher"] = lambda ns: helm(
            args.kubeconfig, ns, healthy, wait_timeout=120, binary=HELM4, wait_flags=HELM4_WAIT
        )
    if with_kubedog:
        runners["kubedog"] = lambda ns: (
            helm(args.kubeconfig, ns, healthy),
            kubedog_track(args.kubeconfig, ns, 120),
        )
    latencies: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(n):
        for name, run in runners.items():
            lat, note = success_latency(api, args.kubeconfig, healthy, run)
            latencies[name].append(lat) if lat is not None else print(f"  {name}: {note}")
    for name, values in latencies.items():
        print(f"  {name:15s} {stats(values)}")
    print_targets(ratios, latencies)
    print(f"load average at end: {load()}")
    return 0


def load() -> str:
    """The 1, 5 and 15 minute load averages: on 2 shared cores, the context every time above needs."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} cores)"


# Issue 14's targets for the peers (item 1). A ratio is peer time / ours, so above 1 the peer is slower.
SOONER_THAN_HELM4 = {"crash loop": 20.0, "bad image": 20.0}
SUCCESS_LATENCY = 0.1


def print_targets(ratios: dict[str, dict[str, float]], latencies: dict[str, list[float]]) -> None:
    """Each target of issue 14 item 1 next to what this run measured; a peer left out is said, not passed."""
    print("\n== targets (issue 14 item 1)")

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    kubedog = ratios.get("kubedog")
    if kubedog:
        for case, r in kubedog.items():
            print(f"  ours no slower than kubedog, {case:15s} kubedog/ours {r:5.2f}x  {verdict(r >= 1.0)}")
    else:
        print("  ours no slower than kubedog: not measured (kubedog left out)")
    helm4 = ratios.get("helm 4 watcher")
    for case, want in SOONER_THAN_HELM4.items():
        label = f"  >= {want:.0f}x sooner than helm 4, {case:11s}"
        if helm4 and case in helm4:
            print(f"{label} helm4/ours {helm4[case]:5.1f}x  {verdict(helm4[case] >= want)}")
        else:
            print(f"{label} not measured (helm 4 or the case left out)")
    ours = latencies.get("ours", [])
    if ours:
        median = statistics.median(ours)
        label = f"  success reported <= {SUCCESS_LATENCY}s after Available:"
        print(f"{label} ours median {median:.3f}s  {verdict(median <= SUCCESS_LATENCY)}")
        if latencies.get("kubedog"):
            theirs = statistics.median(latencies["kubedog"])
            said = f"kubedog median {theirs:.3f}s  {verdict(median <= theirs)}"
            print(f"  ours no slower than kubedog, success:    {said}")
    else:
        print("  success latency: not measured (no run of ours saw the Deployment available)")


if __name__ == "__main__":
    sys.exit(main())
