"""deployer build | test | push against the real Docker engine and registry (scripts/stack up).

Every fault the issue lists has a test here: wrong registry credentials, a registry that does not
answer, a failing build, a failing test variant, Docker not running, Ctrl-C during a test run. Each
checks what the user sees (message, exit code) and that nothing is left running or tagged.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from deployer import build as build_mod
from deployer.errors import BuildFailed, EnvironmentMissing, ExitCode, TestVariantFailed
from deployer.target import builtin_registry
from deployer.tools import docker, registry
from tests.integration.conftest import DOCKER, containers

LOCAL_REGISTRY = builtin_registry().host

pytestmark = [pytest.mark.docker, pytest.mark.registry]

# The installed console script, next to the interpreter running the tests (the venv's bin/).
DEPLOYER = [str(Path(sys.executable).parent / "deployer")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_CONFIG": str(docker.DOCKER_CONFIG)}
    env.pop("DOCKER_HOST", None)
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, check=check, env=env)


def deployer(
    *args: str, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*DEPLOYER, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=Path(__file__).parents[2],
    )


def get(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as response:
        return response.status, response.read().decode()


# --- build and run what we built ----------------------------------------------------------------------


@pytest.mark.parametrize("example", ["node-hello", "python-hello"])
def test_production_image_serves_on_port_from_env(stack, example):
    built = build_mod.build(example, None, "production")
    info = docker.image(built.image_id)
    assert built.size == info.size > 0
    assert info.user == "900"
    assert info.workdir == "/srv/app"
    port = free_port()
    name = f"deployer-itest-serve-{uuid.uuid4().hex[:8]}"
    docker_cli("run", "-d", "--name", name, "--network", "host", "-e", f"PORT={port}", built.image_id)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = get(f"http://127.0.0.1:{port}/")
                break
            except OSError:
                if time.monotonic() > deadline:
                    logs = docker_cli("logs", name, check=False)
                    pytest.fail(f"{example} never answered on port {port}: {logs.stdout}{logs.stderr}")
                time.sleep(0.3)
        assert (status, body) == (200, f"hello from {example}\n")
        status, body = get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200
        assert json.loads(body) == {"status": "ok"}
    finally:
        docker_cli("rm", "--force", name, check=False)


def test_source_only_change_reuses_the_dependency_layer(stack, service_copy):
    svc = service_copy("node-hello")
    first = build_mod.build(svc, None, "test")
    (svc / "app.js").write_text((svc / "app.js").read_text() + "\n// a source-only change\n")
    lines: list[str] = []
    second = build_mod.build(svc, None, "test", progress=lines.append)
    assert second.image_id != first.image_id
    npm_ci = [line for line in lines if "RUN npm ci" in line]
    assert npm_ci, lines
    vertex = npm_ci[0].split(" ", 1)[0]  # "#9"
    assert f"{vertex} CACHED" in lines, "the npm ci layer was rebuilt after a source-only change"


# --- test variant -----------------------------------------------------------------------------------


def test_test_variant_passes_with_streamed_output(stack, service_copy):
    svc = service_copy("node-hello")
    lines: list[str] = []
    result = build_mod.test(svc, progress=lines.append)
    assert result.exit_code == 0
    assert "ℹ pass 3" in lines
    assert "ℹ fail 0" in result.tail
    assert not containers(f"deployer-test-{svc.name}-")


def test_failing_test_variant_shows_tail_status_and_repro(stack, service_copy):
    svc = service_copy("node-hello")
    app = svc / "app.js"
    app.write_text(app.read_text().replace("hello from node-hello", "hello from somewhere else"))
    with pytest.raises(TestVariantFailed) as caught:
        build_mod.test(svc)
    err = caught.value
    assert err.exit_code == ExitCode.TEST_FAILED
    assert err.exit_status == 1
    assert "`npm test` exited with status 1" in err.message
    assert "✖ GET / says hello" in " ".join(err.evidence)
    assert err.hint == f"reproduce locally: {DOCKER} run --rm --network host deployer/{svc.name}:test"
    assert err.details["tests"]["passed"] is False
    assert not containers(f"deployer-test-{svc.name}-")
    # The repro command really reproduces it.
    repro = docker_cli("run", "--rm", "--network", "host", f"deployer/{svc.name}:test", check=False)
    assert repro.returncode == 1
    assert "✖ GET / says hello" in repro.stdout


def test_cli_test_failure_exit_code_and_summary(stack, service_copy):
    svc = service_copy("python-hello")
    (svc / "app.py").write_text((svc / "app.py").read_text().replace("hello from python-hello", "bye"))
    result = deployer("test", str(svc))
    assert result.returncode == ExitCode.TEST_FAILED, result.stderr
    assert "the test variant of" in result.stderr
    assert "exited with status 1" in result.stderr
    assert "hint: reproduce locally:" in result.stderr
    assert "1 failed, 2 passed" in result.stderr
    assert not containers(f"deployer-test-{svc.name}-")


def test_ctrl_c_during_a_test_run_removes_the_container(stack, service_copy):
    svc = service_copy("node-hello")
    (svc / "test" / "slow.test.js").write_text(
        "const test = require('node:test');\n"
        "test('waits', () => new Promise((resolve) => setTimeout(resolve, 300000)));\n"
    )
    process = subprocess.Popen(
        [*DEPLOYER, "test", str(svc)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 300
        while not containers(f"deployer-test-{svc.name}-"):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the test container never started"
            time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == ExitCode.INTERRUPTED, stderr
    assert "interrupted" in stderr
    assert not containers(f"deployer-test-{svc.name}-")


def test_ctrl_c_during_a_build_stops_it(stack, tmp_path):
    svc = tmp_path / "slow-build"
    (svc / ".pipeline").mkdir(parents=True)
    token = uuid.uuid4().hex  # a fresh step, never cached
    (svc / ".pipeline" / "blubber.yaml").write_text(
        "version: v4\n"
        "base: 127.0.0.1:5000/base/bookworm:12\n"
        "variants:\n"
        "  test:\n"
        "    builder:\n"
        f'      command: [sh, -c, "echo started {token}; sleep 300"]\n'
        '    entrypoint: ["true"]\n'
    )
    process = subprocess.Popen(
        [*DEPLOYER, "build", str(svc), "--variant", "test"], stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:  # the build output streams to stderr, line by line
            if f"started {token}" in line and "echo" not in line:
                break
        else:
            pytest.fail("the build never reached its slow step")
        process.send_signal(signal.SIGINT)
        rest = process.stderr.read()
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == ExitCode.INTERRUPTED, rest
    assert rest.rstrip().endswith("interrupted")
    # BuildKit cancels the solve when its client goes: the RUN step's shell does not keep running.
    assert not processes_with(token), "the build step kept running after Ctrl-C"


def processes_with(text: str, wait: float = 30) -> list[str]:
    """Command lines containing `text`, once they have had `wait` seconds to go away."""
    deadline = time.monotonic() + wait
    while True:
        out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
        found = [line for line in out.splitlines() if text in line and "ps -eo" not in line]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


# --- faults -------------------------------------------------------------------------------------------


def test_failing_build_names_the_instruction_and_shows_its_output(stack, tmp_path):
    svc = tmp_path / "broken"
    (svc / ".pipeline").mkdir(parents=True)
    (svc / ".pipeline" / "blubber.yaml").write_text(
        "version: v4\n"
        "base: 127.0.0.1:5000/base/bookworm:12\n"
        "variants:\n"
        "  test:\n"
        "    builder:\n"
        '      command: [sh, -c, "echo compiling the thing; echo it broke >&2; exit 7"]\n'
        '    entrypoint: ["true"]\n'
    )
    with pytest.raises(BuildFailed) as caught:
        build_mod.build(svc, None, "test")
    err = caught.value
    assert err.exit_code == ExitCode.BUILD
    first = err.message.splitlines()[0]
    assert first == (
        'docker build failed at [5/5] RUN sh "-c" "echo compiling the thing; echo it broke >&2; exit 7": '
        "exit code: 7"
    )
    # stdout and stderr of the step interleave in whatever order BuildKit read them.
    assert sorted(err.evidence) == ["compiling the thing", "it broke"]
    assert err.next_command == f"deployer build {svc} --variant test"


def test_docker_not_running_says_how_to_start_it(stack, tmp_path):
    dead = f"unix://{tmp_path}/no-engine.sock"
    result = deployer("build", "node-hello", env={"DOCKER_HOST": dead})
    assert result.returncode == ExitCode.ENVIRONMENT, result.stderr
    assert result.stderr.startswith(
        f"error: the Docker engine is not running (no answer on {dead}): Cannot connect"
    )
    assert "hint: start the build stack with `scripts/stack up`" in result.stderr


def test_wrong_registry_credentials(stack):
    env = {"DEPLOYER_REGISTRY_USER": "deployer", "DEPLOYER_REGISTRY_PASSWORD": "definitely-wrong-pw"}
    result = deployer("build", "node-hello", "-q", env=env)
    assert result.returncode == ExitCode.ENVIRONMENT, result.stderr
    assert "rejected the credentials for user 'deployer'" in result.stderr
    assert "definitely-wrong-pw" not in result.stderr + result.stdout


def test_registry_down_is_retried_then_reported(stack):
    dead = f"127.0.0.1:{free_port()}"
    retry = registry.Retry(attempts=3, first_delay=0.2)
    with pytest.raises(EnvironmentMissing) as caught:
        registry.ping(dead, retry=retry)
    assert caught.value.message.startswith(
        f"the registry at {dead} does not answer after 3 attempts over 0.6 s"
    )
    assert caught.value.hint == "start the registry with `scripts/stack up`"
    assert retry.delays() == [0.2, 0.4]


def test_cli_registry_down_exits_19_after_bounded_retries(stack):
    dead = f"127.0.0.1:{free_port()}"
    result = deployer("push", "python-hello", "-q", env={"DEPLOYER_REGISTRY": dead})
    assert result.returncode == ExitCode.ENVIRONMENT, result.stderr
    expected = f"error: the registry at {dead} does not answer after 5 attempts over 7.5 s"
    assert result.stderr.startswith(expected)
    assert "hint: start the registry with `scripts/stack up`" in result.stderr


def test_push_to_a_registry_that_is_down_leaves_nothing_tagged(stack):
    built = build_mod.build("python-hello", None, "production")
    dead = f"127.0.0.1:{free_port()}"
    moved = dataclasses.replace(built, repository=f"{dead}/staging/python-hello")
    with pytest.raises(EnvironmentMissing, match=f"the registry at {dead} does not answer"):
        build_mod.push(moved)
    tags = docker_cli("image", "ls", "--format", "{{.Repository}}", f"{dead}/staging/python-hello").stdout
    assert tags.strip() == ""


# --- push ---------------------------------------------------------------------------------------------


def git_commit_all(directory: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", *args],
            cwd=directory,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "service")
    return git("rev-parse", "HEAD").strip()


def test_push_records_the_digest_and_a_second_push_uploads_nothing(stack, service_copy):
    svc = service_copy("python-hello")
    sha = git_commit_all(svc)
    namespace = f"itest{uuid.uuid4().hex[:6]}"
    first = build_mod.push_service(svc, ci=True, namespace=namespace)
    creds = registry.credentials()
    try:
        assert first.repository == f"{LOCAL_REGISTRY}/{namespace}/{svc.name}"
        assert first.tags[0].endswith("-production")
        assert first.tags[1] == f"git-{sha[:12]}"
        for tag in first.tags:
            assert (
                registry.digest(f"{namespace}/{svc.name}", tag, registry=LOCAL_REGISTRY, creds=creds)
                == first.digest
            )
        assert first.reference == f"{first.repository}@{first.digest}"

        again = build_mod.push(first.image)
        assert again.digest == first.digest
        assert again.pushed_layers == 0
        # No registry-named tags are left in the engine after pushing.
        leftover = docker_cli("image", "ls", "--format", "{{.Tag}}", first.repository).stdout.split()
        assert leftover == []
    finally:
        registry.delete_manifest(
            f"{namespace}/{svc.name}", first.digest, registry=LOCAL_REGISTRY, creds=creds
        )
    assert (
        registry.digest(f"{namespace}/{svc.name}", first.tags[0], registry=LOCAL_REGISTRY, creds=creds)
        is None
    )


def test_cli_push_prints_tags_and_digest(stack, service_copy):
    svc = service_copy("node-hello")
    sha = git_commit_all(svc)
    namespace = f"itest{uuid.uuid4().hex[:6]}"
    result = deployer("push", str(svc), "--ci", "--namespace", namespace, "-q")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    digest = lines["digest"]
    creds = registry.credentials()
    try:
        assert lines["pushed 127.0.0.1:5000/" + f"{namespace}/{svc.name}"].endswith(f"git-{sha[:12]}")
        assert lines["image"] == f"{LOCAL_REGISTRY}/{namespace}/{svc.name}@{digest}"
        assert (
            registry.digest(
                f"{namespace}/{svc.name}", f"git-{sha[:12]}", registry=LOCAL_REGISTRY, creds=creds
            )
            == digest
        )
    finally:
        registry.delete_manifest(f"{namespace}/{svc.name}", digest, registry=LOCAL_REGISTRY, creds=creds)


def test_cli_push_in_ci_refuses_uncommitted_changes(stack, service_copy):
    svc = service_copy("node-hello")
    git_commit_all(svc)
    (svc / "app.js").write_text("// uncommitted\n")
    result = deployer("push", str(svc), env={"CI": "true"})
    assert result.returncode == ExitCode.POLICY, result.stderr
    assert "refusing to push uncommitted changes in CI mode: app.js" in result.stderr
