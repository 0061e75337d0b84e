"""The `deployer` CLI edge: help, every exit-code path, CI mode, reports, and no secret in any output."""

from __future__ import annotations

import base64
import json

import jsonschema
import pytest
from click.testing import CliRunner
from junitparser import JUnitXml

from deployer import cli, errors
from deployer import doctor as doctor_mod
from deployer import ship as ship_mod
from deployer.errors import ExitCode
from deployer.reporting import redact
from deployer.reporting.report import report_schema
from deployer.workflow import Step
from tests.deployer import shipfakes


def _invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli.main, list(args), env=env or {}, catch_exceptions=False)


def test_help_documents_every_exit_code():
    result = _invoke("--help")
    assert result.exit_code == 0
    assert set(cli.EXIT_CODE_HELP) == set(ExitCode)
    for code, text in cli.EXIT_CODE_HELP.items():
        assert f"{int(code):>3}  {text}" in result.output
    for command in ("ship", "doctor"):
        assert command in result.output


def test_usage_error_is_exit_2():
    result = _invoke("ship")
    assert result.exit_code == 2
    assert "Missing argument 'SERVICE'" in result.output


@pytest.fixture
def fake_ship(monkeypatch):
    """Replace the ship's steps (the seam) with fakes; returns a setter for the failure kind."""
    chosen = {"kind": None}

    def build_steps():
        return shipfakes.steps(chosen["kind"])

    monkeypatch.setattr(ship_mod, "build_steps", build_steps)
    return chosen


EXPECTED_EXIT = {
    None: 0,
    "config": 10,
    "policy": 11,
    "test_failed": 12,
    "build": 13,
    "push": 14,
    "deploy": 15,
    "rollout": 16,
    "smoke": 17,
    "timeout": 18,
    "environment": 19,
    "interrupted": 130,
    "internal": 1,
}


@pytest.mark.parametrize("kind", list(EXPECTED_EXIT))
def test_ship_exit_code_for_each_outcome_with_valid_reports(kind, fake_ship, tmp_path):
    fake_ship["kind"] = kind
    report, junit = tmp_path / "r" / "report.json", tmp_path / "junit.xml"
    result = _invoke("ship", "examples/node-hello", "--ci", "--report", str(report), "--junit", str(junit))

    assert result.exit_code == EXPECTED_EXIT[kind], result.output
    data = json.loads(report.read_text())
    jsonschema.Draft202012Validator(report_schema()).validate(data)
    assert data["outcome"]["exit_code"] == EXPECTED_EXIT[kind]
    suites = {s.name: s for s in JUnitXml.fromfile(str(junit))}
    assert set(suites) == {"node-hello.test-variant", "node-hello.smoke", "node-hello.ship"}
    if kind is None:
        assert "ship succeeded in" in result.output
    else:
        assert f"(exit {EXPECTED_EXIT[kind]}:" in result.output
        assert "  next: " in result.output  # every failure names the next command to run


def test_failed_stage_gets_a_default_next_command(fake_ship, tmp_path):
    fake_ship["kind"] = "deploy"
    report = tmp_path / "report.json"
    result = _invoke("ship", "examples/node-hello", "--ci", "--report", str(report))
    assert result.exit_code == 15
    assert "  next: deployer status examples/node-hello" in result.output
    assert json.loads(report.read_text())["outcome"]["next_command"] == "deployer status examples/node-hello"


def test_environment_failure_points_at_doctor(fake_ship):
    fake_ship["kind"] = "environment"
    result = _invoke("ship", "examples/node-hello", "--ci")
    assert result.exit_code == 19
    assert "  next: deployer doctor" in result.output
    assert "  hint: start it with: scripts/stack up" in result.output


def test_interrupted_deploy_says_what_state_the_release_is_in(fake_ship):
    fake_ship["kind"] = "interrupted"
    result = _invoke("ship", "examples/node-hello", "--ci")
    assert result.exit_code == 130
    assert "ship INTERRUPTED at stage 'watch' (exit 130: interrupted)" in result.output
    assert "may be left mid-upgrade" in result.output


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--ci", "ship", "x"], {}), (["ship", "x", "--ci"], {}), (["ship", "x"], {"CI": "true"})],
)
def test_ci_mode_is_plain_one_line_per_state_change(args, env, fake_ship):
    seen = {}
    real_run = ship_mod.run

    def spy(config, **kw):
        seen["config"] = config
        return real_run(config, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ship_mod, "run", spy)
        result = _invoke(*args, env=env)
    assert result.exit_code == 0
    assert seen["config"].ci and seen["config"].strict_ci and not seen["config"].color
    assert "\x1b[" not in result.output
    assert "[    " in result.output.splitlines()[0]  # elapsed-time prefix on every progress line


def test_no_tty_alone_is_plain_but_not_strict(fake_ship, monkeypatch):
    seen = {}
    real_run = ship_mod.run

    def spy(config, **kw):
        seen["config"] = config
        return real_run(config, **kw)

    monkeypatch.setattr(ship_mod, "run", spy)
    result = _invoke("ship", "x", env={"CI": ""})
    assert result.exit_code == 0
    assert seen["config"].ci is True  # CliRunner's stdout is not a terminal
    assert seen["config"].strict_ci is False  # a pipe is not CI: a dirty tree is allowed


# --- the edge for errors outside a workflow -----------------------------------------------------------


def test_user_error_is_message_and_hint_on_stderr_without_traceback(monkeypatch):
    def boom(config, probes=None, echo=None):
        raise errors.ConfigError("bad key 'x'", file="deploy.yaml", line=3, path="smoke", hint="remove it")

    monkeypatch.setattr(doctor_mod, "run", boom)
    result = CliRunner().invoke(cli.main, ["doctor"])
    assert result.exit_code == ExitCode.CONFIG
    assert result.stderr == "error: deploy.yaml:3: smoke: bad key 'x'\n  hint: remove it\n"
    assert "Traceback" not in result.output


def test_ctrl_c_outside_a_workflow_is_130(monkeypatch):
    def interrupted(config, probes=None, echo=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(doctor_mod, "run", interrupted)
    result = CliRunner().invoke(cli.main, ["doctor"])
    assert result.exit_code == 130
    assert result.stderr == "interrupted\n"


def test_internal_error_prints_traceback_and_asks_for_a_report(monkeypatch):
    def bug(config, probes=None, echo=None):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(doctor_mod, "run", bug)
    result = CliRunner().invoke(cli.main, ["doctor"])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "ZeroDivisionError: division by zero" in result.stderr
    assert result.stderr.endswith("internal error, please report this with the traceback above\n")


def test_doctor_exit_code_is_passed_through(monkeypatch):
    monkeypatch.setattr(doctor_mod, "run", lambda config, probes=None, echo=None: int(ExitCode.ENVIRONMENT))
    assert CliRunner().invoke(cli.main, ["doctor"]).exit_code == 19


def test_commands_added_by_other_parts_get_the_same_edge():
    group = cli.DeployerGroup("g")

    @group.command()
    def push():
        raise errors.PushFailed("denied", hint="deployer doctor")

    result = CliRunner().invoke(group, ["push"])
    assert result.exit_code == ExitCode.PUSH
    assert result.stderr == "error: denied\n  hint: deployer doctor\n"


# --- secrets ------------------------------------------------------------------------------------------

USER, PASSWORD = "deployer", "pw-9f8e7d6c5b4a"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def _leaky_steps():
    """A ship-like run whose steps leak the registry password everywhere they can."""

    def login(ctx):
        redact.register(PASSWORD, user=USER)  # what tools.registry does when it reads the credentials
        ctx.progress(f"docker login 127.0.0.1:5000 -u {USER} -p {PASSWORD}")
        return {"summary": f"logged in with {PASSWORD}", "auth": TOKEN}

    def push(ctx):
        err = errors.PushFailed(f"push: http://{USER}:{PASSWORD}@127.0.0.1:5000 said no", hint=PASSWORD)
        err.evidence = [f"Authorization: Basic {TOKEN}", PASSWORD, f"token {TOKEN}"]
        err.details = {"argv": ["docker", "login", "-p", PASSWORD]}
        raise err

    return [Step("compile", login), Step("test", shipfakes.HEALTHY["test"]), Step("push", push)]


def _leaky_internal_steps():
    def login(ctx):
        redact.register(PASSWORD, user=USER)
        secret = PASSWORD  # noqa: F841 - a local in the traceback's frame
        raise RuntimeError(f"cannot parse credentials {PASSWORD}")

    return [Step("compile", login)]


@pytest.mark.parametrize("steps", [_leaky_steps, _leaky_internal_steps])
def test_no_secret_reaches_output_or_reports(steps, monkeypatch, tmp_path):
    monkeypatch.setattr(ship_mod, "build_steps", steps)
    report, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    result = CliRunner().invoke(
        cli.main, ["ship", "x", "--ci", "--report", str(report), "--junit", str(junit)], env={}
    )
    assert result.exit_code in (14, 1)
    everything = {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "report": report.read_text(),
        "junit": junit.read_text(),
    }
    for where, text in everything.items():
        assert PASSWORD not in text, where
        assert TOKEN not in text, where
    assert redact.MASK in everything["stdout"]
    assert redact.MASK in everything["report"]


@pytest.mark.docker
@pytest.mark.registry
@pytest.mark.cluster
@pytest.mark.slow
def test_real_ship_never_prints_the_registry_password(tmp_path):
    """A real `deployer ship --ci` of the Node example: the registry password (and its base64 form in
    Basic auth and docker's config.json) appears in no output line, the JSON report or the JUnit file."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from deployer.tools.helm import HELM_BIN, Helm
    from deployer.tools.kube import DEFAULT_KUBECONFIG
    from tests.conftest import require

    creds = doctor_mod.CREDENTIALS
    require("docker", os.path.exists("/var/run/docker.sock"), "scripts/stack up")
    require("registry credentials", creds.exists(), "scripts/stack up")
    require("helm", os.path.exists(HELM_BIN), "e2e/tools.sh")
    require("cluster", os.path.exists(DEFAULT_KUBECONFIG), "e2e/cluster up")
    values = dict(line.split("=", 1) for line in creds.read_text().splitlines() if "=" in line)
    user, password = values["REGISTRY_USER"].strip(), values["REGISTRY_PASSWORD"].strip()
    secrets = {password, base64.b64encode(f"{user}:{password}".encode()).decode()}

    # A clean git work tree (CI mode refuses a dirty one) with the example service.
    repo = tmp_path / "repo"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "node-hello", repo / "node-hello")
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "node-hello"]):
        subprocess.run(
            ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", *args],
            check=True,
            capture_output=True,
        )
    namespace = f"secrets-{os.getpid()}"
    report, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    deployer = str(Path(sys.executable).parent / "deployer")  # the console script of this venv
    env = {**os.environ, "CI": "true"}
    try:
        done = subprocess.run(
            [deployer, "ship", str(repo / "node-hello"), "--namespace", namespace]
            + ["--report", str(report), "--junit", str(junit)],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
            check=False,
        )
    finally:
        from kubernetes import client

        from deployer.tools.kube import load_api

        Helm(kubeconfig=DEFAULT_KUBECONFIG).uninstall("node-hello", namespace)
        client.CoreV1Api(load_api()).delete_namespace(namespace)  # not waited for
    data = json.loads(report.read_text())
    assert data["images"] and data["images"][0]["pushed"], done.stdout[-3000:]  # it logged in and pushed
    assert done.returncode == data["outcome"]["exit_code"]
    # The real reports are well-formed too: schema-valid JSON, JUnit a reader can parse.
    jsonschema.Draft202012Validator(report_schema()).validate(data)
    assert data["images"][0]["digest"].startswith("sha256:")
    assert {s.name for s in JUnitXml.fromfile(str(junit))} == {
        "node-hello.test-variant",
        "node-hello.smoke",
        "node-hello.ship",
    }
    for where, text in {
        "stdout": done.stdout,
        "stderr": done.stderr,
        "report": report.read_text(),
        "junit": junit.read_text(),
    }.items():
        for secret in secrets:
            assert secret not in text, f"registry secret in {where}"


@pytest.mark.parametrize(
    ("flag", "env", "tty", "expected"),
    [
        (False, {}, True, cli.CliState(ci=False, strict_ci=False, color=True)),
        (False, {"NO_COLOR": "1"}, True, cli.CliState(ci=False, strict_ci=False, color=False)),
        (False, {}, False, cli.CliState(ci=True, strict_ci=False, color=False)),
        (True, {}, True, cli.CliState(ci=True, strict_ci=True, color=False)),
        (False, {"CI": "true"}, True, cli.CliState(ci=True, strict_ci=True, color=False)),
        (False, {"CI": "false"}, True, cli.CliState(ci=False, strict_ci=False, color=True)),
    ],
)
def test_output_mode_from_flag_environment_and_terminal(flag, env, tty, expected, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(cli.sys.stdout, "isatty", lambda: tty)
    assert cli._make_state(flag) == expected


# --- the console script: `entry` exits at once, with main's code and all output flushed ---------------


def _entry(*args: str, **kw):
    import subprocess
    import sys

    code = "import sys; from deployer.cli import entry; sys.argv = ['deployer', *sys.argv[1:]]; entry()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, **kw)


def test_entry_exits_with_mains_code_and_flushed_output(tmp_path):
    version = _entry("--version")
    assert (version.returncode, version.stdout) == (0, "deployer, version 0.1.0\n")
    missing = _entry("test", str(tmp_path / "nope"))
    assert missing.returncode == ExitCode.CONFIG
    assert missing.stderr.startswith("error: ") and "nope" in missing.stderr
    usage = _entry("ship")
    assert usage.returncode == 2 and "Missing argument 'SERVICE'" in usage.stderr


def test_a_reader_that_stops_reading_ends_the_command_quietly(monkeypatch):
    def status(*a, **kw):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "_make_state", status)
    result = CliRunner().invoke(cli.main, ["doctor"])
    assert result.exit_code == 141
    assert "Traceback" not in result.output and "internal error" not in result.output
