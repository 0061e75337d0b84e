"""The chart stage of a ship, before and now, side by side in one run: what sits between the image push and
`helm upgrade`.

    python bench/chart.py [--repeat 10] [--service examples/node-hello]

before (as a ship did it up to 3be648d): render with the pushed digest, `helm lint --strict` beside `helm
package`, `helm push`; `helm upgrade` then pulls the chart back from the registry.
now: `helm lint --strict` of the chart rendered with a stand-in image already ran beside the test stage
(timed here too, off the critical path); on it: render with the digest, the in-process archive
(deployer.chart.package), the in-process push (deployer.chart.push_package); `helm upgrade` installs the
archive. `helm upgrade`'s part is shown by `helm template` of the OCI reference vs the archive (the same
load of the chart, no cluster needed).
Needs helm (e2e/tools.sh) and the local registry (scripts/stack up). The rounds alternate which way goes
first; medians, min and max; the load average at the start and the end. Prints numbers, asserts nothing.
The bench's charts are deleted from the registry at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import blubber  # noqa: E402
from deployer import chart as chart_mod  # noqa: E402
from deployer import deploy_config  # noqa: E402
from deployer.background import Background  # noqa: E402
from deployer.target import resolve  # noqa: E402
from deployer.target.deploy import service_deploy  # noqa: E402
from deployer.tools import docker  # noqa: E402
from deployer.tools import registry as registry_tool  # noqa: E402
from deployer.tools.helm import Helm  # noqa: E402
from deployer.tools.registry_api import RegistryClient  # noqa: E402

RELEASE = "bench-chart"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--service", default="examples/node-hello")
    args = parser.parse_args()

    target = resolve(None)
    registry = target.registry
    service = Path(args.service)
    config = blubber.load(
        service / ".pipeline/blubber.yaml", policy=target.environment.policies.blubber_file()
    )
    deploy = service_deploy(target, service, namespace=RELEASE, release=RELEASE)
    runtime = blubber.runtime(config, deploy.variant)
    creds = registry_tool.credentials(host=registry.host)
    helm = Helm(registry_config=docker.DOCKER_CONFIG / "config.json")  # docker's login, as a ship's helm
    helm.registry_login(registry.host, creds.user, creds.password, insecure=registry.tls.is_plain_http)
    tls = ["--plain-http"] if registry.tls.is_plain_http else []
    work = Path(tempfile.mkdtemp(prefix="bench-chart-"))
    pushed: list[str] = []

    def render(round_: int, way: str, image: chart_mod.ImageRef, into: str) -> chart_mod.RenderedChart:
        policy = deploy_config.load_policy(target.environment.policies.deploy)
        values = chart_mod.render_values(deploy, runtime, image, policy=policy)
        version = chart_mod.chart_version(values=values)
        return chart_mod.write_chart(
            work / f"{round_}-{way}" / into, RELEASE, version, values, app_version=image.tag
        )

    def digest(round_: int, way: str) -> chart_mod.ImageRef:
        n = f"{round_:062x}{'b' if way == 'before' else 'a'}0"
        return chart_mod.ImageRef(registry.repository(RELEASE), f"sha256:{n}", "20260101T000000Z-production")

    def before(round_: int) -> dict[str, float]:
        started = time.perf_counter()
        chart = render(round_, "before", digest(round_, "before"), "chart")
        lint = Background(lambda: helm.lint(chart.path), name="lint")
        archive = helm.package(chart.path, chart.path.parent)
        lint.result()
        helm.push(
            archive, registry.charts, plain_http=registry.tls.is_plain_http, ca_file=registry.tls.ca_file
        )
        stage = time.perf_counter() - started
        pushed.append(chart.version)
        ref = f"{registry.charts}/{RELEASE}"
        return {
            "stage": stage,
            "helm template": _timed(
                lambda: helm._run("t", "template", "x", ref, "--version", chart.version, *tls)
            ),
        }

    def now(round_: int) -> dict[str, float]:
        started = time.perf_counter()
        stand_in = chart_mod.stand_in_image(registry.repository(RELEASE), deploy.variant)
        linted = render(round_, "now", stand_in, "linted")
        helm.lint(linted.path)
        beside = time.perf_counter() - started
        started = time.perf_counter()
        chart = render(round_, "now", digest(round_, "now"), "chart")
        archive = chart_mod.package(chart, chart.path.parent)
        chart_mod.push_package(chart, archive, registry=registry, credentials=creds)
        stage = time.perf_counter() - started
        pushed.append(chart.version)
        return {
            "stage": stage,
            "beside the tests": beside,
            "helm template": _timed(lambda: helm._run("t", "template", "x", str(archive))),
        }

    print(f"chart stage of {service.name}, {args.repeat} rounds; load average {_load()}")
    rows: dict[str, dict[str, list[float]]] = {"before": {}, "now": {}}
    try:
        for round_ in range(args.repeat):
            ways: list[tuple[str, Callable[[int], dict[str, float]]]] = [("before", before), ("now", now)]
            for way, fn in ways if round_ % 2 == 0 else ways[::-1]:
                for part, seconds in fn(round_).items():
                    rows[way].setdefault(part, []).append(seconds)
    finally:
        _delete(registry, creds, pushed)
    for part, label in (
        ("stage", "chart stage (critical path)"),
        ("beside the tests", "render + helm lint beside the tests"),
        ("helm template", "helm upgrade's chart load (helm template)"),
    ):
        for way in ("before", "now"):
            if part in rows[way]:
                xs = rows[way][part]
                median = statistics.median(xs)
                print(f"  {label:<42} {way:<6} median {median:5.3f}s  min {min(xs):5.3f}  max {max(xs):5.3f}")
    b, n = (
        statistics.median(rows[w]["stage"]) + statistics.median(rows[w]["helm template"])
        for w in ("before", "now")
    )
    print(f"  on the critical path (stage + chart load): before {b:.3f}s, now {n:.3f}s ({n / b:.2f}x)")
    print(f"load average at the end {_load()}")


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _delete(registry: object, creds: object, versions: list[str]) -> None:
    """Remove the bench's charts (their manifests; the registry's GC owns the blobs)."""
    client = RegistryClient(registry, creds)
    path = registry.charts.removeprefix(f"oci://{registry.host}/").rstrip("/") + f"/{RELEASE}"  # type: ignore[attr-defined]
    for version in versions:
        found = client.digest(path, version)
        if found:
            client.delete_manifest(path, found)


if __name__ == "__main__":
    main()
