"""The smoke stage of `deployer ship`: test pods created during the watch vs `helm test` after it.

    python bench/smoke.py [--repeat 5] [--service examples/node-hello] [--kubeconfig PATH]

Needs docker and the registry (scripts/stack up) and the cluster (e2e/cluster up). Prints numbers,
asserts nothing. Issue 14 item 3: the smoke stage ≤ 1.5 s median on node-hello, with both the helm test
pod and the HTTP checks.

One copy of the service (deploy.yaml: the chart's helm test and one HTTP check, as bench/ship.py), one
untimed warm-up ship, then `--repeat` pairs of ships in alternating order, each after a one-line source
change (so each really rolls out a new image):
- "early": the chart's test pod is created right after `helm upgrade` and told to go once the rollout is
  healthy (deployer/tools/testpod.py; what `deployer ship` does);
- "helm test": `helm test --logs` after the rollout, as before (ShipConfig.early_test_pods=False).
Ships run in this process (the switch is not a command-line option), each with its JSON report; the
numbers are the report's stage and check times, and for the early pod the smoke step's account of it:
how long after the step asked it was running (0 when it was up already), how long its output took after
the go, and how much later the kubelet reported its exit. The watch stage is shown too: the early pod starts
beside the rollout on the same node, and its cost there must be seen, not hidden. Then, as the floor
under `helm test`, bare pods of the service's image running `true`, create to Succeeded (watched).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deployer import ship as ship_mod  # noqa: E402
from deployer.reporting import display as output  # noqa: E402
from deployer.tools.kube import DEFAULT_KUBECONFIG  # noqa: E402

HELM = os.environ.get("DEPLOYER_HELM", "/var/cache/deployer/tools/bin/helm")
DEPLOY_YAML = """namespace: {namespace}
smoke:
  helmTest: true
  checks:
    - {{name: root, path: /, body: hello from {example}}}
"""
SOURCES = {"app.js": "//", "app.py": "#"}
MODES = {"early": True, "helm test": False}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _change(root: Path, edit: int) -> None:
    name, comment = next((n, c) for n, c in SOURCES.items() if (root / n).exists())
    app = root / name
    text = re.sub(rf"\n{comment} bench edit \d+\n$", "\n", app.read_text())
    app.write_text(f"{text.rstrip()}\n{comment} bench edit {edit}\n")


# deployer.tools.testpod's account of one early test pod, as the smoke step says it
_TIMINGS = re.compile(
    r"running (?P<up>[\d.]+)s after the smoke step asked; its output ended (?P<output>[\d.]+)s after its "
    r"go, its exit was reported (?P<exit>[\d.]+)s later"
)


def _ship(root: Path, kubeconfig: str, *, early: bool) -> tuple[dict, dict[str, float]]:
    report = root.parent / "report.json"
    config = ship_mod.ShipConfig(
        service=str(root), kubeconfig=Path(kubeconfig), report_path=report, early_test_pods=early
    )
    log = io.StringIO()
    code = ship_mod.run(config, display=output.make_display(ci=True, color=False, stream=log))
    if code:
        raise SystemExit(f"ship exited {code}:\n{log.getvalue()[-3000:]}")
    found = _TIMINGS.search(log.getvalue())
    pod = {f"pod {k}": float(v) for k, v in found.groupdict().items()} if found else {}
    return json.loads(report.read_text()), pod


def _bare_pods(kubeconfig: str, namespace: str, image: str, count: int) -> list[float]:
    """A pod of the image running `true`, create to Succeeded: bench/ship.py's floor, measured here too."""
    sys.path.insert(0, str(REPO / "bench"))
    from ship import _pod_lifetimes  # bench/ship.py

    return _pod_lifetimes(SimpleNamespace(kubeconfig=kubeconfig, ship_namespace=namespace), image, count)


def _cleanup(root: Path, kubeconfig: str, namespace: str) -> None:
    from deployer.target import resolve
    from deployer.tools import registry

    subprocess.run([HELM, "uninstall", root.name, "-n", namespace, "--kubeconfig", kubeconfig], check=False,
                   capture_output=True)  # fmt: skip
    kubectl = str(Path(HELM).parent / "kubectl")
    subprocess.run([kubectl, "--kubeconfig", kubeconfig, "delete", "namespace", namespace, "--wait=false"],
                   check=False, capture_output=True)  # fmt: skip
    target = resolve(None, kubeconfig=Path(kubeconfig))
    registry.use(target)
    host, space = target.registry.host, target.registry.namespace
    for repo in (f"{space}/{root.name}", f"{space}/{root.name}/cache", f"{space}/charts/{root.name}"):
        try:
            digests = {registry.digest(repo, t, registry=host) for t in registry.tags(repo, registry=host)}
            for digest in digests - {None}:
                registry.delete_manifest(repo, digest, registry=host)
        except Exception as e:  # noqa: BLE001 - a bench leaves a note, not a traceback
            print(f"(registry cleanup of {repo} incomplete: {e})")


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):5.2f}s" if values else "    -"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--service", type=Path, default=REPO / "examples" / "node-hello")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG", str(DEFAULT_KUBECONFIG)))
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-smoke-"))
    root = tmp / f"smk-{secrets.token_hex(3)}"
    shutil.copytree(args.service, root, ignore=shutil.ignore_patterns("node_modules", ".git", "__pycache__"))
    namespace = f"{root.name}-ns"
    (root / ".pipeline" / "deploy.yaml").write_text(
        DEPLOY_YAML.format(namespace=namespace, example=args.service.name)
    )
    stages: dict[str, dict[str, list[float]]] = {m: {} for m in MODES}
    loads = [_load()]
    edits = 0
    try:
        print(f"{args.service.name}: copy {root.name}; warm-up ship (untimed)", flush=True)
        report, _ = _ship(root, args.kubeconfig, early=True)
        for rep in range(args.repeat):
            for mode in list(MODES) if rep % 2 == 0 else list(MODES)[::-1]:
                edits += 1
                _change(root, edits)
                report, pod = _ship(root, args.kubeconfig, early=MODES[mode])
                times = {s["name"]: s["duration_seconds"] for s in report["stages"]}
                smoke = next(s for s in report["stages"] if s["name"] == "smoke")
                checks = {c["name"]: c["duration_seconds"] for c in smoke["details"]["smoke"]}
                row = {"watch": times["watch"], "smoke": times["smoke"], **checks, **pod}
                for key, value in row.items():
                    stages[mode].setdefault(key, []).append(value)
                line = " ".join(f"{k} {v:.2f}" for k, v in row.items())
                print(f"rep {rep + 1}: {mode:<10} {line}", flush=True)
        loads.append(_load())
        (image,) = [i for i in report["images"] if i.get("pushed")]
        floor = _bare_pods(
            args.kubeconfig, namespace, f"{image['repository']}@{image['digest']}", args.repeat
        )
    finally:
        _cleanup(root, args.kubeconfig, namespace)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nmedians over {args.repeat} ships each (load average {' -> '.join(loads)}):")
    keys = list(stages["early"])
    print(f"  {'':<10}" + "".join(f"{k:>12}" for k in keys))
    for mode in MODES:
        print(f"  {mode:<10}" + "".join(f"{_median(stages[mode].get(k, [])):>12}" for k in keys))
    early, helm = statistics.median(stages["early"]["smoke"]), statistics.median(stages["helm test"]["smoke"])
    met = "met" if early <= 1.5 else "NOT met"
    print(
        f"  smoke stage early / helm test: {early:.2f}s / {helm:.2f}s ({helm / early:.1f}x); "
        f"target 1.5s {met}"
    )
    print(f"  floor under helm test: a bare pod running `true`, create to Succeeded {_median(floor)} "
          f"(all: {', '.join(f'{x:.2f}' for x in floor)})")  # fmt: skip


if __name__ == "__main__":
    main()
