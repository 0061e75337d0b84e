"""The `blubber` CLI: output, exit codes, and one clear message (no traceback) for every kind of bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from importlib.metadata import version
from io import StringIO
from pathlib import Path

import pytest

from blubber.cli import main
from blubber.errors import ExitCode
from tests.blubber.helpers import OPS_POLICY

GOOD = """\
version: v4
base: 127.0.0.1:5000/base/bookworm:12
variants:
  build: {copies: [local]}
  production: {copies: [build], entrypoint: [./run]}
"""


def run(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `blubber ARGS`, in this process."""
    out, err = StringIO(), StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def write(tmp_path):
    def write(text: str, name: str = "blubber.yaml") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return str(path)

    return write


def test_bare_form_and_compile_subcommand(write) -> None:
    path = write(GOOD)
    code, out, err = run(path, "production")
    assert (code, err) == (0, "")
    assert out.startswith("FROM 127.0.0.1:5000/base/bookworm:12 AS build\n")
    assert run("compile", path, "production")[1] == out
    # Like upstream Blubber, no policy applies unless one is named.
    assert run(path, "production", "--no-policy")[1] == out
    assert run(path, "production", "--policy", str(OPS_POLICY))[1] != out  # its defaults show
    assert run("--policy", write("{}", "empty.yaml"), path, "production")[0] == 0


def test_lint(write) -> None:
    code, out, _ = run("lint", write(GOOD))
    assert (code, out.endswith(": ok (2 variants)\n")) == (0, True)


def test_help_documents_exit_codes() -> None:
    code, out, _ = run("--help")
    assert code == 0
    for text in ("10  bad config or policy file", "11  the config violates a policy enforcement", "Usage:"):
        assert text in out


BAD = [
    ("malformed-yaml", "version: v4\nbase: [a\n", "blubber.yaml:3: base[1]: invalid YAML", ExitCode.CONFIG),
    ("wrong-type", "version: v4\nentrypoint: npm start\n", "blubber.yaml:2: entrypoint: expected a list, got a string",  # noqa: E501
     ExitCode.CONFIG),
    ("unknown-key", "version: v4\nvariants:\n  build:\n    coppies: [local]\n",
     "blubber.yaml:4: variants.build.coppies: unknown key \"coppies\"\n  hint: did you mean 'copies'?", ExitCode.CONFIG),  # noqa: E501
    ("missing-version", "base: x\n", 'blubber.yaml:1: version: "version" is required', ExitCode.CONFIG),
    ("wrong-version", "version: v3\n", 'blubber.yaml:1: version: config version "v3" is unsupported', ExitCode.CONFIG),  # noqa: E501
    ("unknown-variant", GOOD.replace("production:", "prod:"), "blubber.yaml:3: variants: unknown variant 'production'",  # noqa: E501
     ExitCode.CONFIG),
    ("include-cycle", "version: v4\nvariants:\n  production: {includes: [build]}\n  build: {includes: [production]}\n",  # noqa: E501
     "blubber.yaml:4: variants.build.includes: detected dependency graph cycle at 'production'", ExitCode.CONFIG),  # noqa: E501
    ("unknown-include", "version: v4\nvariants:\n  production: {includes: [biuld]}\n  build: {}\n",
     'blubber.yaml:3: variants.production.includes[0]: references an unknown variant "biuld"\n'
     "  hint: did you mean 'build'?", ExitCode.CONFIG),
    ("copies-unknown-variant", "version: v4\nvariants:\n  build: {}\n  production: {copies: [biuld]}\n",
     'blubber.yaml:4: variants.production.copies[0].from: unknown variant "biuld"\n'
     "  hint: did you mean 'build'? (to copy from an image, name it with a tag, e.g. biuld:latest)", ExitCode.CONFIG),  # noqa: E501
    ("bad-uid", "version: v4\nruns: {uid: -5}\nvariants: {production: {}}\n",
     "blubber.yaml:2: runs.uid: -5 is out of range (1..4294967294)", ExitCode.CONFIG),
    ("bad-gid", "version: v4\nlives:\n  gid: lots\nvariants: {production: {}}\n",
     "blubber.yaml:3: lives.gid: expected an integer, got a string", ExitCode.CONFIG),
    ("bad-env-name", "version: v4\nruns: {environment: {'MY-VAR': x}}\nvariants: {production: {}}\n",
     "blubber.yaml:2: runs.environment: contains invalid environment variable names\n  hint: invalid: 'MY-VAR'",  # noqa: E501
     ExitCode.CONFIG),
    ("policy-violation", GOOD.replace("127.0.0.1:5000/base/bookworm:12", "evil.example/x:1"),
     'blubber.yaml:2: base: value "evil.example/x:1" for "base" violates policy rule '
     '"omitempty,startswith=127.0.0.1:5000/base/"', ExitCode.POLICY),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message", "exit_code"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(write, text: str, message: str, exit_code: ExitCode) -> None:
    path = write(text)
    code, out, err = run(path, "production", "--policy", str(OPS_POLICY))
    assert code == exit_code
    assert out == ""
    assert err.startswith(f"error: {Path(path).parent}/{message}")
    assert "Traceback" not in err
    assert "\n  hint: " in err


def test_unreadable_file(tmp_path) -> None:
    code, out, err = run(str(tmp_path / "missing.yaml"), "production")
    assert (code, out, err) == (
        ExitCode.CONFIG,
        "",
        f"error: {tmp_path}/missing.yaml: file not found\n  hint: check the path\n",
    )
    code, _, err = run(str(tmp_path), "production")
    assert (code, err) == (ExitCode.CONFIG, f"error: {tmp_path}: is a directory, not a file\n")


def test_bad_policy_file(write) -> None:
    code, _, err = run(write(GOOD), "production", "--policy", write("enforcements: [{path: base}]", "p.yaml"))
    assert code == ExitCode.CONFIG
    assert "p.yaml:1: enforcements[0]: each enforcement is a mapping with exactly `path` and `rule`" in err


def test_lint_reports_every_broken_variant(write) -> None:
    text = GOOD.replace("entrypoint: [./run]}", "entrypoint: [./run], runs: {insecurely: true}}")
    code, _, err = run("lint", write(text + "  broken: {includes: [broken]}\n"), "--policy", str(OPS_POLICY))
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 2
    assert "detected dependency graph cycle at 'broken'" in lines[0]
    assert 'violates policy rule "isfalse"' in lines[1]
    assert code == ExitCode.POLICY  # the last one printed decides


def test_usage_error(tmp_path) -> None:
    assert run("compile")[0] == ExitCode.USAGE
    code, out, err = run(str(tmp_path / "blubber.yaml"), "production", "--policy", str(tmp_path))
    assert (code, out) == (ExitCode.USAGE, "")
    assert "--policy/-p: " in err and "is a directory" in err


def test_version_and_subcommand_help() -> None:
    code, out, _ = run("--version")
    assert (code, out) == (0, f"blubber, version {version('deployer')}\n")
    code, out, _ = run("lint", "--help")
    assert code == 0 and out.startswith("Usage: blubber lint") and "11  the config violates" in out


def test_internal_error_prints_a_traceback(write, monkeypatch) -> None:
    def boom(*_args, **_kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr("blubber.api.compiler.render", boom)
    code, _, err = run(write(GOOD), "production")
    assert code == ExitCode.INTERNAL
    assert "Traceback" in err and "RuntimeError: bug" in err and "internal error" in err


def test_console_script_runs_as_a_process(write) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-m", "blubber.cli", write(GOOD), "production"], capture_output=True,  # noqa: E501
                          text=True, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith('LABEL blubber.variant="production" blubber.version="0.1.0"\n')
    proc = subprocess.run([sys.executable, "-m", "blubber.cli", write("version: v3"), "x"], capture_output=True,  # noqa: E501
                          text=True, env=env)  # fmt: skip
    assert proc.returncode == ExitCode.CONFIG and "Traceback" not in proc.stderr
