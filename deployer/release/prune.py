"""`deployer prune`: delete old pushes of a service from the registry, never a rollback target.

Every ship pushes the production image to `<registry>/<namespace>/<service>` (tags `<UTC stamp>-production`
and `git-<sha>`) and the chart to `staging/charts/<release>` (version `0.0.<stamp>-c<hash>`). A *push* is
one manifest digest with all the tags pointing at it; its age is the newest timestamp among its tags.

For each of the two repositories the plan keeps:

- the `keep` newest pushes;
- every digest a helm release revision still references: for the service's own release, the images in
  each revision's manifest and hooks (`helm get all --revision R`, the view `helm rollback` restores) and
  each revision's chart version, for every revision `helm history` lists; and, because copies of one
  service may be released under other names or in other namespaces from the same repository, the same
  for every other release on the cluster, read from helm's release Secrets (`owner=helm`, all namespaces);
- a push whose tags carry no timestamp (its age is unknown, so it is never guessed old);
- a push younger than `min_age` (default 600 s, ship's default deadline): a ship in flight pushes its
  image and chart before helm records them in a revision;

and deletes the manifests of the rest by digest (`DELETE /v2/<repo>/manifests/<digest>`, which also
removes every tag pointing at it). A tag pointing at a kept digest is kept with it. Blob space is only
reclaimed by the registry's garbage collector (`scripts/stack gc`).

If the cluster cannot be read (kubeconfig, API server, helm history) nothing is deleted: the command
refuses with `EnvironmentMissing` (exit 19) rather than guess what is in use. Tags pushed while the plan
was made are read again just before deleting, so a digest re-pushed meanwhile is kept.

Deciding (`pushes`, `decide`) is pure; gathering and deleting go through `deployer.tools.registry` and the
`deployer.release.ref.Cluster` seam. Nothing here prints: `PruneResult.lines()` is for the CLI.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import urllib.error
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from deployer.errors import DeployFailed, EnvironmentMissing, UserError

__all__ = [
    "InUse",
    "Plan",
    "Push",
    "PruneResult",
    "Reference",
    "chart_stamp",
    "decide",
    "find_references",
    "image_stamp",
    "prune",
    "pushes",
]

_IMAGE_STAMP = re.compile(r"^(\d{8}T\d{6}Z)-")
_CHART_STAMP = re.compile(r"^0\.0\.(\d{14})(?:[-_+].*)?$")
_DIGEST = r"sha256:[0-9a-f]{64}"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
# helm's template for one revision: the chart's name and version, the manifest, then every hook's manifest
# (`helm get manifest` leaves hooks out, and a helm test pod may run an image of the same repository).
_REVISION_TEMPLATE = (
    "chart: {{.Release.Chart.Metadata.Name}} {{.Release.Chart.Metadata.Version}}\n"
    "{{.Release.Manifest}}{{range .Release.Hooks}}\n---\n{{.Manifest}}{{end}}"
)


# --- the decision (pure) -------------------------------------------------------------------------------


def image_stamp(tag: str) -> datetime | None:
    """The push time in an image tag `<YYYYMMDDTHHMMSSZ>-<variant>` (None for other tags, e.g. git-…)."""
    match = _IMAGE_STAMP.match(tag)
    if not match:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def chart_stamp(tag: str) -> datetime | None:
    """The render time in a chart version tag `0.0.<YYYYMMDDHHMMSS>[-c<hash>]` (None for other tags)."""
    match = _CHART_STAMP.match(tag)
    if not match:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass(frozen=True)
class Push:
    """One manifest in a repository: its digest, the tags pointing at it, and when it was last pushed
    (the newest timestamp among its tags; None when no tag carries one)."""

    digest: str
    tags: tuple[str, ...]
    pushed: datetime | None


def pushes(tag_digests: Mapping[str, str], stamp: Callable[[str], datetime | None]) -> list[Push]:
    """Group `tag → digest` into pushes, newest first; pushes of unknown age come last.

    Ties (two pushes in the same second) are ordered by digest, so the outcome never depends on the
    order the registry listed the tags in.
    """
    by_digest: dict[str, list[str]] = {}
    for tag, digest in tag_digests.items():
        by_digest.setdefault(digest, []).append(tag)
    out = []
    for digest, tags in by_digest.items():
        stamps = [s for s in (stamp(t) for t in tags) if s is not None]
        out.append(Push(digest, tuple(sorted(tags)), max(stamps) if stamps else None))
    dated = sorted((p for p in out if p.pushed), key=lambda p: (p.pushed, p.digest), reverse=True)
    undated = sorted((p for p in out if not p.pushed), key=lambda p: p.digest)
    return dated + undated


@dataclass(frozen=True)
class Decision:
    """What happens to one push, and why."""

    push: Push
    keep: bool
    reasons: tuple[str, ...]


def decide(
    found: Sequence[Push],
    keep: int,
    in_use: Mapping[str, Iterable[str]],
    *,
    now: datetime | None = None,
    min_age: float = 0.0,
) -> list[Decision]:
    """Keep the `keep` newest dated pushes, every push whose digest is in `in_use` (digest → why), every
    push of unknown age, and (given `now`) every push younger than `min_age` seconds; delete the rest.
    `found` is ordered as `pushes` returns it.

    The age rule is for ships in flight: a ship pushes its image minutes before helm records it in a
    revision, and another push of the same service in between would make it look old and unused.
    """
    if keep < 1:
        raise UserError(
            f"--keep must be at least 1 (got {keep})",
            hint="the newest push may be a ship in progress that helm does not know about yet",
        )
    decisions = []
    rank = 0
    for push in found:
        reasons = []
        if push.pushed is not None:
            rank += 1
            if rank <= keep:
                reasons.append(f"newest push #{rank} of {keep} kept")
        else:
            reasons.append("no timestamp in its tags: age unknown")
        if now is not None and push.pushed is not None and (now - push.pushed).total_seconds() < min_age:
            age = max((now - push.pushed).total_seconds(), 0)
            reasons.append(f"pushed {age:.0f}s ago, younger than --min-age {min_age:.0f}s")
        reasons += [f"in use: {why}" for why in sorted(set(in_use.get(push.digest, ())))]
        decisions.append(Decision(push, bool(reasons), tuple(reasons)))
    return decisions


@dataclass(frozen=True)
class Reference:
    """One mention of the repository in a release revision: by digest, by tag, or both."""

    tag: str | None
    digest: str | None


def find_references(text: str, image: str) -> list[Reference]:
    """Every reference to `image` (host/path, no tag) in manifest text, e.g. `image: "<image>@sha256:…"`.

    A plain text scan rather than a walk over `image:` fields, so an image named anywhere (an init
    container, a hook, an environment variable) counts as in use: keeping too much is the safe error.
    The repository must end where the match ends (`staging/app` does not match `staging/app-2`).
    """
    pattern = re.compile(
        re.escape(image) + rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?(?![A-Za-z0-9_./:@-])"
    )
    seen: list[Reference] = []
    for match in pattern.finditer(text):
        ref = Reference(match.group("tag"), match.group("digest"))
        if ref not in seen:
            seen.append(ref)
    return seen


# --- results ---------------------------------------------------------------------------------------------


@dataclass
class InUse:
    """What releases reference in one repository: digests and tags, each with the revisions naming them."""

    digests: dict[str, set[str]] = field(default_factory=dict)
    tags: dict[str, set[str]] = field(default_factory=dict)

    def add(self, ref: Reference, why: str) -> None:
        if ref.digest:
            self.digests.setdefault(ref.digest, set()).add(why)
        elif ref.tag:
            self.tags.setdefault(ref.tag, set()).add(why)

    def resolve(self, tag_digests: Mapping[str, str]) -> tuple[dict[str, set[str]], list[str]]:
        """Digest → why, with tag-only references resolved through the registry's tags; and warnings
        for references the registry no longer has (a rollback to those revisions cannot pull)."""
        out = {d: set(w) for d, w in self.digests.items()}
        present = set(tag_digests.values())
        missing = [
            f"{d} ({', '.join(sorted(w))})" for d, w in sorted(self.digests.items()) if d not in present
        ]
        for tag, why in sorted(self.tags.items()):
            if tag in tag_digests:
                out.setdefault(tag_digests[tag], set()).update(f"{w} as tag {tag}" for w in why)
            else:
                missing.append(f"tag {tag} ({', '.join(sorted(why))})")
        return out, missing


@dataclass(frozen=True)
class Plan:
    """The decisions for one repository."""

    kind: str  # "image" or "chart"
    host: str
    repository: str
    decisions: list[Decision]
    missing: list[str]  # in-use references the registry no longer has

    @property
    def to_delete(self) -> list[Push]:
        return [d.push for d in self.decisions if not d.keep]


@dataclass
class PruneResult:
    """What `deployer prune` kept and deleted (or, with dry_run, would delete)."""

    release: str
    namespace: str
    keep: int
    dry_run: bool
    plans: list[Plan]
    releases_checked: int  # other helm releases read from the cluster
    min_age: float = 0.0
    revisions: int = 0  # revisions of the release itself
    namespaces: tuple[str, ...] | None = None  # where other releases were read (None: all namespaces)
    deleted: list[tuple[str, str]] = field(default_factory=list)  # (repository, digest)
    already_gone: list[tuple[str, str]] = field(default_factory=list)
    kept_late: list[tuple[str, str, str]] = field(default_factory=list)  # (repository, digest, new tag)

    def to_json(self) -> dict[str, Any]:
        """The result as plain data (`deployer prune --json`): every push with its action and reasons."""
        return {
            "release": self.release,
            "namespace": self.namespace,
            "keep": self.keep,
            "min_age": self.min_age,
            "dry_run": self.dry_run,
            "revisions": self.revisions,
            "other_releases": self.releases_checked,
            "namespaces_checked": list(self.namespaces) if self.namespaces is not None else None,
            "repositories": [
                {
                    "kind": plan.kind,
                    "repository": f"{plan.host}/{plan.repository}",
                    "pushes": [
                        {
                            "digest": d.push.digest,
                            "tags": list(d.push.tags),
                            "pushed": d.push.pushed.isoformat() if d.push.pushed else None,
                            "action": "keep" if d.keep else "delete",
                            "reasons": list(d.reasons),
                        }
                        for d in plan.decisions
                    ],
                    "missing": plan.missing,
                }
                for plan in self.plans
            ],
            "deleted": [f"{repo}@{digest}" for repo, digest in self.deleted],
            "already_gone": [f"{repo}@{digest}" for repo, digest in self.already_gone],
            "kept_late": [f"{repo}@{digest} ({tag})" for repo, digest, tag in self.kept_late],
        }

    def lines(self) -> list[str]:
        where = "" if self.namespaces is None else f" in namespace(s) {', '.join(self.namespaces)}"
        out = [
            f"release {self.release} in {self.namespace} and {self.releases_checked} other helm release(s)"
            f"{where} checked; keeping the {self.keep} newest push(es), those younger than "
            f"{self.min_age:.0f}s and everything in use"
        ]
        if self.namespaces is not None:
            out.append(
                "note: this identity may not list helm releases in all namespaces, so only these were read: "
                "a release elsewhere that uses these repositories does not protect its pushes"
            )
        if not self.revisions:
            out.append(
                f"warning: no release {self.release} in namespace {self.namespace}: only other releases "
                "protect anything (check --namespace/--release)"
            )
        for plan in self.plans:
            deleting = len(plan.to_delete)
            out.append(
                f"{plan.kind} repository {plan.host}/{plan.repository}: {len(plan.decisions)} push(es), "
                f"keep {len(plan.decisions) - deleting}, {'would delete' if self.dry_run else 'delete'} "
                f"{deleting}"
            )
            for d in plan.decisions:
                tags = ", ".join(d.push.tags)
                if d.keep:
                    out.append(f"  keep    {d.push.digest}  [{tags}]  {'; '.join(d.reasons)}")
                else:
                    out.append(f"  delete  {d.push.digest}  [{tags}]")
            for ref in plan.missing:
                out.append(
                    f"  warning: in use but not in the registry: {ref}: a rollback to it cannot pull it"
                )
        for repo, digest, tag in self.kept_late:
            out.append(f"kept {repo}@{digest}: tag {tag} was pushed to it while pruning")
        for repo, digest in self.already_gone:
            out.append(f"already gone: {repo}@{digest}")
        total = sum(len(p.to_delete) for p in self.plans)
        if self.dry_run:
            out.append(f"dry run: nothing deleted ({total} manifest(s) would be)")
        else:
            out.append(
                f"deleted {len(self.deleted)} manifest(s); blob space is reclaimed by `scripts/stack gc`"
            )
        return out


# --- gathering -------------------------------------------------------------------------------------------


def _cluster_unreadable(what: str, err: Exception) -> EnvironmentMissing:
    detail = getattr(err, "message", None) or str(err)
    return EnvironmentMissing(
        f"cannot {what}, so what is in use is unknown; nothing was deleted: {detail}",
        hint="check the cluster (`e2e/cluster status`, `deployer doctor`) and run prune again",
    )


def _decode_helm_secret(secret: Any) -> dict[str, Any]:
    """A helm release Secret's `release` field: base64 (Kubernetes) of base64 (helm) of gzip'd JSON."""
    raw = (secret.data or {}).get("release")
    if not raw:
        raise ValueError("no release data")
    data = base64.b64decode(base64.b64decode(raw))
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return dict(json.loads(data))


def _list_helm_secrets(
    cluster: Any, own: str, others: Sequence[str]
) -> tuple[list[Any], tuple[str, ...] | None]:
    """helm's release Secrets in all namespaces; else (a namespaced identity, refused with 403) in the
    release's namespace `own`, which must be readable, and in those of `others` it may read. Also the
    namespaces read (None: all)."""
    from deployer.tools.kube import KubeForbidden, call

    try:
        listed = call(
            "list helm release Secrets in all namespaces",
            cluster.core.list_secret_for_all_namespaces,
            label_selector="owner=helm",
            _request_timeout=30,
        )
        return list(listed.items), None
    except KubeForbidden:
        pass  # read only where the identity may: the environment's namespaces
    except UserError as err:
        raise _cluster_unreadable("list helm releases in all namespaces", err) from err
    found: list[Any] = []
    read = []
    for namespace in [own, *(n for n in others if n != own)]:
        try:
            listed = call(
                f"list helm release Secrets in namespace {namespace}",
                cluster.core.list_namespaced_secret,
                namespace,
                label_selector="owner=helm",
                _request_timeout=30,
            )
        except KubeForbidden as err:
            if namespace != own:
                continue  # the identity cannot deploy there either
            raise _cluster_unreadable(f"list helm releases in namespace {namespace}", err) from err
        except UserError as err:
            raise _cluster_unreadable(f"list helm releases in namespace {namespace}", err) from err
        found += listed.items
        read.append(namespace)
    return found, tuple(read)


def _other_releases(
    cluster: Any, tgt: Any, image: str, chart_name: str, images: InUse, charts: InUse, scope: Sequence[str]
) -> tuple[int, tuple[str, ...] | None]:
    """Add the references of every helm release revision on the cluster except `tgt`'s own release
    (read from helm's release Secrets; only in its namespace and `scope` when the identity may not list
    all namespaces); the number of other releases seen and the namespaces read (None: all)."""
    listed, read = _list_helm_secrets(cluster, tgt.namespace, scope)
    others = set()
    for secret in listed:
        meta = secret.metadata
        try:
            rel = _decode_helm_secret(secret)
        except (ValueError, OSError, EOFError) as err:
            what = f"decode helm release Secret {meta.namespace}/{meta.name}"
            raise _cluster_unreadable(what, err) from err
        name, namespace = str(rel.get("name", "")), str(rel.get("namespace", meta.namespace))
        if (name, namespace) == (tgt.release, tgt.namespace):
            continue
        others.add((namespace, name))
        status = (rel.get("info") or {}).get("status", "?")
        why = f"release {name} in {namespace} revision {rel.get('version', '?')} ({status})"
        text = str(rel.get("manifest") or "")
        text += "".join("\n---\n" + str(h.get("manifest") or "") for h in rel.get("hooks") or [])
        for ref in find_references(text, image):
            images.add(ref, why)
        meta_chart = (rel.get("chart") or {}).get("metadata") or {}
        if meta_chart.get("name") == chart_name and meta_chart.get("version"):
            charts.add(Reference(str(meta_chart["version"]).replace("+", "_"), None), why)
    return len(others), read


def _own_release(cluster: Any, tgt: Any, image: str, chart_name: str, images: InUse, charts: InUse) -> int:
    """Add the references of every revision of `tgt`'s release, read with helm; the revision count."""
    helm = cluster.helm
    try:
        history = helm.history(tgt.release, tgt.namespace, max_rows=100000)
    except DeployFailed as err:
        raise _cluster_unreadable(f"read the helm history of {tgt.release} in {tgt.namespace}", err) from err

    def read(revision: int) -> str:
        # helm.get_manifest has no --revision and leaves hooks out; `get all --template` gives both.
        return helm.get_all(tgt.release, tgt.namespace, revision, template=_REVISION_TEMPLATE)

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            texts = list(pool.map(read, [r.revision for r in history]))
    except DeployFailed as err:
        raise _cluster_unreadable(f"read the revisions of {tgt.release} in {tgt.namespace}", err) from err
    for rev, text in zip(history, texts, strict=True):
        why = f"release {tgt.release} revision {rev.revision} ({rev.status})"
        first, _, manifest = text.partition("\n")
        for ref in find_references(manifest, image):
            images.add(ref, why)
        parts = first.removeprefix("chart: ").split()
        if len(parts) == 2 and parts[0] == chart_name:
            charts.add(Reference(parts[1].replace("+", "_"), None), why)
    return len(history)


# A tag reader: (repository, host) -> {tag: digest}
TagReader = Callable[[str, str], dict[str, str]]
# A deleter: (repository, host, digest) -> True when deleted, False when it was not there
Deleter = Callable[[str, str, str], bool]


def registry_tags(creds: Any) -> TagReader:
    """The real `TagReader`: list the tags, then ask for each tag's digest (in parallel)."""
    from deployer.tools import registry

    def read(repository: str, host: str) -> dict[str, str]:
        names = registry.tags(repository, registry=host, creds=creds)
        with ThreadPoolExecutor(max_workers=8) as pool:
            digests = pool.map(lambda t: registry.digest(repository, t, registry=host, creds=creds), names)
            return {t: d for t, d in zip(names, digests, strict=True) if d}  # a tag deleted meanwhile: None

    return read


def registry_deleter(creds: Any) -> Deleter:
    """The real `Deleter`: DELETE the manifest by digest; registry refusals become our errors."""
    from deployer.tools import registry

    def delete(repository: str, host: str, digest: str) -> bool:
        try:
            return registry.delete_manifest(repository, digest, registry=host, creds=creds)
        except urllib.error.HTTPError as err:
            if err.code == 405:
                raise EnvironmentMissing(
                    f"the registry at {host} does not allow deleting ({repository}@{digest}: HTTP 405)",
                    hint="set storage.delete.enabled: true in its config (`scripts/stack up` does)",
                ) from err
            if err.code == 401:
                raise EnvironmentMissing(
                    f"the registry at {host} rejected the credentials deleting {repository}@{digest}",
                    hint="check DEPLOYER_REGISTRY_USER/DEPLOYER_REGISTRY_PASSWORD or the credentials file",
                ) from err
            raise EnvironmentMissing(
                f"the registry at {host} failed to delete {repository}@{digest}: HTTP {err.code}",
                hint="see the registry's log; run prune again to finish",
            ) from err
        except OSError as err:
            raise EnvironmentMissing(
                f"the registry at {host} does not answer deleting {repository}@{digest}: {err}",
                hint=registry.START_HINT,
            ) from err

    return delete


def _plan(kind: str, host: str, repository: str, in_use: InUse, read: TagReader,
          stamp: Callable[[str], datetime | None], **rules: Any) -> tuple[Plan, dict[str, str]]:  # fmt: skip
    tag_digests = read(repository, host)
    digests, missing = in_use.resolve(tag_digests)
    plan = Plan(kind, host, repository, decide(pushes(tag_digests, stamp), in_use=digests, **rules), missing)
    return plan, tag_digests


def prune(
    tgt: Any,
    cluster: Any,
    *,
    keep: int = 10,
    dry_run: bool = False,
    min_age: float = 600.0,
    now: datetime | None = None,
    image_host: str | None = None,
    image_repository: str | None = None,
    chart_host: str | None = None,
    chart_repository: str | None = None,
    read_tags: TagReader | None = None,
    delete: Deleter | None = None,
    progress: Callable[[str], None] = lambda _line: None,
) -> PruneResult:
    """Plan and (unless `dry_run`) delete old pushes of `tgt`'s image and chart repositories.

    Pushes younger than `min_age` seconds (at `now`, default: the current time) are kept: a ship may be
    between its push and its helm upgrade. The repositories default to where `deployer ship` pushes
    in `tgt`'s environment: `<registry>/<namespace>/<service>` and its chart repository + `/<release>`.
    The cluster is read first and completely; any
    failure to read it raises `EnvironmentMissing` before the registry is touched.
    """
    from deployer.target import resolve
    from deployer.tools import registry

    if keep < 1:
        decide([], keep, {})  # raises the usage error
    resolved = getattr(tgt, "where", None) or resolve(None)
    where = resolved.registry
    image_host = image_host or where.host
    image_repository = image_repository or f"{where.namespace}/{tgt.service.name}"
    chart_base = where.charts.removeprefix("oci://")
    chart_host = chart_host or chart_base.split("/", 1)[0]
    chart_repository = chart_repository or f"{chart_base.split('/', 1)[1]}/{tgt.release}"
    chart_name = chart_repository.rsplit("/", 1)[-1]
    image = f"{image_host}/{image_repository}"

    images, charts = InUse(), InUse()
    # where this environment's releases of the service go, for an identity confined to namespaces
    scope = [resolved.namespace(tgt.release, tgt.service.name)]
    others, read = _other_releases(cluster, tgt, image, chart_name, images, charts, scope)
    revisions = _own_release(cluster, tgt, image, chart_name, images, charts)
    progress(
        f"read {revisions} revision(s) of {tgt.release} in {tgt.namespace} and {others} other release(s)"
    )

    if read_tags is None or delete is None:
        # a deployer.yaml registry's client holds its own credentials (registry.use)
        creds = registry.credentials() if resolved.builtin else None
        read_tags = read_tags or registry_tags(creds)
        delete = delete or registry_deleter(creds)
    rules = {"keep": keep, "now": now or datetime.now(UTC), "min_age": min_age}
    planned = [
        _plan("image", image_host, image_repository, images, read_tags, image_stamp, **rules),
        _plan("chart", chart_host, chart_repository, charts, read_tags, chart_stamp, **rules),
    ]
    result = PruneResult(
        tgt.release, tgt.namespace, keep, dry_run, [p for p, _ in planned], others, min_age, revisions, read
    )
    if dry_run:
        return result
    for plan, before in planned:
        doomed = {p.digest for p in plan.to_delete}
        if not doomed:
            continue
        # A push of identical content after the listing adds a tag to a digest we would delete: read the
        # tags again and spare any digest a new tag points at.
        now = read_tags(plan.repository, plan.host)
        for tag, digest in sorted(now.items()):
            if tag not in before and digest in doomed:
                doomed.discard(digest)
                result.kept_late.append((plan.repository, digest, tag))
        for push in plan.to_delete:
            if push.digest not in doomed:
                continue
            if delete(plan.repository, plan.host, push.digest):
                result.deleted.append((plan.repository, push.digest))
                progress(f"deleted {plan.host}/{plan.repository}@{push.digest} [{', '.join(push.tags)}]")
            else:
                result.already_gone.append((plan.repository, push.digest))
    return result
