"""One Target per command (deployer.target.resolve) and the `deployer env` commands, on real files."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from deployer import cli
from deployer.target import LOCAL, UnknownEnvironment, resolve

E2E_CONFIG = Path(__file__).resolve().parents[3] / "e2e" / "testdata" / "deployer.yaml"


def test_without_a_file_the_local_stack_is_the_target(tmp_path: Path) -> None:
    target = resolve(None, start=tmp_path, environ={})
    assert target.builtin and target.name == "local"
    assert target.kubeconfig == LOCAL.cluster.kubeconfig
    assert target.chart_repository == "oci://127.0.0.1:5000/staging/charts"


def test_the_local_stack_follows_kubeconfig_and_deployer_registry_together(tmp_path: Path) -> None:
    environ = {"KUBECONFIG": "/k/other", "DEPLOYER_REGISTRY": "127.0.0.1:5999"}
    target = resolve(None, start=tmp_path, environ=environ)
    assert target.kubeconfig == Path("/k/other")
    assert target.registry.host == "127.0.0.1:5999"
    assert target.chart_repository == "oci://127.0.0.1:5999/staging/charts"  # images and charts move together
    assert resolve(None, kubeconfig=Path("/k/flag"), start=tmp_path, environ=environ).kubeconfig == Path(
        "/k/flag"
    )


def test_a_configured_environment_wins_over_kubeconfig_variable() -> None:
    target = resolve("production", config=E2E_CONFIG, environ={"KUBECONFIG": "/k/other"})
    assert target.kubeconfig == Path("/var/lib/deployer/cluster/kubeconfig")
    assert target.registry.repository("node-hello") == "registry.team.test:5443/production/node-hello"
    assert target.chart_repository == "oci://registry.team.test:5443/production/charts"
    assert target.chart_host == "registry.team.test:5443"
    assert target.namespace("node-hello", "node-hello", chosen="mine") == "node-hello-production"
    assert resolve(None, config=E2E_CONFIG).name == "staging"  # the file's default


def test_unknown_environment_lists_the_known_ones() -> None:
    with pytest.raises(UnknownEnvironment) as err:
        resolve("qa", config=E2E_CONFIG)
    assert err.value.exit_code == 2
    assert "local, production, staging" in str(err.value)


def test_cli_unknown_env_is_exit_2_before_anything_runs() -> None:
    result = CliRunner().invoke(cli.main, ["ship", "node-hello", "--env", "qa", "--config", str(E2E_CONFIG)])
    assert result.exit_code == 2
    assert "unknown environment 'qa'" in result.output and "production, staging" in result.output


def test_cli_config_error_is_exit_10_at_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "deployer.yaml"
    bad.write_text(
        "environments:\n  staging:\n    registry:\n      host: r.example:443\n      colour: blue\n"
    )
    result = CliRunner().invoke(cli.main, ["status", "node-hello", "--config", str(bad)])
    assert result.exit_code == 10
    assert f"{bad}:5" in result.output and "colour" in result.output


def test_cli_env_show_masks_the_secret_and_names_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cret-never-shown"
    monkeypatch.setenv("TEAM_REGISTRY_USER", "ci")
    monkeypatch.setenv("TEAM_REGISTRY_PASSWORD", secret)
    for argv in (["env", "show", "production"], ["env", "show", "production", "--json"]):
        result = CliRunner().invoke(cli.main, [*argv, "--config", str(E2E_CONFIG)])
        assert result.exit_code == 0, result.output
        assert secret not in result.output
        assert "$TEAM_REGISTRY_PASSWORD" in result.output and "********" in result.output
        assert "registry.team.test:5443/production/<service>" in result.output


def test_cli_env_list_marks_the_default() -> None:
    result = CliRunner().invoke(cli.main, ["env", "list", "--config", str(E2E_CONFIG)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == ["local", "production", "*"]
    assert "staging" in lines[2] and "registry.team.test:5443/staging/<service>" in lines[2]


def test_no_module_decides_the_registry_the_target_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from deployer import doctor
    from deployer.target import builtin_registry
    from deployer.tools import registry

    assert not hasattr(registry, "REGISTRY") and not hasattr(doctor, "REGISTRY")
    monkeypatch.setenv("DEPLOYER_REGISTRY", "127.0.0.1:5999")
    assert builtin_registry().host == "127.0.0.1:5999"
    assert doctor.DoctorConfig().registry == "127.0.0.1:5999"  # no target given: the local stack's
    staging = resolve("staging", config=E2E_CONFIG)
    assert doctor.DoctorConfig.of(staging).registry == "registry.team.test:5443"
