"""deployer.release.prune: which pushes are kept and which deleted, and refusing when the cluster
cannot be read.

The decision (`pushes`, `decide`, `find_references`) is pure. `prune()` is run with helm behind a fake
runner (the process boundary), a fake Kubernetes core API for helm's release Secrets, and a dict standing
in for the registry. The real registry and cluster are exercised in e2e/test_prune.py.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import urllib3.exceptions
from click.testing import CliRunner
from kubernetes.client.exceptions import ApiException

from deployer import cli
from deployer.errors import EnvironmentMissing, ExitCode, UserError
from deployer.release import prune
from deployer.release import ref as ref_mod
from deployer.release.prune import Push, Reference
from deployer.tools.helm import Helm
from tests.deployer.helmfakes import HelmSaid, helm_failures_are_helm_said  # noqa: F401 - autouse fixture

REPO = "127.0.0.1:5000/staging/node-hello"
NODE_HELLO = Path(__file__).resolve().parents[3] / "examples" / "node-hello"


def d(n: int) -> str:
    return "sha256:" + f"{n:x}" * 64 if n < 16 else "sha256:" + f"{n:02x}" * 32


def at(hhmmss: str) -> datetime:
    return datetime.strptime(f"20261127T{hhmmss}Z", "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def image_tags(*pushes_: tuple[int, str]) -> dict[str, str]:
    """(digest number, HHMMSS) → the two tags a push makes: stamp tag and git tag."""
    tags = {}
    for n, hhmmss in pushes_:
        tags[f"20261127T{hhmmss}Z-production"] = d(n)
        tags[f"git-{n:012x}"] = d(n)
    return tags


# --- stamps and grouping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("20261127T093151Z-production", at("093151")),
        ("git-37e2a24e616a", None),
        ("git-37e2a24e616a-dirty", None),
        ("latest", None),
        ("20261399T999999Z-production", None),  # not a date
        ("e2e-ship-production", None),
    ],
)
def test_image_stamp(tag: str, expected: datetime | None) -> None:
    assert prune.image_stamp(tag) == expected


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("0.0.20261127093153-ce0abaa50f125", at("093153")),
        ("0.0.20261127093153", at("093153")),
        ("0.0.20261127093153_build.1", at("093153")),  # OCI spelling of 0.0.…+build.1
        ("0.1.0", None),
        ("0.0.2026112709315", None),  # 13 digits
    ],
)
def test_chart_stamp(tag: str, expected: datetime | None) -> None:
    assert prune.chart_stamp(tag) == expected


def test_pushes_group_tags_by_digest_newest_first_undated_last() -> None:
    tags = {
        **image_tags((1, "090000"), (2, "100000")),
        "hand-made": d(3),
        "20261127T080000Z-production": d(2),
    }
    found = prune.pushes(tags, prune.image_stamp)
    assert found == [
        Push(d(2), ("20261127T080000Z-production", "20261127T100000Z-production", "git-000000000002"),
             at("100000")),
        Push(d(1), ("20261127T090000Z-production", "git-000000000001"), at("090000")),
        Push(d(3), ("hand-made",), None),
    ]  # fmt: skip


def test_pushes_in_the_same_second_are_ordered_by_digest_whatever_the_listing_order() -> None:
    tags = {"20261127T100000Z-a": d(5), "20261127T100000Z-b": d(4), "20261127T100000Z-c": d(6)}
    forward = prune.pushes(tags, prune.image_stamp)
    backward = prune.pushes(dict(reversed(list(tags.items()))), prune.image_stamp)
    assert [p.digest for p in forward] == [p.digest for p in backward] == [d(6), d(5), d(4)]


# --- the decision ------------------------------------------------------------------------------------


def _decided(found: Sequence[Push], keep: int, in_use: dict[str, list[str]]) -> list[tuple[str, bool, tuple]]:
    return [(x.push.digest, x.keep, x.reasons) for x in prune.decide(found, keep, in_use)]


def test_keeps_the_n_newest_and_what_a_revision_uses_and_deletes_the_rest() -> None:
    found = prune.pushes(
        image_tags((1, "090000"), (2, "091000"), (3, "092000"), (4, "093000"), (5, "094000")),
        prune.image_stamp,
    )
    in_use = {d(2): ["release node-hello revision 3 (superseded)"], d(5): ["release node-hello revision 4"]}
    assert _decided(found, 2, in_use) == [
        (d(5), True, ("newest push #1 of 2 kept", "in use: release node-hello revision 4")),
        (d(4), True, ("newest push #2 of 2 kept",)),
        (d(3), False, ()),
        (d(2), True, ("in use: release node-hello revision 3 (superseded)",)),
        (d(1), False, ()),
    ]


def test_in_use_digests_do_not_count_towards_keep() -> None:
    found = prune.pushes(image_tags((1, "090000"), (2, "091000"), (3, "092000")), prune.image_stamp)
    in_use = {d(1): ["a"], d(2): ["b"], d(3): ["c"]}
    assert [keep for _, keep, _ in _decided(found, 1, in_use)] == [True, True, True]
    assert [keep for _, keep, _ in _decided(found, 1, {})] == [True, False, False]


def test_a_push_without_a_timestamp_is_never_guessed_old() -> None:
    found = prune.pushes({"hand-made": d(9), **image_tags((1, "090000"), (2, "091000"))}, prune.image_stamp)
    assert _decided(found, 1, {}) == [
        (d(2), True, ("newest push #1 of 1 kept",)),
        (d(1), False, ()),
        (d(9), True, ("no timestamp in its tags: age unknown",)),
    ]


def test_a_tag_pointing_at_a_kept_digest_is_kept_with_it() -> None:
    # the same commit shipped twice: git-… moved to the newer digest; the older digest keeps its stamp tag
    tags = {"20261127T090000Z-production": d(1), "20261127T100000Z-production": d(2), "git-abc": d(2)}
    (newest, older) = prune.decide(prune.pushes(tags, prune.image_stamp), 1, {})
    assert (newest.keep, newest.push.tags) == (True, ("20261127T100000Z-production", "git-abc"))
    assert (older.keep, older.push.tags) == (False, ("20261127T090000Z-production",))


def test_pushes_younger_than_min_age_are_kept_for_ships_in_flight() -> None:
    found = prune.pushes(image_tags((1, "090000"), (2, "095000"), (3, "095500")), prune.image_stamp)
    assert _decided_at(found, at("100000"), 600) == [
        (d(3), True, ("newest push #1 of 1 kept", "pushed 300s ago, younger than --min-age 600s")),
        (d(2), False, ()),  # exactly 600 s old: no longer young
        (d(1), False, ()),
    ]
    assert _decided_at(found, at("100000"), 601)[1] == (
        d(2),
        True,
        ("pushed 600s ago, younger than --min-age 601s",),
    )
    # a clock behind the pusher's: a negative age reads as 0
    assert _decided_at(found, at("095000"), 60)[0][2][-1] == "pushed 0s ago, younger than --min-age 60s"


def _decided_at(found: Sequence[Push], now: datetime, min_age: float) -> list[tuple[str, bool, tuple]]:
    return [(x.push.digest, x.keep, x.reasons) for x in prune.decide(found, 1, {}, now=now, min_age=min_age)]


def test_keep_zero_is_refused() -> None:
    with pytest.raises(UserError, match=r"--keep must be at least 1 \(got 0\)"):
        prune.decide([], 0, {})


# --- references in manifests -------------------------------------------------------------------------


def test_find_references_by_digest_tag_or_both_and_only_this_repository() -> None:
    text = f"""
        image: "{REPO}@{d(1)}"
        image: {REPO}:20261127T090000Z-production@{d(2)}
        image: '{REPO}:git-abc'
        image: {REPO}-2@{d(3)}
        image: {REPO}/sub@{d(4)}
        value: "{REPO}@{d(1)}"
    """
    assert prune.find_references(text, REPO) == [
        Reference(None, d(1)),
        Reference("20261127T090000Z-production", d(2)),
        Reference("git-abc", None),
    ]


def test_in_use_tags_resolve_through_the_registry_and_missing_ones_are_named() -> None:
    in_use = prune.InUse()
    in_use.add(Reference("git-abc", None), "release a revision 1")
    in_use.add(Reference("gone", None), "release a revision 2")
    in_use.add(Reference(None, d(7)), "release a revision 3")
    in_use.add(Reference("x", d(1)), "release b revision 1")
    digests, missing = in_use.resolve({"git-abc": d(2), "y": d(1)})
    assert digests == {d(1): {"release b revision 1"}, d(2): {"release a revision 1 as tag git-abc"},
                       d(7): {"release a revision 3"}}  # fmt: skip
    assert missing == [f"{d(7)} (release a revision 3)", "tag gone (release a revision 2)"]


# --- prune() at the seams ----------------------------------------------------------------------------


def _helm_secret(
    name: str, namespace: str, version: int, chart: str, chart_version: str, manifest: str
) -> Any:
    body = {
        "name": name,
        "namespace": namespace,
        "version": version,
        "info": {"status": "deployed"},
        "chart": {"metadata": {"name": chart, "version": chart_version}},
        "manifest": manifest,
        "hooks": [],
    }
    helm_text = base64.b64encode(gzip.compress(json.dumps(body).encode()))
    return SimpleNamespace(
        metadata=SimpleNamespace(name=f"sh.helm.release.v1.{name}.v{version}", namespace=namespace),
        data={"release": base64.b64encode(helm_text).decode()},
    )


class FakeCore:
    """helm's release Secrets; `error` refuses the all-namespaces list, `allowed` names the namespaces a
    namespaced identity may list in (None: none at all, the list is refused like the other)."""

    def __init__(
        self, secrets: list[Any], error: Exception | None = None, allowed: set[str] | None = None
    ) -> None:
        self.secrets, self.error, self.allowed, self.selectors = secrets, error, allowed, []
        self.namespaced: list[str] = []

    def list_secret_for_all_namespaces(self, label_selector: str, **_kw: Any) -> Any:
        self.selectors.append(label_selector)
        if self.error:
            raise self.error
        return SimpleNamespace(items=self.secrets)

    def list_namespaced_secret(self, namespace: str, label_selector: str, **_kw: Any) -> Any:
        self.namespaced.append(namespace)
        if self.allowed is None or namespace not in self.allowed:
            raise ApiException(status=403, reason="Forbidden")
        return SimpleNamespace(items=[s for s in self.secrets if s.metadata.namespace == namespace])


@dataclass
class FakeHelmRunner:
    """helm for release node-hello in ns: `revisions` maps revision → (status, chart version, manifest)."""

    revisions: dict[int, tuple[str, str, str]]
    history_error: str | None = None
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str], **_kw: Any) -> Any:
        args = list(argv[1:])
        self.calls.append(args)
        if args[0] == "history":
            if self.history_error:
                raise HelmSaid(self.history_error)
            rows = [
                {"revision": n, "status": s, "chart": f"node-hello-{v}", "app_version": "", "description": ""}
                for n, (s, v, _m) in sorted(self.revisions.items())
            ]
            return SimpleNamespace(stdout=json.dumps(rows), stderr="")
        if args[:2] == ["get", "all"]:
            n = int(args[args.index("--revision") + 1])
            _status, version, manifest = self.revisions[n]
            return SimpleNamespace(stdout=f"chart: node-hello {version}\n{manifest}", stderr="")
        raise AssertionError(f"unexpected helm call {args}")


@dataclass
class FakeRegistry:
    repos: dict[str, dict[str, str]]
    deleted: list[tuple[str, str]] = field(default_factory=list)
    reads: int = 0
    after_first_read: dict[str, dict[str, str]] = field(default_factory=dict)

    def read(self, repository: str, host: str) -> dict[str, str]:
        assert host == "127.0.0.1:5000"
        self.reads += 1
        if self.reads > 2:  # the re-read before deleting
            for tag, digest in self.after_first_read.get(repository, {}).items():
                self.repos[repository][tag] = digest
        return dict(self.repos.get(repository, {}))

    def delete(self, repository: str, host: str, digest: str) -> bool:
        tags = self.repos.get(repository, {})
        if digest not in tags.values():
            return False
        self.deleted.append((repository, digest))
        self.repos[repository] = {t: x for t, x in tags.items() if x != digest}
        return True


def _target(tmp_path: Path) -> Any:
    svc = SimpleNamespace(name="node-hello", directory=tmp_path)
    return SimpleNamespace(service=svc, release="node-hello", namespace="ns", deploy=None)


def _cluster(runner: FakeHelmRunner, core: FakeCore) -> Any:
    return SimpleNamespace(helm=Helm(binary="helm", runner=runner), core=core)


def _manifest(digest: str) -> str:
    containers = f'      containers:\n        - image: "{REPO}@{digest}"\n'
    return "kind: Deployment\nspec:\n  template:\n    spec:\n" + containers


def _world() -> tuple[FakeHelmRunner, FakeCore, FakeRegistry]:
    """Five ships (images d1..d5, charts d11..d15); the release has revisions using d1 (rev 1) and d4
    (rev 2, deployed); another release (a copy in namespace other) runs d2 with chart version 2."""
    images = image_tags((1, "090000"), (2, "091000"), (3, "092000"), (4, "093000"), (5, "094000"))
    charts = {f"0.0.2026112709{m}000-c{m}": d(10 + i) for i, m in enumerate(["0", "1", "2", "3", "4"], 1)}
    runner = FakeHelmRunner(
        {1: ("superseded", "0.0.20261127090000-c0", _manifest(d(1))),
         2: ("deployed", "0.0.20261127093000-c3", _manifest(d(4)))}
    )  # fmt: skip
    other = _helm_secret("node-hello", "other", 7, "node-hello", "0.0.20261127091000-c1", _manifest(d(2)))
    own = _helm_secret("node-hello", "ns", 2, "node-hello", "0.0.20261127093000-c3", _manifest(d(4)))
    reg = FakeRegistry({"staging/node-hello": images, "staging/charts/node-hello": charts})
    return runner, FakeCore([other, own]), reg


def _run(tmp_path: Path, runner: FakeHelmRunner, core: FakeCore, reg: FakeRegistry, **kw: Any) -> Any:
    kw.setdefault("now", at("100000"))  # 20 minutes after the newest push: none is young
    return prune.prune(_target(tmp_path), _cluster(runner, core), read_tags=reg.read, delete=reg.delete, **kw)


def test_prune_deletes_only_what_no_revision_uses(tmp_path: Path) -> None:
    runner, core, reg = _world()
    result = _run(tmp_path, runner, core, reg, keep=1)

    assert reg.deleted == [("staging/node-hello", d(3)), ("staging/charts/node-hello", d(13))]
    assert set(reg.repos["staging/node-hello"].values()) == {d(1), d(2), d(4), d(5)}
    assert set(reg.repos["staging/charts/node-hello"].values()) == {d(11), d(12), d(14), d(15)}
    assert core.selectors == ["owner=helm"]
    assert result.releases_checked == 1
    lines = result.lines()
    assert lines[0] == (
        "release node-hello in ns and 1 other helm release(s) checked; keeping the 1 newest push(es), those "
        "younger than 600s and everything in use"
    )
    assert lines[1] == "image repository 127.0.0.1:5000/staging/node-hello: 5 push(es), keep 4, delete 1"
    assert (
        f"  keep    {d(4)}  [20261127T093000Z-production, git-000000000004]  "
        "in use: release node-hello revision 2 (deployed)"
    ) in lines
    assert (
        f"  keep    {d(2)}  [20261127T091000Z-production, git-000000000002]  "
        "in use: release node-hello in other revision 7 (deployed)"
    ) in lines
    assert f"  delete  {d(3)}  [20261127T092000Z-production, git-000000000003]" in lines
    assert (
        f"  keep    {d(11)}  [0.0.20261127090000-c0]  "
        "in use: release node-hello revision 1 (superseded) as tag 0.0.20261127090000-c0"
    ) in lines
    assert lines[-1] == "deleted 2 manifest(s); blob space is reclaimed by `scripts/stack gc`"


def test_dry_run_deletes_nothing_and_says_what_would_go(tmp_path: Path) -> None:
    runner, core, reg = _world()
    result = _run(tmp_path, runner, core, reg, keep=1, dry_run=True)
    assert reg.deleted == []
    assert result.lines()[-1] == "dry run: nothing deleted (2 manifest(s) would be)"
    assert "would delete 1" in result.lines()[1]


def test_a_digest_tagged_again_while_pruning_is_kept(tmp_path: Path) -> None:
    runner, core, reg = _world()
    reg.after_first_read = {"staging/node-hello": {"20261127T095959Z-production": d(3)}}
    result = _run(tmp_path, runner, core, reg, keep=1)
    assert ("staging/node-hello", d(3)) not in reg.deleted
    assert result.kept_late == [("staging/node-hello", d(3), "20261127T095959Z-production")]
    assert (
        f"kept staging/node-hello@{d(3)}: tag 20261127T095959Z-production was pushed to it while pruning"
        in (result.lines())
    )


def test_a_young_push_is_not_deleted_even_when_unused(tmp_path: Path) -> None:
    runner, core, reg = _world()
    # d3 was pushed at 09:20; at 09:25 with --min-age 600 it may belong to a ship still deploying
    result = _run(tmp_path, runner, core, reg, keep=1, now=at("092500"), min_age=600)
    assert ("staging/node-hello", d(3)) not in reg.deleted
    (kept,) = [x for x in result.plans[0].decisions if x.push.digest == d(3)]
    assert kept.reasons == ("pushed 300s ago, younger than --min-age 600s",)


def test_a_release_that_is_not_there_is_warned_about(tmp_path: Path) -> None:
    runner, core, reg = _world()
    runner.revisions.clear()
    lines = _run(tmp_path, runner, core, reg, keep=1, dry_run=True).lines()
    assert lines[1] == (
        "warning: no release node-hello in namespace ns: only other releases protect anything "
        "(check --namespace/--release)"
    )


def test_a_revision_whose_image_is_gone_is_warned_about(tmp_path: Path) -> None:
    runner, core, reg = _world()
    runner.revisions[1] = ("superseded", "0.0.20261127090000-c0", _manifest(d(8)))
    lines = _run(tmp_path, runner, core, reg, keep=1, dry_run=True).lines()
    assert (
        f"  warning: in use but not in the registry: {d(8)} (release node-hello revision 1 (superseded)): "
        "a rollback to it cannot pull it"
    ) in lines


def test_an_unreachable_api_server_is_refused_before_the_registry_is_touched(tmp_path: Path) -> None:
    runner, _core, reg = _world()
    down = FakeCore([], urllib3.exceptions.MaxRetryError(None, "/api", "Connection refused"))  # type: ignore[arg-type]
    with pytest.raises(EnvironmentMissing) as caught:
        _run(tmp_path, runner, down, reg, keep=1)
    assert caught.value.exit_code == ExitCode.ENVIRONMENT
    assert caught.value.message.startswith(
        "cannot list helm releases in all namespaces, so what is in use is unknown; nothing was deleted: "
        "cannot reach the Kubernetes API"
    )
    assert (reg.reads, reg.deleted) == (0, [])


def test_a_failing_helm_history_is_refused_with_exit_19(tmp_path: Path) -> None:
    runner, core, reg = _world()
    runner.history_error = "Error: Kubernetes cluster unreachable: connection refused"
    with pytest.raises(EnvironmentMissing) as caught:
        _run(tmp_path, runner, core, reg, keep=1)
    assert caught.value.exit_code == ExitCode.ENVIRONMENT
    assert "cannot read the helm history of node-hello in ns" in caught.value.message
    assert "Kubernetes cluster unreachable" in caught.value.message
    assert (reg.reads, reg.deleted) == (0, [])


def test_an_undecodable_helm_secret_is_refused(tmp_path: Path) -> None:
    runner, core, reg = _world()
    bad = SimpleNamespace(metadata=SimpleNamespace(name="sh.helm.release.v1.x.v1", namespace="y"),
                          data={"release": base64.b64encode(b"not helm").decode()})  # fmt: skip
    core.secrets.append(bad)
    with pytest.raises(
        EnvironmentMissing, match="cannot decode helm release Secret y/sh.helm.release.v1.x.v1"
    ):
        _run(tmp_path, runner, core, reg, keep=1)
    assert reg.deleted == []


def test_a_namespaced_identity_prunes_with_the_releases_of_its_namespace(tmp_path: Path) -> None:
    # 403 for all namespaces (a ServiceAccount with a Role): only the environment's namespace is read,
    # so the copy in namespace `other` no longer protects d2, and the output says so
    runner, core, reg = _world()
    core.error, core.allowed = ApiException(status=403, reason="Forbidden"), {"ns"}
    result = _run(tmp_path, runner, core, reg, keep=1)
    # the release's, and the environment rule's where it may (it may not: skipped)
    assert core.namespaced == ["ns", "node-hello"]
    assert result.namespaces == ("ns",)
    assert result.releases_checked == 0
    assert {d(2), d(3)} <= {digest for _repo, digest in reg.deleted}
    lines = result.lines()
    assert lines[0].startswith(
        "release node-hello in ns and 0 other helm release(s) in namespace(s) ns checked;"
    )
    assert lines[1] == (
        "note: this identity may not list helm releases in all namespaces, so only these were read: "
        "a release elsewhere that uses these repositories does not protect its pushes"
    )
    assert result.to_json()["namespaces_checked"] == ["ns"]


def test_a_namespace_the_identity_may_not_read_either_is_refused(tmp_path: Path) -> None:
    runner, core, reg = _world()
    core.error, core.allowed = ApiException(status=403, reason="Forbidden"), set()
    with pytest.raises(EnvironmentMissing) as caught:
        _run(tmp_path, runner, core, reg, keep=1)
    assert caught.value.message.startswith(
        "cannot list helm releases in namespace ns, so what is in use is unknown; nothing was deleted: "
    )
    assert (reg.reads, reg.deleted) == (0, [])


# --- the command -------------------------------------------------------------------------------------


def test_cli_prune_without_a_cluster_exits_19_without_a_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli.main, ["prune", str(NODE_HELLO), "--kubeconfig", str(tmp_path / "absent")], catch_exceptions=False
    )
    assert result.exit_code == ExitCode.ENVIRONMENT
    assert f"error: kubeconfig {tmp_path / 'absent'} does not exist" in result.output
    assert "Traceback" not in result.output


def test_cli_prune_keep_zero_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli.main, ["prune", str(NODE_HELLO), "--keep", "0"])
    assert result.exit_code == ExitCode.USAGE
    assert "Invalid value for '--keep'" in result.output


def test_cli_prune_dry_run_prints_the_plan(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runner, core, reg = _world()
    monkeypatch.setattr(ref_mod, "connect", lambda tgt, **_kw: _cluster(runner, core))
    monkeypatch.setattr("deployer.tools.registry.credentials", lambda: None)
    monkeypatch.setattr(prune, "registry_tags", lambda _creds: reg.read)
    monkeypatch.setattr(prune, "registry_deleter", lambda _creds: reg.delete)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))  # never loaded: connect is replaced
    argv = ["prune", str(NODE_HELLO), "--keep", "1", "--dry-run", "--namespace", "ns", "--min-age", "0"]
    result = CliRunner().invoke(cli.main, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert reg.deleted == []
    assert result.output.splitlines()[0] == "read 2 revision(s) of node-hello in ns and 1 other release(s)"
    assert result.output.splitlines()[-1] == "dry run: nothing deleted (2 manifest(s) would be)"


def test_cli_prune_json_is_one_document_on_stdout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runner, core, reg = _world()
    monkeypatch.setattr(ref_mod, "connect", lambda tgt, **_kw: _cluster(runner, core))
    monkeypatch.setattr("deployer.tools.registry.credentials", lambda: None)
    monkeypatch.setattr(prune, "registry_tags", lambda _creds: reg.read)
    monkeypatch.setattr(prune, "registry_deleter", lambda _creds: reg.delete)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    argv = ["prune", str(NODE_HELLO), "--keep", "1", "--namespace", "ns", "--min-age", "0", "--json"]
    result = CliRunner().invoke(cli.main, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["deleted"] == [f"staging/node-hello@{d(3)}", f"staging/charts/node-hello@{d(13)}"]
    (image_repo, chart_repo) = data["repositories"]
    assert (image_repo["repository"], chart_repo["kind"]) == ("127.0.0.1:5000/staging/node-hello", "chart")
    assert image_repo["pushes"][0] == {
        "digest": d(5),
        "tags": ["20261127T094000Z-production", "git-000000000005"],
        "pushed": "2026-11-27T09:40:00+00:00",
        "action": "keep",
        "reasons": ["newest push #1 of 1 kept"],
    }
    assert [p["action"] for p in image_repo["pushes"]] == ["keep", "keep", "delete", "keep", "keep"]
    assert result.stderr.startswith("read 2 revision(s) of node-hello in ns")
