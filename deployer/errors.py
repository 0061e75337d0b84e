"""deployer's user errors: one class per failure class, each with its exit code.

All derive from `blubber.errors.UserError`, so one `except UserError` at the CLI edge prints every
user-fixable failure as a message with a hint, never a traceback.
"""

from __future__ import annotations

from blubber.errors import ConfigError, ExitCode, PolicyViolation, UserError

__all__ = [
    "BuildFailed",
    "ConfigError",
    "DeployFailed",
    "EnvironmentMissing",
    "ExitCode",
    "PolicyViolation",
    "PushFailed",
    "RolloutFailed",
    "SmokeFailed",
    "TestVariantFailed",
    "Timeout",
    "UserError",
]


class TestVariantFailed(UserError):
    """The test variant's entrypoint exited non-zero."""

    __test__ = False  # not a pytest test class
    exit_code = ExitCode.TEST_FAILED


class BuildFailed(UserError):
    """`docker build` failed."""

    exit_code = ExitCode.BUILD


class PushFailed(UserError):
    """Tagging or pushing to the registry failed."""

    exit_code = ExitCode.PUSH


class DeployFailed(UserError):
    """Rendering the chart or `helm upgrade --install` failed."""

    exit_code = ExitCode.DEPLOY


class RolloutFailed(UserError):
    """The rollout failed; the release was rolled back."""

    exit_code = ExitCode.ROLLOUT


class SmokeFailed(UserError):
    """Smoke checks failed after a healthy rollout."""

    exit_code = ExitCode.SMOKE


class Timeout(UserError):
    """An overall deadline passed."""

    exit_code = ExitCode.TIMEOUT


class EnvironmentMissing(UserError):
    """A tool or service deployer needs is missing or not running (docker, registry, helm, cluster)."""

    exit_code = ExitCode.ENVIRONMENT
