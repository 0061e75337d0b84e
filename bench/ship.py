"""Whole-ship overhead: `deployer ship` next to the same work done by hand with the raw commands.

    python bench/ship.py [--repeat 3] [--kubeconfig PATH] [--service examples/node-hello] [--profile-tools]

Needs docker and the registry (scripts/stack up) and the cluster (e2e/cluster up). Prints numbers, asserts
nothing. Same service, same cluster, same run, one thing at a time.

By hand ("raw"), what a person would type for one change, timed from the first command to helm's exit:
    blubber → Dockerfiles; docker build (test variant); docker run (the tests); docker build (production);
    docker tag + docker push; helm upgrade --install --wait (a chart rendered once beforehand, the new
    digest passed with --set).
deployer: `deployer ship <copy> --skip-smoke` and `deployer ship <copy>` (smoke: `helm test` and one
HTTP check), timed as processes, so start-up, compile, lint/package/push of the chart, the lock, the
watcher and the report writing are all inside.

Every timed run starts with a one-line source change (a comment in app.js), so each one really builds,
pushes and rolls out a new image; the npm layer stays cached for all of them alike. The raw commands and
deployer use separate namespaces (and releases) with the same configuration, installed once before the
timed runs; the order of the three runs alternates between repetitions. Medians over `--repeat` runs.
`--profile-tools` then runs one more ship in-process and times each tool process it starts (docker, git,
helm through deployer.tools.command.run), with the fixed cost of one such process.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import blubber  # noqa: E402
from deployer import chart as chart_mod  # noqa: E402
from deployer import deploy_config, policies  # noqa: E402
from deployer.chart import ImageRef  # noqa: E402
from deployer.target import builtin_registry  # noqa: E402
from deployer.tools.kube import DEFAULT_KUBECONFIG  # noqa: E402
from deployer.tools.registry import credentials  # noqa: E402

REGISTRY = builtin_registry().host  # the local stack's ($DEPLOYER_REGISTRY moves it)
DOCKER = "/usr/bin/docker"  # Debian's client: BuildKit without buildx, as deployer uses
HELM = os.environ.get("DEPLOYER_HELM", "/var/cache/deployer/tools/bin/helm")
DEPLOYER = str(Path(sys.executable).parent / "deployer")

DEPLOY_YAML = """namespace: {namespace}
smoke:
  helmTest: true
  checks:
    - {{name: root, path: /, body: hello from node-hello}}
"""


@dataclass
class Bench:
    root: Path  # the service copy
    kubeconfig: str
    docker_config: Path
    raw_namespace: str
    ship_namespace: str
    raw_chart: Path | None = None
    edits: int = 0
    last_steps: str = ""

    @property
    def name(self) -> str:
        return self.root.name

    def change_source(self) -> None:
        """A one-line source change: every layer from the COPY of the source on is rebuilt."""
        self.edits += 1
        app = self.root / "app.js"
        text = re.sub(r"\n// bench edit \d+\n$", "\n", app.read_text())
        app.write_text(f"{text.rstrip()}\n// bench edit {self.edits}\n")

    def docker(self, *args: str, input: str | None = None) -> str:
        env = {**os.environ, "DOCKER_CONFIG": str(self.docker_config), "DOCKER_BUILDKIT": "1"}
        done = subprocess.run(
            [DOCKER, *args], input=input, capture_output=True, text=True, env=env, check=False, timeout=900
        )
        if done.returncode:
            raise SystemExit(f"docker {args[0]} failed: {done.stderr[-2000:]}")
        return done.stdout

    def helm(self, *args: str) -> str:
        done = subprocess.run(
            [HELM, *args, "--kubeconfig", self.kubeconfig], capture_output=True, text=True, timeout=600
        )
        if done.returncode:
            raise SystemExit(f"helm {args[0]} failed: {done.stderr[-2000:]}")
        return done.stdout

    # --- by hand ---------------------------------------------------------------------------------------

    def raw(self) -> float:
        """The raw commands for one change; seconds."""
        self.change_source()
        started = time.monotonic()
        marks: list[tuple[str, float]] = []

        def mark(what: str) -> None:
            marks.append((what, time.monotonic()))

        config = blubber.load(self.root / ".pipeline" / "blubber.yaml", policy=policies.BLUBBER)
        test_df = blubber.compile_dockerfile(config, "test")
        prod_df = blubber.compile_dockerfile(config, "production")
        local = f"bench-raw/{self.name}"
        build = ["build", "--network", "host", "--progress", "plain", "-f", "-"]
        mark("blubber")
        self.docker(*build, "--tag", f"{local}:test", str(self.root), input=test_df)
        mark("build-test")
        self.docker("run", "--rm", "--network", "host", f"{local}:test")
        mark("run-test")
        self.docker(*build, "--tag", f"{local}:production", str(self.root), input=prod_df)
        mark("build")
        tag = f"raw-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{self.edits}"
        remote = f"{REGISTRY}/staging/{self.name}:{tag}"
        self.docker("tag", f"{local}:production", remote)
        pushed = self.docker("push", remote)
        mark("tag+push")
        digest = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed)
        if not digest:
            raise SystemExit(f"docker push printed no digest: {pushed[-500:]}")
        assert self.raw_chart is not None
        self.helm(
            "upgrade", "--install", self.name, str(self.raw_chart), "--namespace", self.raw_namespace,
            "--create-namespace", "--wait", "--timeout", "300s",
            "--set", f"image.digest={digest.group(1)}", "--set", f"image.tag={tag}",
        )  # fmt: skip
        mark("helm --wait")
        elapsed = time.monotonic() - started
        self.docker("image", "rm", "--no-prune", remote)
        previous = started
        steps = []
        for what, when in marks:
            steps.append(f"{what} {when - previous:.1f}")
            previous = when
        self.last_steps = " ".join(steps)
        return elapsed

    def render_raw_chart(self, image: str, out: Path) -> None:
        """The chart a person would keep for the raw helm command: rendered once, like ship renders it."""
        config = blubber.load(self.root / ".pipeline" / "blubber.yaml", policy=policies.BLUBBER)
        deploy = deploy_config.load(self.root)
        values = chart_mod.render_values(
            deploy, blubber.runtime(config, deploy.variant), ImageRef.parse(image)
        )
        self.raw_chart = chart_mod.write_chart(out, self.name, chart_mod.chart_version(), values).path

    # --- deployer --------------------------------------------------------------------------------------

    def ship(self, *, smoke: bool) -> tuple[float, dict]:
        self.change_source()
        report = self.root.parent / "report.json"
        argv = [DEPLOYER, "ship", str(self.root), "--kubeconfig", self.kubeconfig, "--report", str(report)]
        if not smoke:
            argv.append("--skip-smoke")
        env = {k: v for k, v in os.environ.items() if k != "CI"}  # the copy is not a git work tree
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
        elapsed = time.monotonic() - started
        if done.returncode:
            raise SystemExit(
                f"deployer ship exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
            )
        return elapsed, json.loads(report.read_text())


def _tool_profile(bench: Bench) -> None:
    """One more ship, in-process, with every tool process it starts timed (deployer.tools.command.run),
    and the fixed cost of one such process (`true` through command.run vs subprocess.run) measured on the
    spot."""
    import collections
    import io

    from deployer import ship as ship_mod
    from deployer.reporting import display as output
    from deployer.tools import command

    def per_call(fn: object, n: int = 10) -> float:
        started = time.monotonic()
        for _ in range(n):
            fn()  # type: ignore[operator]
        return (time.monotonic() - started) / n

    floor = per_call(lambda: command.run("true", ["/bin/true"]))
    bare = per_call(lambda: subprocess.run(["/bin/true"], check=True))
    calls: list[tuple[float, str, str]] = []
    original = command.run

    def timed(tool: str, argv: list[str], **kwargs: object) -> object:
        started = time.monotonic()
        try:
            return original(tool, argv, **kwargs)  # type: ignore[arg-type]
        finally:
            calls.append((time.monotonic() - started, tool, " ".join(str(a) for a in argv[1:3])))

    bench.change_source()
    command.run = timed  # type: ignore[assignment]
    try:
        started = time.monotonic()
        display = output.make_display(ci=True, color=False, stream=io.StringIO())
        code = ship_mod.run(
            ship_mod.ShipConfig(service=str(bench.root), kubeconfig=Path(bench.kubeconfig), smoke=False),
            display=display,
        )
        total = time.monotonic() - started
    finally:
        command.run = original  # type: ignore[assignment]
    count = collections.Counter(tool for _, tool, _ in calls)
    print(f"\ntool processes of one ship --skip-smoke (exit {code}, {total:.1f}s in-process):")
    print(f"  {len(calls)} processes {dict(count)}, {sum(c[0] for c in calls):.1f}s inside them")
    print(
        f"  fixed cost of one process: {floor * 1000:.0f} ms through deployer.tools.command.run, "
        f"{bare * 1000:.0f} ms with subprocess.run -> about {len(calls) * (floor - bare):.1f}s of this ship"
    )
    for seconds, tool, args in calls:
        print(f"    {seconds:5.2f}s  {tool} {args}")


def _stages(report: dict) -> str:
    return " ".join(f"{s['name']} {s['duration_seconds']:.1f}" for s in report["stages"])


def _delete_manifests(repo: str, auth: dict[str, str]) -> None:
    """Delete every manifest tagged in `repo` (what the bench pushed); the registry's GC owns the blobs."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(f"http://{REGISTRY}/v2/{repo}/tags/list", headers=auth), timeout=10
        ) as r:
            tags = json.loads(r.read()).get("tags") or []
        accept = (
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
        )
        digests = set()
        for tag in tags:
            head = urllib.request.Request(
                f"http://{REGISTRY}/v2/{repo}/manifests/{tag}",
                method="HEAD",
                headers={**auth, "Accept": accept},
            )
            with urllib.request.urlopen(head, timeout=10) as r:
                digests.add(r.headers["Docker-Content-Digest"])
        for digest in digests:
            delete = urllib.request.Request(
                f"http://{REGISTRY}/v2/{repo}/manifests/{digest}", method="DELETE", headers=auth
            )
            urllib.request.urlopen(delete, timeout=10).close()
    except urllib.error.URLError as e:
        print(f"(registry cleanup of {repo} incomplete: {e})")


def _cleanup(bench: Bench) -> None:
    for ns in (bench.raw_namespace, bench.ship_namespace):
        subprocess.run(
            [HELM, "uninstall", bench.name, "-n", ns, "--kubeconfig", bench.kubeconfig], capture_output=True
        )
        subprocess.run(
            [str(Path(HELM).parent / "kubectl"), "--kubeconfig", bench.kubeconfig, "delete", "namespace", ns,
             "--wait=false"],
            capture_output=True,
        )  # fmt: skip
    creds = credentials()
    token = base64.b64encode(f"{creds.user}:{creds.password}".encode()).decode()
    auth = {"Authorization": f"Basic {token}"}
    for repo in (f"staging/{bench.name}", f"staging/charts/{bench.name}"):
        _delete_manifests(repo, auth)
    refs = [
        r
        for r in bench.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").split()
        if r.split(":")[0].endswith(f"/{bench.name}")
    ]
    if refs:
        subprocess.run(
            [DOCKER, "image", "rm", "--force", *refs],
            capture_output=True,
            env={**os.environ, "DOCKER_CONFIG": str(bench.docker_config)},
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG)
    parser.add_argument("--service", type=Path, default=REPO / "examples" / "node-hello")
    parser.add_argument(
        "--profile-tools", action="store_true", help="also time every tool process of one more ship"
    )
    args = parser.parse_args()

    suffix = secrets.token_hex(3)
    with tempfile.TemporaryDirectory(prefix="bench-ship-") as tmp:
        root = Path(tmp) / f"e8bench-{suffix}"
        shutil.copytree(args.service, root, ignore=shutil.ignore_patterns("node_modules", ".git"))
        docker_config = Path(tmp) / "docker"
        docker_config.mkdir()
        bench = Bench(root, args.kubeconfig, docker_config, f"e8b-raw-{suffix}", f"e8b-ship-{suffix}")
        (root / ".pipeline" / "deploy.yaml").write_text(DEPLOY_YAML.format(namespace=bench.ship_namespace))
        creds = credentials()
        bench.docker("login", REGISTRY, "--username", creds.user, "--password-stdin", input=creds.password)
        try:
            # Warm-up, untimed: install both releases, fill the build cache for this copy.
            print(f"service copy {root.name}; warm-up (untimed): one ship, one raw install")
            _, report = bench.ship(smoke=False)
            (image,) = [i for i in report["images"] if i.get("pushed")]
            bench.render_raw_chart(f"{image['repository']}@{image['digest']}", Path(tmp) / "raw-chart")
            bench.raw()

            times: dict[str, list[float]] = {"raw": [], "ship --skip-smoke": [], "ship (with smoke)": []}
            # the chart stage (lint, package, push the chart as an OCI artifact) is work the raw commands
            # do not do at all; shown separately so overhead and extra work can be told apart
            without_chart: dict[str, list[float]] = {"ship --skip-smoke": [], "ship (with smoke)": []}
            for rep in range(args.repeat):
                order = ["raw", "ship --skip-smoke", "ship (with smoke)"]
                if rep % 2:
                    order.reverse()
                for what in order:
                    if what == "raw":
                        seconds = bench.raw()
                        detail = f"  [{bench.last_steps}]"
                    else:
                        seconds, report = bench.ship(smoke=what == "ship (with smoke)")
                        detail = f"  [{_stages(report)}]"
                        chart = next(s["duration_seconds"] for s in report["stages"] if s["name"] == "chart")
                        without_chart[what].append(seconds - chart)
                    times[what].append(seconds)
                    print(f"rep {rep + 1}: {what:<18} {seconds:6.1f}s{detail}", flush=True)
            if args.profile_tools:
                _tool_profile(bench)
        finally:
            _cleanup(bench)

    raw = statistics.median(times["raw"])
    print(f"\nmedians over {args.repeat} repetitions (same service, cluster and run):")
    print(f"  raw commands by hand       {raw:6.1f}s  (all: {', '.join(f'{t:.1f}' for t in times['raw'])})")
    for what in ("ship --skip-smoke", "ship (with smoke)"):
        t = statistics.median(times[what])
        runs = ", ".join(f"{x:.1f}" for x in times[what])
        print(
            f"  deployer {what:<18}{t:6.1f}s  ratio {t / raw:.2f} "
            f"({(t / raw - 1) * 100:+.0f} % vs raw)  (all: {runs})"
        )
    t = statistics.median(without_chart["ship --skip-smoke"])
    print(f"  deployer ship --skip-smoke minus its chart stage {t:.1f}s  ratio {t / raw:.2f}")
    print("target: deployer ship --skip-smoke within +10 % of the raw commands")


if __name__ == "__main__":
    main()
