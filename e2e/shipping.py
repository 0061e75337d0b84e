"""Shipping a copy of an example through the real `deployer ship` CLI, for the e2e tests that do it.

`ServiceCopy` is a copy of an example in its own git repository (CI mode refuses a dirty work tree),
shipped under its own name (so its own image repository and release) into its own namespace. Every ship
writes `--report` and `--junit`; the report is validated against deployer/schema/report.schema.json, the
JUnit file read with a JUnit reader, and the output, report and JUnit file scanned for the registry's
password. `service_copy` makes one and removes everything it left: release, namespace, pushed manifests
and local images.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
from junitparser import JUnitXml
from kubernetes import client

from deployer.reporting.origin_line import describe
from deployer.reporting.report import report_schema
from deployer.tools import portforward
from deployer.tools.helm import Helm
from e2e.conftest import REPO, Registry
from e2e.localcluster.configs import registry_credentials

DEPLOYER = str(Path(sys.executable).parent / "deployer")
EXAMPLES = REPO / "examples"
REGISTRY_URL = "http://127.0.0.1:5000"
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
)


@dataclass
class Ship:
    """One `deployer ship` run: its exit code, output, report and JUnit file."""

    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any]
    junit: JUnitXml
    files: dict[str, str]

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def stage(self, name: str) -> dict[str, Any]:
        return next(s for s in self.report["stages"] if s["name"] == name)

    def assert_traced(
        self, yaml_path: str, source: str, file: str | None, line: int | None
    ) -> dict[str, Any]:
        """The report's `outcome.origin` names `yaml_path` set by `source` in a file ending in `file` (None: a
        built-in default) at `line`, and the CI summary and the failed stage's JUnit message say the same."""
        origin = self.report["outcome"]["origin"]
        assert origin is not None, self.report["outcome"]
        assert (origin["yaml_path"], origin["source"], origin["line"]) == (yaml_path, source, line), origin
        assert (origin["file"] or "").endswith(file) if file else origin["file"] is None, origin
        text = f"config: {describe(origin)}"
        assert text in self.output, self.output[-3000:]
        stage = self.report["outcome"]["failed_stage"]
        (case,) = [c for s in self.junit if s.name.endswith(".ship") for c in s if c.name == stage]
        assert any(text in (r.message or "") for r in case.result), [r.message for r in case.result]
        return origin

    def cases(self) -> dict[str, str]:
        """'<suite>/<case>' → passed | failure | error | skipped."""
        out = {}
        for suite in self.junit:
            for case in suite:
                kinds = {type(r).__name__.lower() for r in case.result}
                verdict = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
                out[f"{suite.name}/{case.name}"] = verdict
        return out


@dataclass
class ServiceCopy:
    """A copy of an example in its own git repository, shipped to its own namespace."""

    root: Path
    namespace: str
    kubeconfig: Path
    api: client.ApiClient
    runs: int = 0

    @property
    def name(self) -> str:
        return self.root.name  # also the release name and the image repository's last part

    def write(self, relative: str, text: str) -> None:
        (self.root / relative).write_text(text)

    def commit(self, message: str) -> None:
        git = ["git", "-C", str(self.root), "-c", "user.email=e2e@test", "-c", "user.name=e2e"]
        subprocess.run([*git, "add", "-A"], check=True, capture_output=True)
        subprocess.run([*git, "commit", "-qm", message], check=True, capture_output=True)

    def ship(self, *args: str) -> Ship:
        """`deployer ship` of the copy in CI mode, with `args` added; the checked run."""
        self.runs += 1
        report, junit = self.root.parent / f"ship{self.runs}.json", self.root.parent / f"ship{self.runs}.xml"
        done = self.deployer(
            "ship", str(self.root), "--kubeconfig", str(self.kubeconfig),
            "--report", str(report), "--junit", str(junit), *args,
        )  # fmt: skip
        assert report.exists() and junit.exists(), done.stdout[-3000:] + done.stderr[-3000:]
        data = json.loads(report.read_text())
        # Every report of every outcome validates against the schema, and a JUnit reader reads every file.
        jsonschema.Draft202012Validator(report_schema()).validate(data)
        assert data["outcome"]["exit_code"] == done.returncode
        ship = Ship(
            done.returncode,
            done.stdout,
            done.stderr,
            data,
            JUnitXml.fromfile(str(junit)),
            {"report": report.read_text(), "junit": junit.read_text()},
        )
        assert_no_secret(ship)
        return ship

    def deployer(self, *args: str) -> subprocess.CompletedProcess[str]:
        # CI mode, as a post-merge job runs it: plain lines, and a dirty work tree would be refused.
        env = {**os.environ, "CI": "true"}
        return subprocess.run([DEPLOYER, *args], capture_output=True, text=True, env=env, timeout=600)

    def release_command(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.deployer(command, str(self.root), "--kubeconfig", str(self.kubeconfig), *args)

    def helm(self) -> Helm:
        return Helm(kubeconfig=self.kubeconfig, timeout=120)

    def get(self, path: str, port: int = 8080) -> portforward.HttpResponse:
        """GET `path` on a ready pod of the release through a port-forward."""
        pod = portforward.ready_pod(self.api, self.namespace, f"app.kubernetes.io/instance={self.name}")
        return portforward.http_get(self.api, self.namespace, pod, port, path, timeout=10)

    def running_images(self) -> set[str]:
        pods = client.CoreV1Api(self.api).list_namespaced_pod(
            self.namespace, label_selector=f"app.kubernetes.io/instance={self.name}"
        )
        return {p.spec.containers[0].image for p in pods.items if p.metadata.deletion_timestamp is None}


C = TypeVar("C", bound=ServiceCopy)


@contextmanager
def service_copy(
    kind: type[C],
    example: str,
    prefix: str,
    *,
    kubeconfig: Path,
    api: client.ApiClient,
    registry: Registry,
    tmp_path: Path,
) -> Iterator[C]:
    """A fresh `kind` (a `ServiceCopy`) of `examples/<example>` named `<prefix>-<random>`: a git
    repository, nothing committed yet. Afterwards its release, namespace, pushed manifests and local
    images are removed."""
    suffix = uuid.uuid4().hex[:6]
    root = tmp_path / f"{prefix}-{suffix}"
    shutil.copytree(EXAMPLES / example, root, ignore=shutil.ignore_patterns("node_modules", ".git"))
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    svc = kind(root, f"{prefix}-{suffix}", kubeconfig, api)
    try:
        yield svc
    finally:
        svc.helm().uninstall(svc.name, svc.namespace)
        try:
            client.CoreV1Api(api).delete_namespace(svc.namespace, propagation_policy="Background")
        except client.ApiException as e:
            if e.status != 404:
                raise
        delete_pushed(f"staging/{svc.name}")
        delete_pushed(f"staging/charts/{svc.name}")
        listed = registry.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
        refs = [r for r in listed.stdout.split() if r.split(":")[0].endswith(f"/{svc.name}")]
        if refs:
            registry.docker("image", "rm", "--force", *refs)


# --- the registry, over its HTTP API ---------------------------------------------------------------------


def _request(path: str, method: str = "GET", accept: str = "") -> urllib.request.Request:
    creds = registry_credentials()
    assert creds is not None
    token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"} | ({"Accept": accept} if accept else {})
    return urllib.request.Request(f"{REGISTRY_URL}{path}", method=method, headers=headers)


def registry_get(path: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of a GET on the registry's API."""
    try:
        with urllib.request.urlopen(_request(path), timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def tags(repository: str) -> list[str]:
    """The tags in `repository`; none when nothing was ever pushed to it."""
    status, body = registry_get(f"/v2/{repository}/tags/list")
    if status == 404:  # NAME_UNKNOWN
        return []
    assert status == 200, body
    return list(body.get("tags") or [])


def delete_pushed(repository: str) -> None:
    """Remove what a test pushed to `repository` (manifests; the registry's GC owns the blobs)."""
    for tag in tags(repository):
        try:
            head = _request(f"/v2/{repository}/manifests/{tag}", "HEAD", MANIFEST_TYPES)
            with urllib.request.urlopen(head, timeout=10) as r:
                digest = r.headers["Docker-Content-Digest"]
            urllib.request.urlopen(
                _request(f"/v2/{repository}/manifests/{digest}", "DELETE"), timeout=10
            ).close()
        except urllib.error.HTTPError:
            pass  # already gone (two tags, one manifest)


def secrets() -> set[str]:
    """The registry password and the basic-auth token made from it: what no output may contain."""
    creds = registry_credentials()
    assert creds is not None
    user, password = creds
    return {password, base64.b64encode(f"{user}:{password}".encode()).decode()}


def assert_no_secret(ship: Ship) -> None:
    texts = {"stdout": ship.stdout, "stderr": ship.stderr, **ship.files}
    for where, text in texts.items():
        for secret in secrets():
            assert secret not in text, f"a registry secret appears in the ship's {where}"
