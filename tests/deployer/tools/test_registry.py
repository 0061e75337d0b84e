"""deployer.tools.registry without a registry: credentials, retry/backoff, and a port nobody listens on."""

from __future__ import annotations

import socket

import pytest

from deployer.errors import EnvironmentMissing, ExitCode
from deployer.reporting import redact
from deployer.tools import registry


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    monkeypatch.delenv("DEPLOYER_REGISTRY_USER", raising=False)
    monkeypatch.delenv("DEPLOYER_REGISTRY_PASSWORD", raising=False)
    redact.clear()
    yield
    redact.clear()


def test_credentials_from_the_file_are_registered_for_masking(tmp_path):
    path = tmp_path / "credentials.env"
    path.write_text("REGISTRY_USER=deployer\nREGISTRY_PASSWORD='s3cret-from-file'\n")
    creds = registry.credentials(path)
    assert (creds.user, creds.password, creds.source) == ("deployer", "s3cret-from-file", str(path))
    assert redact.redact("pw s3cret-from-file") == f"pw {redact.MASK}"
    assert "s3cret-from-file" not in repr(creds)


def test_environment_wins_over_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYER_REGISTRY_USER", "ci")
    monkeypatch.setenv("DEPLOYER_REGISTRY_PASSWORD", "from-env-pw")
    creds = registry.credentials(tmp_path / "absent.env")
    assert (creds.user, creds.password) == ("ci", "from-env-pw")
    assert creds.source == "$DEPLOYER_REGISTRY_USER/$DEPLOYER_REGISTRY_PASSWORD"


def test_missing_file_says_how_to_get_credentials(tmp_path):
    with pytest.raises(EnvironmentMissing) as caught:
        registry.credentials(tmp_path / "absent.env")
    assert caught.value.exit_code == ExitCode.ENVIRONMENT
    assert (
        caught.value.message
        == f"no registry credentials: {tmp_path / 'absent.env'} cannot be read (No such file or directory)"
    )
    assert "scripts/stack up" in caught.value.hint


def test_incomplete_file(tmp_path):
    path = tmp_path / "credentials.env"
    path.write_text("REGISTRY_USER=deployer\n")
    with pytest.raises(EnvironmentMissing, match="lacks REGISTRY_USER or REGISTRY_PASSWORD"):
        registry.credentials(path)


def test_backoff_doubles_up_to_the_cap():
    assert registry.Retry(attempts=6, first_delay=1, max_delay=5).delays() == [1, 2, 4, 5, 5]
    assert registry.Retry(attempts=1).delays() == []


def test_retry_retries_only_what_it_is_told_and_stops_after_the_attempts():
    calls: list[int] = []
    sleeps: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("down")
        return "up"

    retry = registry.Retry(attempts=4, first_delay=0.5)
    assert retry.call(flaky, lambda e: isinstance(e, ConnectionError), sleep=sleeps.append) == "up"
    assert sleeps == [0.5, 1.0]

    calls.clear()
    sleeps.clear()
    with pytest.raises(ConnectionRefusedError):
        registry.Retry(attempts=3, first_delay=0.1).call(
            lambda: (_ for _ in ()).throw(ConnectionRefusedError("down")),
            lambda e: True,
            sleep=sleeps.append,
        )
    assert sleeps == [0.1, 0.2]

    with pytest.raises(ValueError):
        registry.Retry(attempts=3).call(
            lambda: (_ for _ in ()).throw(ValueError("not retried")), lambda e: False, sleep=sleeps.append
        )
    assert sleeps == [0.1, 0.2]  # no sleep for an error that is not retried


def test_each_retry_is_announced_with_the_attempt_and_the_wait_and_the_push_bound_is_documented():
    seen: list[tuple[int, float, str]] = []
    failures = iter([ConnectionRefusedError("down 1"), ConnectionRefusedError("down 2")])

    def flaky() -> str:
        err = next(failures, None)
        if err:
            raise err
        return "up"

    retry = registry.Retry(attempts=4, first_delay=0.5)
    got = retry.call(
        flaky, lambda e: True, sleep=lambda s: None, on_retry=lambda a, d, e: seen.append((a, d, str(e)))
    )
    assert got == "up"
    assert seen == [(1, 0.5, "down 1"), (2, 1.0, "down 2")]
    # the bound the README and the registry module state for a push: 6 attempts, 23 s of waits
    assert (registry.PUSH_RETRY.attempts, registry.PUSH_RETRY.delays()) == (6, [1, 2, 4, 8, 8])
    assert registry.PUSH_RETRY.bound() == 23


def test_a_port_nobody_listens_on_is_reported_after_bounded_retries():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(EnvironmentMissing) as caught:
        registry.ping(dead, retry=registry.Retry(attempts=2, first_delay=0.01))
    assert caught.value.message.startswith(
        f"the registry at {dead} does not answer after 2 attempts over 0.0 s: "
    )
    assert caught.value.hint == "start the registry with `scripts/stack up`"
