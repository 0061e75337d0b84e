"""deployer's errors and exit codes: one class per failure class, each with its exit code.

The compiler keeps its own codes (`blubber.errors.ExitCode`: success, internal, usage, config, policy);
`ExitCode` here lists those under the same names and values and adds deployer's. The numbers are an
interface (CI scripts branch on them): never renumber one.

Every error derives from `blubber.errors.UserError`, so one `except UserError` at the CLI edge prints every
user-fixable failure as a message with a hint, never a traceback. `DeployerError` adds what the ship's
reports carry besides the message: `evidence` (log tail, events, one line each), `next_command` (what to
run next) and `details` (facts for the JSON report, by section).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

from blubber.errors import ConfigError, PolicyViolation, UserError
from blubber.errors import ExitCode as CompilerExitCode

__all__ = [
    "BuildFailed",
    "ConfigError",
    "DeployFailed",
    "DeployerError",
    "EnvironmentMissing",
    "ExitCode",
    "PolicyViolation",
    "PushFailed",
    "RolloutFailed",
    "SmokeFailed",
    "TestVariantFailed",
    "Timeout",
    "UncommittedChanges",
    "UserError",
]


class ExitCode(enum.IntEnum):
    """Every code a `deployer` command exits with (README "Exit codes", `deployer --help`)."""

    # the compiler's, by reference so the two tables cannot drift apart
    OK = CompilerExitCode.OK.value
    INTERNAL = CompilerExitCode.INTERNAL.value  # a bug in deployer: printed with a traceback
    USAGE = CompilerExitCode.USAGE.value  # click's own code for bad command-line usage
    CONFIG = CompilerExitCode.CONFIG.value  # bad blubber.yaml / deploy.yaml / unreadable file
    POLICY = CompilerExitCode.POLICY.value  # a policy enforcement was violated (or a dirty tree in CI)
    # deployer's own
    TEST_FAILED = 12  # the test variant's entrypoint failed
    BUILD = 13  # docker build failed
    PUSH = 14  # push to the registry failed
    DEPLOY = 15  # chart render / helm upgrade failed
    ROLLOUT = 16  # rollout failed (and was rolled back)
    SMOKE = 17  # smoke checks failed after a healthy rollout
    TIMEOUT = 18  # an overall deadline passed
    ENVIRONMENT = 19  # a required tool or service is missing (docker not running, no cluster, ...)
    INTERRUPTED = 130  # Ctrl-C


class DeployerError(UserError):
    """A failure of one of deployer's stages, with what the reports show besides the message."""

    exit_code: int = ExitCode.INTERNAL  # every subclass names its own

    def __init__(
        self,
        message: str,
        *,
        evidence: Sequence[str] = (),
        next_command: str | None = None,
        details: Mapping[str, Any] | None = None,
        **where_and_hint: Any,  # UserError's file, line, path, hint
    ) -> None:
        super().__init__(message, **where_and_hint)
        self.evidence: Sequence[str] = evidence
        self.next_command: str | None = next_command
        self.details: dict[str, Any] = dict(details or {})


class UncommittedChanges(DeployerError, PolicyViolation):
    """`--ci` refuses a service directory with uncommitted changes (or outside git): what is shipped must be
    in git, so the report's git sha reproduces the image. A policy of the pipeline, hence the policy code."""

    exit_code = ExitCode.POLICY


class TestVariantFailed(DeployerError):
    """The test variant's entrypoint exited non-zero (or ran past its timeout: `exit_status` None)."""

    __test__ = False  # not a pytest test class
    exit_code = ExitCode.TEST_FAILED

    def __init__(self, message: str, *, exit_status: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.exit_status = exit_status


class BuildFailed(DeployerError):
    """`docker build` failed."""

    exit_code = ExitCode.BUILD


class PushFailed(DeployerError):
    """Tagging or pushing to the registry failed."""

    exit_code = ExitCode.PUSH


class DeployFailed(DeployerError):
    """Rendering the chart or `helm upgrade --install` failed."""

    exit_code = ExitCode.DEPLOY


class RolloutFailed(DeployerError):
    """The rollout failed; the release was rolled back."""

    exit_code = ExitCode.ROLLOUT


class SmokeFailed(DeployerError):
    """Smoke checks failed after a healthy rollout."""

    exit_code = ExitCode.SMOKE


class Timeout(DeployerError):
    """An overall deadline passed."""

    exit_code = ExitCode.TIMEOUT


class EnvironmentMissing(DeployerError):
    """A tool or service deployer needs is missing or not running (docker, registry, helm, cluster)."""

    exit_code = ExitCode.ENVIRONMENT
