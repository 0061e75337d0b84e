"""Whole-ship overhead: `deployer ship` next to the same work done by hand with the raw commands.

    python bench/ship.py [--repeat 5] [--service examples/node-hello --service examples/python-hello]
                         [--no-team] [--kubeconfig PATH] [--profile-tools]

Needs docker and the registry (scripts/stack up) and the cluster (e2e/cluster up); the team registry line
needs scripts/team-registry up (skipped, and said, when it does not answer). Prints numbers, asserts
nothing. Same service, same cluster, same run, one thing at a time.

By hand ("raw"), what a person would type for one change, timed from the first command to helm's exit:
    blubber → Dockerfiles; docker build (test variant); docker run (the tests); docker build (production);
    docker tag + docker push; helm upgrade --install --wait (a chart rendered once beforehand, the new
    digest passed with --set).
deployer: `deployer ship <copy> --skip-smoke` and `deployer ship <copy>` (smoke: `helm test` and one
HTTP check), timed as processes, so start-up, compile, the chart (linted beside the tests, packaged and
pushed after the image), the lock, the watcher, the background work joined at the end and the report
writing are all inside.
Team registry (first service only): `deployer ship <copy> --skip-smoke --config e2e/testdata/deployer.yaml
--env staging` (TLS with the set-up's CA, bearer tokens; the `ci` user's credentials exported as
e2e/test_team_ship.py does) in the same rotation, against the local registry's `ship --skip-smoke`.

Every timed run starts with a one-line source change (a comment in app.js / app.py), so each one really
builds, pushes and rolls out a new image; the dependency layers stay cached for all of them alike. The raw
commands and deployer use separate namespaces (and releases) with the same configuration, installed once
before the timed runs; the order of the runs alternates between repetitions. Medians over `--repeat` runs,
with the load average at the start and end of each service's runs, then the floors (what must stay in a
row whatever overlaps), and the ship's time by part beside the raw step that does the same work, with
what ran beside the stages (from the report).
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
from dataclasses import dataclass, field
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
    - {{name: root, path: /, body: hello from {example}}}
"""
TEAM_CONFIG = REPO / "e2e" / "testdata" / "deployer.yaml"
# a one-line change to each example's main source file, in that language's comment syntax
SOURCES = {"app.js": "//", "app.py": "#"}


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
    raw_steps: list[dict[str, float]] = field(default_factory=list)  # each raw run's step seconds
    team_namespace: str | None = None  # set when the team registry takes part
    team_env: dict[str, str] | None = None

    @property
    def name(self) -> str:
        return self.root.name

    def change_source(self) -> None:
        """A one-line source change: every layer from the COPY of the source on is rebuilt."""
        self.edits += 1
        name, comment = next((n, c) for n, c in SOURCES.items() if (self.root / n).exists())
        app = self.root / name
        text = re.sub(rf"\n{comment} bench edit \d+\n$", "\n", app.read_text())
        app.write_text(f"{text.rstrip()}\n{comment} bench edit {self.edits}\n")

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
        steps: dict[str, float] = {}
        for what, when in marks:
            steps[what] = when - previous
            previous = when
        self.raw_steps.append(steps)
        self.last_steps = " ".join(f"{what} {seconds:.1f}" for what, seconds in steps.items())
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

    def ship(self, *, smoke: bool, team: bool = False) -> tuple[float, dict]:
        self.change_source()
        report = self.root.parent / "report.json"
        argv = [DEPLOYER, "ship", str(self.root), "--report", str(report)]
        # the copy is not a git work tree: not in CI mode
        env = {k: v for k, v in os.environ.items() if k != "CI"}
        if team:
            assert self.team_env is not None and self.team_namespace is not None
            argv += ["--config", str(TEAM_CONFIG), "--env", "staging", "--namespace", self.team_namespace]
            env = {k: v for k, v in env.items() if k not in ("KUBECONFIG", "DEPLOYER_REGISTRY")}
            env |= self.team_env
        else:
            argv += ["--kubeconfig", self.kubeconfig]
        if not smoke:
            argv.append("--skip-smoke")
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
        elapsed = time.monotonic() - started
        if done.returncode:
            raise ShipFailed(done.returncode, f"{done.stdout[-3000:]}{done.stderr[-2000:]}")
        return elapsed, json.loads(report.read_text())


class ShipFailed(Exception):
    """A timed ship that failed: said and counted, left out of the medians (a warm-up's failure stops the
    bench: there is nothing to compare against)."""

    def __init__(self, code: int, output: str) -> None:
        super().__init__(f"deployer ship exited {code}:\n{output}")
        self.code = code
        cause = [line.strip() for line in output.splitlines() if line.strip().startswith("cause:")]
        self.cause = cause[0] if cause else (output.strip().splitlines() or ["no output"])[-1]


def _tool_profile(bench: Bench) -> None:
    """One more ship, in-process, with every tool process it starts timed (deployer.tools.command.run)
    from and to seconds after the ship started, in order of start, among the stages' starts and ends (what
    ran beside what), and the fixed cost of one such process (`true` through command.run vs subprocess.run)
    measured on the spot."""
    import collections
    import io

    from deployer import ship as ship_mod
    from deployer import workflow
    from deployer.reporting import display as output
    from deployer.tools import command

    def per_call(fn: object, n: int = 10) -> float:
        started = time.monotonic()
        for _ in range(n):
            fn()  # type: ignore[operator]
        return (time.monotonic() - started) / n

    floor = per_call(lambda: command.run("true", ["/bin/true"]))
    bare = per_call(lambda: subprocess.run(["/bin/true"], check=True))
    calls: list[tuple[float, float, str, str]] = []  # (start, end, tool, its first arguments)
    marks: list[tuple[float, str]] = []  # stage starts and ends
    original = command.run

    def timed(tool: str, argv: list[str], **kwargs: object) -> object:
        started = time.monotonic()
        try:
            return original(tool, argv, **kwargs)  # type: ignore[arg-type]
        finally:
            calls.append((started, time.monotonic(), tool, " ".join(str(a) for a in argv[1:3])))

    shown = output.make_display(ci=True, color=False, stream=io.StringIO())

    def display(event: object) -> None:
        if isinstance(event, workflow.StepStarted):
            marks.append((time.monotonic(), f"[{event.name} starts]"))
        elif isinstance(event, workflow.StepFinished):
            marks.append((time.monotonic(), f"[{event.result.name} ends: {event.result.status.value}]"))
        shown(event)

    display.header = shown.header  # type: ignore[attr-defined]

    bench.change_source()
    command.run = timed  # type: ignore[assignment]
    try:
        started = time.monotonic()
        code = ship_mod.run(
            ship_mod.ShipConfig(service=str(bench.root), kubeconfig=Path(bench.kubeconfig), smoke=False),
            display=display,
        )
        total = time.monotonic() - started
    finally:
        command.run = original  # type: ignore[assignment]
    count = collections.Counter(tool for _, _, tool, _ in calls)
    print(f"\ntool processes of one ship --skip-smoke (exit {code}, {total:.1f}s in-process):")
    inside = sum(end - start for start, end, _, _ in calls)
    print(f"  {len(calls)} processes {dict(count)}, {inside:.1f}s inside them")
    print(
        f"  fixed cost of one process: {floor * 1000:.0f} ms through deployer.tools.command.run, "
        f"{bare * 1000:.0f} ms with subprocess.run -> about {len(calls) * (floor - bare):.1f}s of this ship"
    )
    lines = [(start, f"{start - started:6.2f}-{end - started:6.2f}s ({end - start:5.2f}s)  {tool} {args}")
             for start, end, tool, args in calls]  # fmt: skip
    lines += [(when, f"{when - started:6.2f}s  {what}") for when, what in marks]
    for _, line in sorted(lines):
        print(f"    {line}")


def _stages(report: dict) -> str:
    stages = " ".join(f"{s['name']} {s['duration_seconds']:.1f}" for s in report["stages"])
    chores = [c for s in report["stages"] for c in s["details"].get("background", [])]
    if chores:  # work that ran beside the later stages (deployer.ship.chores)
        seconds = sum(c["seconds"] or 0 for c in chores)
        stages += f" | background {seconds:.1f}"
    return stages


def _ship_steps(wall: float, report: dict) -> dict[str, float]:
    """A ship's time by part, to set beside the raw steps: each stage, the wait for background work after
    the last stage (the report's total minus its stages), and the process itself (start-up, imports,
    writing the report, exit: the wall time minus the report's total)."""
    stages = {s["name"]: s["duration_seconds"] for s in report["stages"]}
    total = report["duration_seconds"]
    return stages | {"after the last stage": total - sum(stages.values()), "process": wall - total}


# How the ship's parts line up with the raw steps (what each does of the same work), for the table.
_PARTS = (
    ("start-up, compile", ("process", "compile"), ("blubber",)),
    ("test image build + run", ("test",), ("build-test", "run-test")),
    ("production build (wait)", ("build",), ("build",)),
    ("image push", ("push",), ("tag+push",)),
    ("chart package + push", ("chart",), ()),
    ("deploy + rollout", ("deploy", "watch"), ("helm --wait",)),
    ("background work after it", ("after the last stage",), ()),
)


def _parts_table(result: dict) -> None:
    """Medians of each part, ship beside raw: where the difference is."""
    ship_runs, raw_runs = result["ship_steps"], result["raw_steps"]
    print("  where the time goes, ship --skip-smoke vs raw (medians; the ship's production build runs beside")
    print("  its test stage, so its row is only the wait for it):")
    for label, ship_keys, raw_keys in _PARTS:
        ship = statistics.median(sum(r.get(k, 0.0) for k in ship_keys) for r in ship_runs)
        raw = statistics.median(sum(r.get(k, 0.0) for k in raw_keys) for r in raw_runs) if raw_keys else 0.0
        print(f"    {label:<28} ship {ship:5.2f}s   raw {raw:5.2f}s   {ship - raw:+5.2f}s")
    chores = [c for r in result["background"] for c in r]
    if chores:
        overlapped = sorted({s for c in chores for s in c["overlapped"]})
        print(
            f"  beside the stages ({', '.join(overlapped)}): "
            + ", ".join(
                f"{name} {statistics.median(c['seconds'] or 0 for c in chores if c['name'] == name):.2f}s"
                for name in dict.fromkeys(c["name"] for c in chores)
            )
        )


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
        _cleanup_namespace(bench, ns)
    creds = credentials()
    token = base64.b64encode(f"{creds.user}:{creds.password}".encode()).decode()
    auth = {"Authorization": f"Basic {token}"}
    for repo in (f"staging/{bench.name}", f"staging/{bench.name}/cache", f"staging/charts/{bench.name}"):
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


def _pod_lifetimes(bench: Bench, image: str, count: int) -> list[float]:
    """The floor under a helm test pod: a bare pod of the service's image (already on the node) that runs
    `true` (restartPolicy Never, the test pod's settings), from create to the kubelet reporting Succeeded,
    watched (not polled). No smoke check can end sooner than its pod does."""
    from kubernetes import client, config, watch

    api = config.new_client_from_config(config_file=bench.kubeconfig)
    core = client.CoreV1Api(api)
    seconds = []
    for n in range(count):
        name = f"bench-pod-floor-{n}"
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1PodSpec(
                restart_policy="Never",
                automount_service_account_token=False,
                containers=[client.V1Container(name="floor", image=image, command=["true"])],
            ),
        )
        started = time.monotonic()
        core.create_namespaced_pod(bench.ship_namespace, pod)
        stream = watch.Watch()
        for event in stream.stream(
            core.list_namespaced_pod, bench.ship_namespace, field_selector=f"metadata.name={name}",
            timeout_seconds=60,
        ):  # fmt: skip
            if event["object"].status.phase in ("Succeeded", "Failed"):
                stream.stop()
        seconds.append(time.monotonic() - started)
        core.delete_namespaced_pod(name, bench.ship_namespace, grace_period_seconds=0)
    return seconds


def _cleanup_team(bench: Bench) -> None:
    """The team registry's copies (image, cache, chart) and the team namespace, through deployer's own
    registry client (TLS with the set-up's CA, bearer tokens)."""
    from deployer.target import resolve
    from deployer.tools import registry

    assert bench.team_namespace is not None and bench.team_env is not None
    _cleanup_namespace(bench, bench.team_namespace)
    os.environ.update(bench.team_env)  # the config's credentials source
    target = resolve("staging", config=TEAM_CONFIG)
    registry.use(target)
    host, namespace = target.registry.host, target.registry.namespace
    for repo in (
        f"{namespace}/{bench.name}",
        f"{namespace}/{bench.name}/cache",
        f"{namespace}/charts/{bench.name}",
    ):
        try:
            digests = {
                registry.digest(repo, tag, registry=host) for tag in registry.tags(repo, registry=host)
            }
            for digest in digests - {None}:
                registry.delete_manifest(repo, digest, registry=host)
        except Exception as e:  # noqa: BLE001 - a bench leaves a note, not a traceback
            print(f"(team registry cleanup of {repo} incomplete: {e})")


def _cleanup_namespace(bench: Bench, namespace: str) -> None:
    subprocess.run(
        [HELM, "uninstall", bench.name, "-n", namespace, "--kubeconfig", bench.kubeconfig],
        capture_output=True,
    )
    subprocess.run(
        [str(Path(HELM).parent / "kubectl"), "--kubeconfig", bench.kubeconfig, "delete", "namespace",
         namespace, "--wait=false"],
        capture_output=True,
    )  # fmt: skip


def _team_env() -> dict[str, str] | None:
    """The `ci` user's credentials as e2e/test_team_ship.py exports them; None (said) when the team
    registry does not answer."""
    from tests.integration.teamregistry import HOW_TO_START, answers, password

    if not answers():
        print(f"team registry: not answering, its line is left out ({HOW_TO_START})")
        return None
    return {"TEAM_REGISTRY_USER": "ci", "TEAM_REGISTRY_PASSWORD": password("ci")}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _bench_service(
    service: Path, args: argparse.Namespace, tmp: Path, team: dict[str, str] | None, *, first: bool
) -> dict:
    """Time one service: raw, ship --skip-smoke, ship with smoke (and the team registry's ship when `team`);
    the runs of each kind, and the load averages around them. The `first` service also times bare pods
    (the smoke stage's floor)."""
    suffix = secrets.token_hex(3)
    root = tmp / f"e8bench-{suffix}"
    shutil.copytree(service, root, ignore=shutil.ignore_patterns("node_modules", ".git", "__pycache__"))
    docker_config = tmp / f"docker-{suffix}"
    docker_config.mkdir()
    bench = Bench(root, args.kubeconfig, docker_config, f"e8b-raw-{suffix}", f"e8b-ship-{suffix}")
    if team is not None:
        bench.team_namespace, bench.team_env = f"e8b-team-{suffix}", team
    deploy_yaml = DEPLOY_YAML.format(namespace=bench.ship_namespace, example=service.name)
    (root / ".pipeline" / "deploy.yaml").write_text(deploy_yaml)
    creds = credentials()
    bench.docker("login", REGISTRY, "--username", creds.user, "--password-stdin", input=creds.password)
    kinds = ["raw", "ship --skip-smoke", "ship (with smoke)"] + (["team ship --skip-smoke"] if team else [])
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    # the chart stage (lint, package, push the chart as an OCI artifact) is work the raw commands do not do
    # at all; shown separately so overhead and extra work can be told apart
    without_chart: list[float] = []
    ship_steps: list[dict[str, float]] = []  # each `ship --skip-smoke`'s time by part (_ship_steps)
    background: list[list[dict]] = []  # and what ran beside its stages (the report's details.background)
    failures: list[str] = []  # timed ships that failed (not in the medians)
    smoke_checks: list[float] = []  # the smoke stage of each `ship (with smoke)`
    pods: list[float] = []
    loads = [_load()]
    try:
        # Warm-up, untimed: install the releases, fill the build cache for this copy (and the team registry).
        print(f"\n{service.name}: copy {root.name}; warm-up (untimed): one ship, one raw install", flush=True)
        _, report = bench.ship(smoke=False)
        (image,) = [i for i in report["images"] if i.get("pushed")]
        bench.render_raw_chart(f"{image['repository']}@{image['digest']}", tmp / f"raw-chart-{suffix}")
        bench.raw()
        if team is not None:
            bench.ship(smoke=False, team=True)
        for rep in range(args.repeat):
            order = kinds if rep % 2 == 0 else kinds[::-1]
            for what in order:
                if what == "raw":
                    seconds = bench.raw()
                    detail = f"  [{bench.last_steps}]"
                else:
                    try:
                        seconds, report = bench.ship(
                            smoke=what == "ship (with smoke)", team=what.startswith("team")
                        )
                    except ShipFailed as failed:
                        failures.append(f"{what} (rep {rep + 1}): exit {failed.code}, {failed.cause}")
                        print(
                            f"rep {rep + 1}: {what:<23} FAILED: exit {failed.code}, {failed.cause}",
                            flush=True,
                        )
                        continue
                    detail = f"  [{_stages(report)}]"
                    stage = {s["name"]: s["duration_seconds"] for s in report["stages"]}
                    if what == "ship --skip-smoke":
                        without_chart.append(seconds - stage["chart"])
                        ship_steps.append(_ship_steps(seconds, report))
                        background.append(
                            [c for st in report["stages"] for c in st["details"].get("background", [])]
                        )
                    elif what == "ship (with smoke)":
                        smoke_checks.append(stage["smoke"])
                times[what].append(seconds)
                print(f"rep {rep + 1}: {what:<23} {seconds:6.1f}s{detail}", flush=True)
        loads.append(_load())
        pinned = f"{image['repository']}@{image['digest']}"
        pods = _pod_lifetimes(bench, pinned, args.repeat) if first else []
        if args.profile_tools:
            _tool_profile(bench)
    finally:
        _cleanup(bench)
        if team is not None:
            _cleanup_team(bench)
    return {
        "times": times,
        "without_chart": without_chart,
        "ship_steps": ship_steps,
        "background": background,
        "loads": loads,
        "raw_steps": bench.raw_steps[1:],  # the warm-up's install is not a timed run
        "smoke": smoke_checks,
        "pods": pods,
        "failures": failures,
    }


def _report(name: str, repeat: int, result: dict) -> None:
    times = result["times"]
    raw = statistics.median(times["raw"])
    loads = " -> ".join(result["loads"])
    print(
        f"\n{name}: medians over {repeat} repetitions (same service, cluster and run; load average {loads}):"
    )
    print(
        f"  raw commands by hand            {raw:6.1f}s  (all: {', '.join(f'{t:.1f}' for t in times['raw'])})"
    )
    for failure in result["failures"]:
        print(f"  failed, left out of the medians: {failure}")
    if any(not runs for runs in times.values()):
        print("  a kind of run never succeeded: no comparison")
        return
    for what in ("ship --skip-smoke", "ship (with smoke)"):
        t = statistics.median(times[what])
        runs = ", ".join(f"{x:.1f}" for x in times[what])
        print(
            f"  deployer {what:<22}{t:6.1f}s  ratio {t / raw:.2f} "
            f"({(t / raw - 1) * 100:+.0f} % vs raw)  (all: {runs})"
        )
    t = statistics.median(result["without_chart"])
    print(f"  deployer ship --skip-smoke minus its chart stage {t:.1f}s  ratio {t / raw:.2f}")
    # The floor of a pipelined ship: everything the raw commands do except the production build, which the
    # ship overlaps with the test run; the tests must pass before anything is pushed or deployed.
    floors = [sum(v for k, v in steps.items() if k != "build") for steps in result["raw_steps"]]
    floor = statistics.median(floors)
    print(
        f"  floor: the raw commands without their production build {floor:.1f}s  ratio {floor / raw:.2f} "
        "(tests, push and rollout in a row)"
    )
    # What must stay in a row whatever overlaps: the tests pass before anything deployable exists, the
    # image's digest (from its push) is what the chart and the pods run, and the rollout follows the
    # deploy. Each at the faster of the two ways measured here.
    parts = {
        "tests": ("test",), "push": ("push",), "rollout": ("deploy", "watch"),
    }  # fmt: skip
    raw_parts = {"tests": ("build-test", "run-test"), "push": ("tag+push",), "rollout": ("helm --wait",)}
    best = {
        part: min(
            statistics.median(sum(r.get(k, 0.0) for k in parts[part]) for r in result["ship_steps"]),
            statistics.median(sum(r.get(k, 0.0) for k in raw_parts[part]) for r in result["raw_steps"]),
        )
        for part in parts
    }
    chain = sum(best.values())
    print(
        f"  floor: tests, then the image push, then deploy + rollout, each the faster of ship and raw "
        f"({', '.join(f'{k} {v:.1f}' for k, v in best.items())}) {chain:.1f}s  ratio {chain / raw:.2f}"
    )
    _parts_table(result)
    stage = ", ".join(f"{x:.1f}" for x in result["smoke"])
    print(f"  smoke stage of ship (with smoke)  {statistics.median(result['smoke']):.1f}s  (all: {stage})")
    if result["pods"]:
        pods = ", ".join(f"{x:.1f}" for x in result["pods"])
        print(
            f"  floor: a bare pod of the image running `true`, create to Succeeded "
            f"{statistics.median(result['pods']):.1f}s  (all: {pods})"
        )
    if "team ship --skip-smoke" in times:
        local = statistics.median(times["ship --skip-smoke"])
        team = statistics.median(times["team ship --skip-smoke"])
        runs = ", ".join(f"{x:.1f}" for x in times["team ship --skip-smoke"])
        print(
            f"  team registry (TLS + token) ship --skip-smoke {team:.1f}s vs local registry {local:.1f}s: "
            f"ratio {team / local:.2f} ({(team / local - 1) * 100:+.0f} %)  (all: {runs})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG)
    parser.add_argument(
        "--service", type=Path, action="append",
        help="an example to ship (repeatable; default: examples/node-hello and examples/python-hello)",
    )  # fmt: skip
    parser.add_argument("--no-team", action="store_true", help="leave out the team registry's line")
    parser.add_argument(
        "--profile-tools", action="store_true", help="also time every tool process of one more ship"
    )
    args = parser.parse_args()
    services = args.service or [REPO / "examples" / "node-hello", REPO / "examples" / "python-hello"]
    # byte-compiled as pip does when it installs: with PYTHONDONTWRITEBYTECODE set (as here and in CI),
    # every `deployer` process would otherwise compile each module changed since its .pyc was written
    # (measured: 10 stale modules, 0.11 s of CPU per ship process)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "blubber", "deployer"], cwd=REPO, check=True)
    team = None if args.no_team else _team_env()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-ship-") as tmp:
        for n, service in enumerate(services):
            results[service.name] = _bench_service(
                service, args, Path(tmp), team if n == 0 else None, first=n == 0
            )
    for name, result in results.items():
        _report(name, args.repeat, result)
    print(
        "\ntargets: ship --skip-smoke <= 0.85x the raw commands (issue 14); smoke <= 1.5 s on node-hello; "
        "the team registry within +15 % of the local registry (issue 11)"
    )


if __name__ == "__main__":
    main()
