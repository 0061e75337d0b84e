"""Every helm call deployer makes, through one run helper (`deployer.tools.command.run`).

Each operation builds an argument list (never a shell string), runs the pinned helm binary with the
target's kubeconfig/context and a private registry config, and turns a failure into `DeployFailed` carrying
the redacted tail of helm's stderr. `upgrade_install` never passes `--wait`: the rollout watcher
(deployer/rollout) watches the rollout and decides about rollback.

A release left in `pending-install`/`pending-upgrade`/`pending-rollback` by an interrupted run blocks every
later upgrade ("another operation is in progress"). `recover_pending` repairs it; callers must hold the
release lock (deployer/release/lock.py) first, because without it a pending state may belong to a live run.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deployer.errors import DeployFailed, EnvironmentMissing
from deployer.tools import command

__all__ = [
    "HELM_BIN",
    "Helm",
    "Recovery",
    "Release",
    "ResourceDiff",
    "Revision",
    "diff_manifests",
    "split_manifest",
]

HELM_BIN = os.environ.get("DEPLOYER_HELM", "/var/cache/deployer/tools/bin/helm")
"""The pinned helm binary that e2e/tools.sh builds (override with $DEPLOYER_HELM)."""

PENDING = ("pending-install", "pending-upgrade", "pending-rollback")
GOOD = ("deployed", "superseded")

# A runner: (argv, *, env, timeout, input) -> an object with `stdout` and `stderr` text
# (deployer.tools.command's `Completed`); raises deployer.tools.command.ToolFailed.
Runner = Callable[..., Any]


@dataclass(frozen=True)
class Release:
    """What `helm status` says about a release."""

    name: str
    namespace: str
    revision: int
    status: str
    chart: str = ""
    app_version: str = ""

    @property
    def pending(self) -> bool:
        return self.status in PENDING


@dataclass(frozen=True)
class Revision:
    """One row of `helm history`."""

    revision: int
    status: str
    chart: str
    app_version: str
    description: str


@dataclass(frozen=True)
class Recovery:
    """What `recover_pending` did about a stuck release."""

    action: str  # "none" | "rolled-back" | "uninstalled"
    stuck_status: str = ""
    stuck_revision: int = 0
    to_revision: int = 0
    release: Release | None = None
    """With action "none": the release's state as read (None: no such release), so callers need not
    ask `helm status` again. Not set after a repair: the release has changed since."""

    def describe(self) -> str:
        if self.action == "rolled-back":
            return (
                f"release was stuck in {self.stuck_status} (rev {self.stuck_revision}) from an interrupted "
                f"run; rolled back to revision {self.to_revision}"
            )
        if self.action == "uninstalled":
            return (
                f"release was stuck in {self.stuck_status} (rev {self.stuck_revision}) with no earlier good "
                "revision; uninstalled it so the next install starts clean"
            )
        return "release not stuck"


@dataclass(frozen=True)
class ResourceDiff:
    """One resource that `deployer diff` would change: kind/name, change, unified diff text."""

    kind: str
    name: str
    change: str  # "added" | "removed" | "changed"
    diff: str = field(default="", repr=False)


def _default_runner(argv: Sequence[str], **kwargs: Any) -> command.Completed:
    return command.run("helm", list(argv), **kwargs)


def _tool_failed_type() -> type[BaseException]:
    return command.ToolFailed


def _stderr_tail(error: BaseException) -> str:
    tail = getattr(error, "stderr_tail", None) or str(error)
    return str(tail).strip()


class Helm:
    """helm, bound to one cluster (kubeconfig + context) and one private registry config."""

    def __init__(
        self,
        *,
        binary: str = HELM_BIN,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        registry_config: str | os.PathLike[str] | None = None,
        timeout: int = 300,
        runner: Runner | None = None,
    ) -> None:
        self.binary = str(binary)
        self.kubeconfig = str(kubeconfig) if kubeconfig else None
        self.context = context
        self.registry_config = str(registry_config) if registry_config else None
        self.timeout = timeout
        self._runner = runner or _default_runner

    # -- argv building (pure; unit-tested) ---------------------------------------------------------------

    def argv(self, *args: str) -> list[str]:
        """The full command line for `helm <args>` with this target's global flags."""
        argv = [self.binary, *args]
        if self.kubeconfig:
            argv += ["--kubeconfig", self.kubeconfig]
        if self.context:
            argv += ["--kube-context", self.context]
        if self.registry_config:
            argv += ["--registry-config", self.registry_config]
        return argv

    def _run(self, what: str, *args: str, timeout: int | None = None, input: str | None = None) -> str:
        """Run helm; its stdout."""
        return self._run_both(what, *args, timeout=timeout, input=input)[0]

    def _run_both(
        self, what: str, *args: str, timeout: int | None = None, input: str | None = None
    ) -> tuple[str, str]:
        """Run helm; its (stdout, stderr). Failures become DeployFailed."""
        if not Path(self.binary).exists() and os.sep in self.binary:
            raise EnvironmentMissing(
                f"helm not found at {self.binary}", hint="build the pinned tools with `e2e/tools.sh`"
            )
        # command.run gives a clean environment (no HELM_*/KUBECONFIG from the caller's shell); helm's
        # cache goes to deployer's cache directory, not the user's home.
        env = {"HELM_CACHE_HOME": os.environ.get("DEPLOYER_HELM_CACHE", "/var/cache/deployer/helm")}
        try:
            deadline = (timeout or self.timeout) + 30  # helm's own --timeout fires first
            done = self._runner(self.argv(*args), env=env, timeout=deadline, input=input)
            return str(done.stdout or ""), str(done.stderr or "")
        except _tool_failed_type() as e:
            # lint findings and test pod logs are on stdout even when helm fails: they are the evidence.
            stdout = "\n".join(str(getattr(e, "stdout_tail", "") or "").strip().splitlines()[-30:])
            message = f"helm {what} failed: {_stderr_tail(e)[-2000:]}"
            raise DeployFailed(
                f"{message}\n{stdout}" if stdout else message,
                hint="see `helm --help`; the command line is in the log above",
            ) from e

    # -- releases ---------------------------------------------------------------------------------------

    def upgrade_install(
        self,
        release: str,
        namespace: str,
        chart: str | os.PathLike[str],
        *,
        values_file: str | os.PathLike[str] | None = None,
        version: str | None = None,
        plain_http: bool = False,
        ca_file: str | os.PathLike[str] | None = None,
        timeout: int | None = None,
        description: str | None = None,
        create_namespace: bool = True,
    ) -> Release:
        """`helm upgrade --install` without --wait; returns the new release (status deployed or failed).

        `create_namespace=False` when the caller made sure the namespace exists: helm's
        `--create-namespace` POSTs it on every first install, which a namespaced identity may not.
        """
        args = ["upgrade", "--install", release, str(chart), "--namespace", namespace]
        if create_namespace:
            args.append("--create-namespace")
        args += ["--reset-values", "--history-max", "10", "--timeout", f"{timeout or self.timeout}s"]
        if values_file:
            args += ["--values", str(values_file)]
        if version:
            args += ["--version", version]
        args += _registry_tls(plain_http, ca_file)
        if description:
            args += ["--description", description]
        args += ["--output", "json"]
        out = self._run("upgrade --install", *args, timeout=timeout)
        return _release(json.loads(out), release, namespace)

    def status(self, release: str, namespace: str) -> Release | None:
        """The release's current state, or None when there is no such release."""
        try:
            out = self._run("status", "status", release, "--namespace", namespace, "--output", "json")
        except DeployFailed as e:
            if _not_found(e):
                return None
            raise
        return _release(json.loads(out), release, namespace)

    def history(self, release: str, namespace: str, *, max_rows: int = 20) -> list[Revision]:
        """Revisions, oldest first; empty when there is no such release."""
        try:
            out = self._run(
                "history",
                "history",
                release,
                "--namespace",
                namespace,
                "--max",
                str(max_rows),
                "--output",
                "json",
            )
        except DeployFailed as e:
            if _not_found(e):
                return []
            raise
        rows = json.loads(out) or []
        return sorted(
            (
                Revision(
                    revision=int(r["revision"]),
                    status=str(r.get("status", "")),
                    chart=str(r.get("chart", "")),
                    app_version=str(r.get("app_version", "")),
                    description=str(r.get("description", "")),
                )
                for r in rows
            ),
            key=lambda r: r.revision,
        )

    def rollback(
        self, release: str, namespace: str, revision: int | None = None, *, timeout: int | None = None
    ) -> None:
        """`helm rollback` to `revision` (default: the previous one), without --wait."""
        args = ["rollback", release]
        if revision is not None:
            args.append(str(revision))
        args += ["--namespace", namespace, "--timeout", f"{timeout or self.timeout}s", "--cleanup-on-fail"]
        self._run("rollback", *args, timeout=timeout)

    def uninstall(
        self, release: str, namespace: str, *, wait: bool = False, timeout: int | None = None
    ) -> None:
        """`helm uninstall`; a release that is already gone is not an error."""
        args = ["uninstall", release, "--namespace", namespace, "--timeout", f"{timeout or self.timeout}s"]
        if wait:
            args.append("--wait")
        try:
            self._run("uninstall", *args, timeout=timeout)
        except DeployFailed as e:
            if not _not_found(e):
                raise

    def test(self, release: str, namespace: str, *, timeout: int | None = None) -> str:
        """`helm test --logs`; returns its output. A failing test pod raises DeployFailed with its logs."""
        args = [
            "test",
            release,
            "--namespace",
            namespace,
            "--logs",
            "--timeout",
            f"{timeout or self.timeout}s",
        ]
        return self._run("test", *args, timeout=timeout)

    def get_hooks(self, release: str, namespace: str) -> str:
        """The hook manifests of the release's current revision, as rendered (its `helm test` pods)."""
        return self._run("get hooks", "get", "hooks", release, "--namespace", namespace)

    def get_manifest(self, release: str, namespace: str) -> str:
        """The manifest of the release's current revision ("" when there is no release)."""
        try:
            return self._run("get manifest", "get", "manifest", release, "--namespace", namespace)
        except DeployFailed as e:
            if _not_found(e):
                return ""
            raise

    def get_all(self, release: str, namespace: str, revision: int, *, template: str) -> str:
        """`helm get all --revision` of one revision, hooks included, rendered through a Go `template`
        (the release object: .Release.Manifest, .Release.Hooks, .Release.Chart ...)."""
        return self._run(
            "get all",
            "get", "all", release, "--namespace", namespace, "--revision", str(revision),
            "--template", template,
        )  # fmt: skip

    def template(
        self,
        release: str,
        namespace: str,
        chart: str | os.PathLike[str],
        *,
        values_file: str | None = None,
        skip_tests: bool = False,
    ) -> str:
        """The manifests `upgrade --install` would apply (rendered client-side, no cluster needed)."""
        args = ["template", release, str(chart), "--namespace", namespace, "--is-upgrade"]
        if values_file:
            args += ["--values", values_file]
        if skip_tests:
            args.append("--skip-tests")
        return self._run("template", *args)

    def diff(
        self, release: str, namespace: str, chart: str | os.PathLike[str], *, values_file: str | None = None
    ) -> list[ResourceDiff]:
        """What an upgrade would change: the rendered chart against `helm get manifest` of the release."""
        # `get manifest` leaves hooks (the helm test pod) out, so the rendering must too.
        new = self.template(release, namespace, chart, values_file=values_file, skip_tests=True)
        old = self.get_manifest(release, namespace)
        return diff_manifests(old, new)

    # -- charts and the registry ------------------------------------------------------------------------

    def lint(self, chart_dir: str | os.PathLike[str], *, timeout: int | None = None) -> str:
        """`helm lint --strict`; warnings count as failures."""
        return self._run("lint", "lint", "--strict", str(chart_dir), timeout=timeout)

    def package(self, chart_dir: str | os.PathLike[str], destination: str | os.PathLike[str]) -> Path:
        """`helm package`; returns the .tgz path."""
        out = self._run("package", "package", str(chart_dir), "--destination", str(destination))
        match = re.search(r"saved it to:\s*(\S+\.tgz)", out)
        if not match:
            raise DeployFailed(f"helm package did not say where it saved the chart: {out.strip()[-500:]}")
        return Path(match.group(1))

    def registry_login(
        self,
        host: str,
        username: str,
        password: str,
        *,
        insecure: bool = False,
        ca_file: str | os.PathLike[str] | None = None,
    ) -> None:
        """`helm registry login` with the password on stdin (never on the command line)."""
        args = ["registry", "login", host, "--username", username, "--password-stdin"]
        if insecure:
            args.append("--insecure")
        elif ca_file:
            args += ["--ca-file", str(ca_file)]
        self._run("registry login", *args, input=password)

    def push(
        self,
        package: str | os.PathLike[str],
        remote: str,
        *,
        plain_http: bool = False,
        ca_file: str | os.PathLike[str] | None = None,
    ) -> str:
        """`helm push <tgz> oci://…`; returns the pushed chart's digest."""
        args = ["push", str(package), remote, *_registry_tls(plain_http, ca_file)]
        # helm push reports "Pushed: …" and "Digest: …" on stderr.
        out = "\n".join(self._run_both("push", *args))
        match = re.search(r"Digest:\s*(sha256:[0-9a-f]{64})", out)
        if not match:
            raise DeployFailed(f"helm push did not report a digest: {out.strip()[-500:]}")
        return match.group(1)

    # -- recovery ---------------------------------------------------------------------------------------

    def recover_pending(self, release: str, namespace: str) -> Recovery:
        """Repair a release left in pending-* by an interrupted run. Call only while holding the release lock.

        pending-upgrade/pending-rollback → roll back to the newest deployed/superseded revision before it;
        pending-install, or no good revision to go back to → uninstall.
        """
        current = self.status(release, namespace)
        if current is None or not current.pending:
            return Recovery("none", release=current)
        good = [
            r for r in self.history(release, namespace) if r.status in GOOD and r.revision < current.revision
        ]
        if current.status != "pending-install" and good:
            target = good[-1].revision
            self.rollback(release, namespace, target)
            return Recovery("rolled-back", current.status, current.revision, target)
        self.uninstall(release, namespace)
        return Recovery("uninstalled", current.status, current.revision, 0)


def _release(data: Mapping[str, Any], name: str, namespace: str) -> Release:
    info = data.get("info") or {}
    chart = (data.get("chart") or {}).get("metadata") or {}
    return Release(
        name=str(data.get("name", name)),
        namespace=str(data.get("namespace", namespace)),
        revision=int(data.get("version", 0)),
        status=str(info.get("status", "unknown")),
        chart=f"{chart.get('name', '')}-{chart.get('version', '')}" if chart else "",
        app_version=str(chart.get("appVersion", "")),
    )


def _not_found(error: DeployFailed) -> bool:
    return "release: not found" in str(error.message)


def split_manifest(text: str) -> dict[tuple[str, str], str]:
    """`---`-separated manifests → {(kind, namespace/name): normalised YAML text}; empty docs dropped."""
    out: dict[tuple[str, str], str] = {}
    for doc in yaml.safe_load_all(text or ""):
        if not isinstance(doc, dict) or not doc:
            continue
        meta = doc.get("metadata") or {}
        key = (str(doc.get("kind", "?")), f"{meta.get('namespace', '')}/{meta.get('name', '?')}".lstrip("/"))
        out[key] = yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, width=1000)
    return out


def diff_manifests(old: str, new: str) -> list[ResourceDiff]:
    """Per-resource unified diffs from `old` (live) to `new` (rendered), sorted by kind and name."""
    before, after = split_manifest(old), split_manifest(new)
    diffs: list[ResourceDiff] = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key, ""), after.get(key, "")
        if a == b:
            continue
        change = "added" if not a else "removed" if not b else "changed"
        text = "".join(
            difflib.unified_diff(
                a.splitlines(keepends=True),
                b.splitlines(keepends=True),
                fromfile=f"live/{key[0]}/{key[1]}",
                tofile=f"new/{key[0]}/{key[1]}",
            )
        )
        diffs.append(ResourceDiff(kind=key[0], name=key[1], change=change, diff=text))
    return diffs


def _registry_tls(plain_http: bool, ca_file: str | os.PathLike[str] | None) -> list[str]:
    """How helm reaches an OCI registry: plain HTTP only when the environment says insecure, else TLS
    verified against the environment's CA bundle (`--ca-file`) or the system trust."""
    if plain_http:
        return ["--plain-http"]
    return ["--ca-file", str(ca_file)] if ca_file else []
