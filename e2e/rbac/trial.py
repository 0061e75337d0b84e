"""Which verbs of e2e/rbac/deployer-role.yaml does a ship really need? Remove one at a time and ship.

    .venv/bin/python -m e2e.rbac.trial [SERVICE_DIR] [--only RESOURCE:VERB ...]

For each (resource, verb) of the Role: a fresh namespace, the Role without that verb, a kubeconfig for
its ServiceAccount (e2e/rbac/kubeconfig), then `deployer ship SERVICE_DIR` (install, with HTTP smoke
checks through a port-forward and helm test) followed by a second ship (upgrade). Prints one line per
trial: the verb, both exit codes (the upgrade only for patch and update), and the first line that names
what was forbidden. A baseline with the whole Role runs first (without --only). Needs the local cluster
and the build stack; one to five minutes per trial on a busy machine. Its namespaces are deleted after.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ROLE_FILE = HERE / "deployer-role.yaml"
KUBECONFIG_SCRIPT = HERE / "kubeconfig"
ADMIN = os.environ.get("ADMIN_KUBECONFIG", "/var/lib/deployer/cluster/kubeconfig")
KUBECTL = os.environ.get("KUBECTL", "/var/cache/deployer/tools/bin/kubectl")
# DEPLOYER_BIN: another deployer to measure (e.g. a `git archive` of a commit, while the tree is edited).
DEPLOYER = os.environ.get("DEPLOYER_BIN") or str(Path(sys.executable).parent / "deployer")

DEPLOY_YAML = """\
probes:
  readiness: {path: /healthz, periodSeconds: 1}
smoke:
  checks:
    - {name: root, path: /, body: hello from node-hello}
timeouts: {progressDeadline: 60, rollout: 90, helm: 60, smoke: 20}
"""


def kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBECTL, "--kubeconfig", ADMIN, *args], input=stdin, capture_output=True, text=True, timeout=120
    )


def role_without(docs: list[dict], resource: str, verb: str) -> list[dict]:
    docs = copy.deepcopy(docs)
    role = next(d for d in docs if d["kind"] == "Role")
    for rule in role["rules"]:
        if resource in rule["resources"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != verb]
    role["rules"] = [r for r in role["rules"] if r["verbs"]]
    return docs


def candidates(docs: list[dict]) -> list[tuple[str, str]]:
    role = next(d for d in docs if d["kind"] == "Role")
    return [(res, verb) for rule in role["rules"] for res in rule["resources"] for verb in rule["verbs"]]


_NOT_RBAC = re.compile(r"cluster unreachable|6443: connect: connection refused|No such image")
_FORBIDDEN = re.compile(r"forbidden|cannot (get|list|watch|create|update|patch|delete)|403", re.IGNORECASE)


def first_forbidden(output: str) -> str:
    for line in output.splitlines():
        if _FORBIDDEN.search(line):
            return line.strip()[:220]
    tail = [line.strip() for line in output.splitlines() if line.strip()]
    return (tail[-1] if tail else "")[:220]


def ship(service: Path, namespace: str, kubeconfig: Path, log: Path) -> tuple[int, str]:
    # --kubeconfig, not an environment variable: deployer reads $KUBECONFIG but no DEPLOYER_KUBECONFIG, and
    # passes the file to helm explicitly (its command runner gives tools a clean environment).
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"} | {"CI": "true"}
    argv = [DEPLOYER, "ship", str(service), "--kubeconfig", str(kubeconfig), "--namespace", namespace]
    argv += ["--release", "trial"]
    for _ in range(3):
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
        log.write_text(done.stdout + done.stderr)
        # The cluster and engine are shared: an apiserver restarted by someone else's outage test is not
        # a missing permission. Try again after a pause.
        if done.returncode == 0 or not _NOT_RBAC.search(done.stdout + done.stderr):
            break
        time.sleep(30)
    return done.returncode, first_forbidden(done.stdout + done.stderr) if done.returncode else ""


def trial(service: Path, docs: list[dict], label: str, workdir: Path, logs: Path) -> str:
    namespace = f"rbac-trial-{uuid.uuid4().hex[:6]}"
    try:
        for _ in range(10):
            if kubectl("create", "namespace", namespace).returncode == 0:
                break
            time.sleep(10)
        role_file = workdir / f"{namespace}.yaml"
        role_file.write_text(yaml.safe_dump_all(docs))
        kubeconfig = workdir / f"{namespace}.kubeconfig"
        env = {**os.environ, "DEPLOYER_RBAC_ROLE": str(role_file)}
        subprocess.run(
            [str(KUBECONFIG_SCRIPT), namespace, str(kubeconfig)], check=True, capture_output=True, env=env
        )
        name = label.strip("()").replace(" ", "-").replace("/", "_").replace(":", "-")
        first, why1 = ship(service, namespace, kubeconfig, logs / f"{name}.install.log")
        # Only patch and update can matter to an upgrade alone (the objects exist already); skip the rest.
        if first != 0 or not label.endswith((":patch", ":update", "(whole Role)")):
            return f"{label:32} install={first:<3} upgrade=-   {why1}"
        # A second ship of the same commit: helm upgrade (revision 2) over the first one's objects.
        second, why2 = ship(service, namespace, kubeconfig, logs / f"{name}.upgrade.log")
        return f"{label:32} install={first:<3} upgrade={second:<3} {why2}"
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", nargs="?", default=str(REPO / "examples" / "node-hello"))
    parser.add_argument("--only", nargs="*", default=None, help="RESOURCE:VERB pairs to try")
    parser.add_argument("--logs", default="/tmp/rbac-trial", help="where each ship's output is kept")
    args = parser.parse_args()
    docs = list(yaml.safe_load_all(ROLE_FILE.read_text()))
    pairs = candidates(docs)
    if args.only:  # in the order given: the most telling first when time is short
        pairs = [p for p in (tuple(o.split(":", 1)) for o in args.only) if p in pairs]
    with tempfile.TemporaryDirectory(prefix="rbac-trial-") as tmp:
        workdir = Path(tmp)
        service = workdir / "rbac-trial-svc"  # its own image name: other runs build and remove node-hello
        shutil.copytree(args.service, service, ignore=shutil.ignore_patterns("node_modules", ".git"))
        (service / ".pipeline" / "deploy.yaml").write_text(DEPLOY_YAML)
        git = ["git", "-C", str(service), "-c", "user.email=trial@e2e", "-c", "user.name=trial"]
        subprocess.run(["git", "init", "-q", str(service)], check=True)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", "trial"], check=True)
        logs = Path(args.logs)
        logs.mkdir(parents=True, exist_ok=True)
        if not args.only:
            print(trial(service, docs, "(whole Role)", workdir, logs), flush=True)
        for resource, verb in pairs:
            without = role_without(docs, resource, verb)
            print(trial(service, without, f"-{resource}:{verb}", workdir, logs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
