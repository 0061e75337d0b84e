"""deployer.build: what is decided before docker runs (no engine needed; the rest is integration)."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

from deployer import build as build_mod
from deployer.errors import ConfigError, ExitCode, PushFailed, UncommittedChanges
from deployer.tools import git

NO_ENTRYPOINT = """\
version: v4
base: 127.0.0.1:5000/base/bookworm:12
variants:
  test:
    copies: [local]
  production:
    entrypoint: [./run.sh]
"""


def make_service(root: Path, config: str = NO_ENTRYPOINT) -> Path:
    (root / ".pipeline").mkdir(parents=True)
    (root / ".pipeline" / "blubber.yaml").write_text(config)
    return root


def test_a_test_variant_without_entrypoint_is_refused_before_building(tmp_path):
    svc = make_service(tmp_path / "svc")
    with pytest.raises(ConfigError) as caught:
        build_mod.test(svc)  # the autouse guard fails this test if docker were called
    err = caught.value
    assert err.exit_code == ExitCode.CONFIG
    assert err.message == "the test variant has no entrypoint, so there is nothing to run"
    assert err.path == "variants.test.entrypoint"
    assert err.file == str(svc.resolve() / ".pipeline" / "blubber.yaml")


def test_unknown_variant_is_a_config_error(tmp_path):
    svc = make_service(tmp_path / "svc")
    with pytest.raises(ConfigError):
        build_mod.test(svc, variant="nope")


def test_missing_service_directory(tmp_path):
    with pytest.raises(ConfigError, match="service directory not found"):
        build_mod.build(tmp_path / "absent")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_push_with_ci_refuses_a_dirty_tree_before_building(tmp_path):
    svc = make_service(tmp_path / "svc")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "add", ".")
    _git(tmp_path, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-q", "-m", "init")
    (svc / "app.js").write_text("changed\n")
    with pytest.raises(UncommittedChanges) as caught:
        build_mod.push_service(svc, ci=True)
    # one rule with one exit code for ship and push (deployer.committed)
    assert caught.value.exit_code == ExitCode.POLICY
    assert caught.value.message == "refusing to push uncommitted changes in CI mode: svc/app.js"


def test_push_with_ci_refuses_a_directory_outside_git(tmp_path):
    svc = make_service(tmp_path / "svc")
    with pytest.raises(PushFailed, match="not in a git work tree"):
        build_mod.push_service(svc, ci=True)


NOW = dt.datetime(2026, 11, 27, 6, 35, 13, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("source", "tags"),
    [
        (git.Source(sha=None), ("20261127T063513Z-production",)),
        (git.Source(sha="a" * 40), ("20261127T063513Z-production", "git-aaaaaaaaaaaa")),
        (
            git.Source(sha="a" * 40, dirty_files=("x",)),
            ("20261127T063513Z-production", "git-aaaaaaaaaaaa-dirty"),
        ),
    ],
)
def test_push_tags(source, tags):
    assert build_mod.push_tags("production", source, NOW) == tags


def test_push_tags_are_utc_whatever_the_callers_zone():
    local = NOW.astimezone(dt.timezone(dt.timedelta(hours=-5)))
    assert build_mod.push_tags("production", git.Source(sha=None), local) == ("20261127T063513Z-production",)


def test_cli_missing_service_exits_10_with_the_examples(tmp_path):
    from click.testing import CliRunner

    from deployer.cli import main

    result = CliRunner().invoke(main, ["build", str(tmp_path / "absent")])
    assert result.exit_code == ExitCode.CONFIG
    assert result.output.startswith(f"error: service directory not found: {tmp_path / 'absent'}\n")
    assert "node-hello" in result.output


def test_cli_test_without_entrypoint_exits_10(tmp_path):
    from click.testing import CliRunner

    from deployer.cli import main

    svc = make_service(tmp_path / "svc")
    result = CliRunner().invoke(main, ["test", str(svc)])
    assert result.exit_code == ExitCode.CONFIG
    assert "variants.test.entrypoint: the test variant has no entrypoint" in result.output


# --- one engine check and one registry login per session (a ship) --------------------------------------


class Boundary:
    """Fakes of the docker and registry calls build/push make (the process and network boundary)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from deployer.tools import docker, registry

        self.calls: list[str] = []
        self.login_fails = False
        creds = registry.Credentials("ci", "pw", "test")

        def login(host: str) -> registry.Credentials:
            self.calls.append(f"login {host}")
            if self.login_fails:
                raise registry.RegistryAuthFailed("refused")
            return creds

        def push(ref: str, stream=None, timeout=None) -> docker.PushResult:
            self.calls.append(f"push {ref}")
            return docker.PushResult(ref, "sha256:" + "d" * 64, 1, 2)

        info = docker.Image("sha256:" + "i" * 64, 1000, ("l1",), (), (), "", (), "", ())
        monkeypatch.setattr(docker, "ping", lambda: self.calls.append("ping") or "27.0")
        monkeypatch.setattr(registry, "login", login)
        monkeypatch.setattr(docker, "build", lambda *a, **kw: self.calls.append("build") or info.id)
        monkeypatch.setattr(docker, "image", lambda ref: info)
        monkeypatch.setattr(docker, "tag", lambda src, ref: self.calls.append("tag"))
        monkeypatch.setattr(docker, "untag", lambda refs: self.calls.append("untag"))
        monkeypatch.setattr(docker, "push", push)
        monkeypatch.setattr(registry, "digest", lambda *a, **kw: "sha256:" + "d" * 64)

    def count(self, prefix: str) -> int:
        return sum(1 for c in self.calls if c.startswith(prefix))


PROD = NO_ENTRYPOINT.replace("copies: [local]", "copies: [local]\n    entrypoint: [./t.sh]")


def test_a_session_checks_the_engine_and_logs_in_once_for_builds_and_pushes(tmp_path, monkeypatch):
    fake = Boundary(monkeypatch)
    svc = make_service(tmp_path / "svc", PROD)
    session = build_mod.Session()
    build_mod.build(svc, None, "test", session=session)
    built = build_mod.build(svc, None, "production", session=session)
    pushed = build_mod.push(built, session=session)
    assert pushed.digest == "sha256:" + "d" * 64
    assert fake.count("ping") == 1
    assert fake.calls.count("login 127.0.0.1:5000") == 1
    assert fake.count("build") == 2
    # every tag, then the variant's build cache (after the image itself: see test_buildcache.py)
    assert fake.count("push") == len(built.tags) + len(built.cache_images) == len(built.tags) + 1


def test_a_build_tagged_for_its_push_is_pushed_without_docker_tag_and_its_tags_can_stay(
    tmp_path, monkeypatch
):
    """`deployer ship` tags at build time and removes the push tags off its critical path."""
    from deployer.tools import docker

    fake = Boundary(monkeypatch)
    tagged: list[list[str]] = []
    monkeypatch.setattr(
        docker, "build", lambda *a, tags=(), **kw: tagged.append(list(tags)) or "sha256:" + "i" * 64
    )
    svc = make_service(tmp_path / "svc", PROD)
    built = build_mod.build(svc, None, "production", push_tagged=True, cache=False)
    assert tagged == [["deployer/svc:production", *built.references]] and built.push_tagged
    build_mod.push(built, untag=False)
    assert fake.count("tag") == 0 and fake.count("untag") == 0
    assert fake.count("push") == len(built.references)


def test_a_failed_push_removes_its_local_push_tags_even_when_asked_to_leave_them(tmp_path, monkeypatch):
    from deployer.tools import docker
    from deployer.tools.command import ToolFailed

    fake = Boundary(monkeypatch)

    def refused(ref, stream=None, timeout=None):
        raise ToolFailed("docker", ["docker", "push", ref], 1, "denied: requested access")

    monkeypatch.setattr(docker, "push", refused)
    svc = make_service(tmp_path / "svc", PROD)
    built = build_mod.build(svc, None, "production", push_tagged=True, cache=False)
    with pytest.raises(PushFailed):
        build_mod.push(built, untag=False)
    assert fake.calls[-1] == "untag"


def test_without_a_session_each_build_and_push_checks_and_logs_in_itself(tmp_path, monkeypatch):
    fake = Boundary(monkeypatch)
    svc = make_service(tmp_path / "svc", PROD)
    build_mod.build(svc, None, "test")
    built = build_mod.build(svc, None, "production")
    build_mod.push(built)
    assert fake.count("ping") == 2  # push never checked the engine itself, and still does not
    assert fake.count("login") == 3
    assert fake.calls[:2] == ["ping", "login 127.0.0.1:5000"]  # before the build, as base images need it


def test_a_session_logs_in_to_each_registry_and_retries_a_failed_login(monkeypatch):
    from deployer.tools import registry

    fake = Boundary(monkeypatch)
    session = build_mod.Session()
    fake.login_fails = True
    with pytest.raises(registry.RegistryAuthFailed):
        session.login("127.0.0.1:5000")
    fake.login_fails = False
    session.login("127.0.0.1:5000")
    session.login("127.0.0.1:5000")
    session.login("127.0.0.1:5001")
    assert fake.calls == ["login 127.0.0.1:5000", "login 127.0.0.1:5000", "login 127.0.0.1:5001"]


def test_a_started_session_checks_and_logs_in_in_the_background_once(monkeypatch):
    fake = Boundary(monkeypatch)
    session = build_mod.Session()
    session.start("127.0.0.1:5000")
    session.ping()  # waits for the background work instead of doing it again
    session.login("127.0.0.1:5000")
    assert fake.calls == ["ping", "login 127.0.0.1:5000"]


def test_a_background_login_failure_is_raised_where_the_login_is_needed(monkeypatch):
    from deployer.tools import registry

    fake = Boundary(monkeypatch)
    fake.login_fails = True
    session = build_mod.Session()
    session.start("127.0.0.1:5000")
    with pytest.raises(registry.RegistryAuthFailed):
        session.ping()  # the first use takes the background's error, unchanged
    assert fake.calls == ["ping", "login 127.0.0.1:5000"]


def test_the_test_image_is_not_inspected_but_the_production_image_is(tmp_path, monkeypatch):
    from deployer.tools import docker

    fake = Boundary(monkeypatch)
    info = docker.Image("sha256:" + "i" * 64, 1000, ("l1",), (), (), "", (), "", ())
    monkeypatch.setattr(docker, "image", lambda ref: fake.calls.append("inspect") or info)
    ran = docker.ContainerRun("c", 0, ["ok"])
    monkeypatch.setattr(docker, "run_container", lambda *a, **kw: fake.calls.append("run") or ran)
    svc = make_service(tmp_path / "svc", PROD)
    assert build_mod.test(svc, None, "test", session=build_mod.Session()).exit_code == 0
    assert fake.calls == ["ping", "login 127.0.0.1:5000", "build", "run"]  # run, never reported
    built = build_mod.build(svc, None, "production", session=build_mod.Session())
    assert fake.calls[-2:] == ["build", "inspect"]
    assert (built.size, built.layers) == (1000, 1)


def test_a_deadline_shortens_a_tools_timeout_but_never_lengthens_it(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(build_mod.time, "monotonic", lambda: clock[0])
    assert build_mod._within(1800, None) == 1800
    assert build_mod._within(1800, 1060.0) == 60
    assert build_mod._within(30, 1060.0) == 30
    assert build_mod._within(None, 1060.0) == 60
    assert build_mod._within(1800, 990.0) == 0.001  # past: the tool times out at once


# --- a registry that stops answering during the push -------------------------------------------------


def _refusing_push(monkeypatch: pytest.MonkeyPatch, fake: Boundary, refusals: int) -> None:
    from deployer.tools import docker
    from deployer.tools.command import ToolFailed

    left = {"n": refusals}

    def push(ref: str, stream=None, timeout=None) -> docker.PushResult:
        fake.calls.append(f"push {ref}")
        if left["n"] > 0:
            left["n"] -= 1
            said = "Get http://127.0.0.1:5000/v2/: dial tcp 127.0.0.1:5000: connect: connection refused"
            raise ToolFailed("docker", ["docker", "push", ref], 1, said)
        return docker.PushResult(ref, "sha256:" + "d" * 64, 1, 2)

    monkeypatch.setattr(docker, "push", push)


def test_a_push_shows_each_retry_while_the_registry_is_gone_and_succeeds_when_it_is_back(
    tmp_path, monkeypatch
):
    from deployer.tools import registry

    fake = Boundary(monkeypatch)
    monkeypatch.setattr(registry, "PUSH_RETRY", registry.Retry(attempts=4, first_delay=0.01, max_delay=0.02))
    _refusing_push(monkeypatch, fake, refusals=2)
    built = build_mod.build(make_service(tmp_path / "svc", PROD), None, "production")
    lines: list[str] = []
    pushed = build_mod.push(built, progress=lines.append)
    assert pushed.digest == "sha256:" + "d" * 64
    retries = [line for line in lines if "next try in" in line]
    assert retries == [
        "push to 127.0.0.1:5000: the registry does not answer (Get http://127.0.0.1:5000/v2/: dial tcp "
        f"127.0.0.1:5000: connect: connection refused); attempt {n}/4 failed, next try in {wait} s"
        for n, wait in ((1, "0.01"), (2, "0.02"))
    ]


def test_a_registry_gone_past_the_retry_bound_fails_the_push_with_exit_14(tmp_path, monkeypatch):
    from deployer.tools import registry

    fake = Boundary(monkeypatch)
    monkeypatch.setattr(registry, "PUSH_RETRY", registry.Retry(attempts=3, first_delay=0.01, max_delay=0.02))
    _refusing_push(monkeypatch, fake, refusals=99)
    built = build_mod.build(make_service(tmp_path / "svc", PROD), None, "production")
    lines: list[str] = []
    with pytest.raises(PushFailed) as caught:
        build_mod.push(built, progress=lines.append)
    assert caught.value.exit_code == ExitCode.PUSH == 14
    assert caught.value.message.startswith(
        "push to 127.0.0.1:5000 failed: the registry did not answer in 3 attempts over 0.03 s of retries"
    )
    assert caught.value.message.endswith("; nothing was deployed")
    assert fake.count("push") == 3
    assert len([line for line in lines if "next try in" in line]) == 2
