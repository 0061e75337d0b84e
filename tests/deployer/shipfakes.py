"""A ship-shaped workflow whose steps are fakes at the step seam, for report/JUnit/output/CLI tests.

Each fake step records the same `details` the real ship steps record (see `deployer.reporting.report`), and
`failing_at(kind)` swaps one step for one that raises the error of that failure kind, with the
details and evidence a real failure carries.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from deployer import errors
from deployer.reporting.report import RunInfo
from deployer.workflow import Step, StepContext, StepResult, WorkflowRun, run

DIGEST = "sha256:" + "ab" * 32
CHART_DIGEST = "sha256:" + "cd" * 32
SHA = "0123456789abcdef0123456789abcdef01234567"
SERVICE = "node-hello"
STAGES = ("compile", "test", "build", "push", "chart", "deploy", "watch", "smoke")


def _compile(ctx: StepContext) -> dict[str, Any]:
    return {"summary": "variants test, production"}


def _test(ctx: StepContext) -> dict[str, Any]:
    ctx.progress("running npm test in node-hello:test")
    return {
        "tests": {
            "variant": "test",
            "image": "node-hello:test",
            "passed": True,
            "exit_code": 0,
            "duration_seconds": 1.5,
            "output_tail": ["> node-hello@1.0.0 test", "ok 1 - responds with hello"],
        }
    }


def _build(ctx: StepContext) -> dict[str, Any]:
    return {
        "images": [
            {
                "variant": "production",
                "repository": "127.0.0.1:5000/node-hello",
                "tags": ["20261127-063000-production", SHA[:12]],
                "digest": None,
                "pushed": False,
                "image_id": "sha256:" + "ef" * 32,
            }
        ]
    }


def _push(ctx: StepContext) -> dict[str, Any]:
    ctx.progress("pushed 127.0.0.1:5000/node-hello:20261127-063000-production")
    return {
        "images": [
            {
                "variant": "production",
                "repository": "127.0.0.1:5000/node-hello",
                "tags": [],
                "digest": DIGEST,
                "pushed": True,
            }
        ],
        "summary": f"127.0.0.1:5000/node-hello@{DIGEST[:19]}",
    }


def _chart(ctx: StepContext) -> dict[str, Any]:
    return {
        "chart": {
            "name": "node-hello",
            "version": "0.0.0-20261127063000",
            "ref": "oci://127.0.0.1:5000/charts/node-hello",
            "digest": CHART_DIGEST,
        }
    }


def _deploy(ctx: StepContext) -> dict[str, Any]:
    return {"revision": 3}


def _watch(ctx: StepContext) -> dict[str, Any]:
    ctx.progress("deployment/node-hello: 1/2 replicas available")
    ctx.progress("deployment/node-hello: 2/2 replicas available")
    return {"rollout": {"verdict": "healthy", "reason": None, "rolled_back": False, "rollback": None}}


def _smoke(ctx: StepContext) -> dict[str, Any]:
    return {
        "smoke": [
            {"name": "GET /", "kind": "http", "status": "passed", "detail": "200", "duration_seconds": 0.05},
            {
                "name": "helm test",
                "kind": "helm-test",
                "status": "passed",
                "detail": "node-hello-test: Succeeded",
                "duration_seconds": 2.0,
            },
        ]
    }


HEALTHY: dict[str, Callable[[StepContext], Any]] = {
    "compile": _compile,
    "test": _test,
    "build": _build,
    "push": _push,
    "chart": _chart,
    "deploy": _deploy,
    "watch": _watch,
    "smoke": _smoke,
}


def _raiser(err: BaseException) -> Callable[[StepContext], Any]:
    def step(ctx: StepContext) -> Any:
        raise err

    return step


def _with(err: errors.UserError, **attrs: Any) -> errors.UserError:
    for key, value in attrs.items():
        setattr(err, key, value)
    return err


ORIGIN = {
    "file": "examples/node-hello/.pipeline/blubber.yaml",
    "line": 27,
    "yaml_path": "variants.production.entrypoint",
    "source": "service",
    "text": "[node, server.js]",
    "why": "the container exited (CrashLoopBackOff: last exit: ExitCode:1)",
}
"""What deployer/origin.py says of the crash the "rollout" failure stands for."""


def failure(kind: str) -> tuple[str, Callable[[StepContext], Any]]:
    """(stage, failing step) for one failure kind, shaped like what the real step raises."""
    if kind == "config":
        err = errors.ConfigError(
            "unknown field 'lives.bogus'", file=".pipeline/blubber.yaml", line=7, path="variants.test.lives"
        )
        return "compile", _raiser(err)
    if kind == "policy":
        return "compile", _raiser(
            errors.PolicyViolation("runs.as: 'root' is not allowed in production", hint="set runs.as")
        )
    if kind == "test_failed":
        err = _with(
            errors.TestVariantFailed("the test variant exited with 1", hint="run the tests locally"),
            evidence=["not ok 1 - responds with hello", "# fail 1"],
            next_command="deployer test examples/node-hello",
            details={
                "tests": {
                    "variant": "test",
                    "image": "node-hello:test",
                    "passed": False,
                    "exit_code": 1,
                    "duration_seconds": 1.2,
                    "output_tail": ["not ok 1 - responds with hello", "# fail 1"],
                }
            },
        )
        return "test", _raiser(err)
    if kind == "build":
        err = _with(
            errors.BuildFailed("docker build of variant production failed"),
            evidence=["E: Unable to locate package nosuchpkg"],
        )
        return "build", _raiser(err)
    if kind == "push":
        return "push", _raiser(
            _with(errors.PushFailed("unauthorized: authentication required"), next_command="deployer doctor")
        )
    if kind == "deploy":
        return "deploy", _raiser(errors.DeployFailed("helm upgrade failed: context deadline exceeded"))
    if kind == "rollout":
        err = _with(
            errors.RolloutFailed(
                "CrashLoopBackOff: container app in pod node-hello-7d9-abc exited with 1 (3 restarts)",
                hint="the process exits at start; read the log lines above",
            ),
            evidence=[
                "log app: Error: Cannot find module '/srv/app/server.js'",
                "event Warning BackOff pod/node-hello-7d9-abc: Back-off restarting failed container",
            ],
            next_command="deployer status examples/node-hello",
            details={
                "rollout": {
                    "verdict": "failed",
                    "reason": "CrashLoopBackOff: container app exited with 1",
                    "rolled_back": True,
                    "rollback": {"action": "rollback", "to_revision": 2, "verified": True, "detail": None},
                },
                "origin": ORIGIN,
            },
        )
        return "watch", _raiser(err)
    if kind == "smoke":
        err = _with(
            errors.SmokeFailed("1 of 2 smoke checks failed: GET /health → 500, expected 200"),
            details={
                "smoke": [
                    {
                        "name": "GET /",
                        "kind": "http",
                        "status": "passed",
                        "detail": "200",
                        "duration_seconds": 0.05,
                    },
                    {
                        "name": "GET /health",
                        "kind": "http",
                        "status": "failed",
                        "detail": "status 500, expected 200",
                        "duration_seconds": 0.04,
                    },
                ]
            },
        )
        return "smoke", _raiser(err)
    if kind == "timeout":
        return "watch", _raiser(errors.Timeout("the rollout did not finish within 600s"))
    if kind == "environment":
        return "build", _raiser(
            errors.EnvironmentMissing("docker is not running", hint="start it with: scripts/stack up")
        )
    if kind == "interrupted":
        return "watch", _raiser(KeyboardInterrupt())
    if kind == "internal":
        return "chart", _raiser(RuntimeError("boom"))
    raise ValueError(kind)


FAILURE_KINDS = (
    "config",
    "policy",
    "test_failed",
    "build",
    "push",
    "deploy",
    "rollout",
    "smoke",
    "timeout",
    "environment",
    "interrupted",
    "internal",
)


def steps(kind: str | None = None) -> list[Step]:
    """The ship's stages with fake bodies; with `kind`, one of them fails that way."""
    fns = dict(HEALTHY)
    if kind is not None:
        stage, fn = failure(kind)
        fns[stage] = fn
    return [Step(name, fns[name], title=name) for name in STAGES]


class TickClock:
    """A clock that advances by `step` seconds on every reading, so durations are exact in tests."""

    def __init__(self, step: float = 0.5) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def ship_run(kind: str | None = None, sink: Callable[[Any], None] | None = None) -> WorkflowRun:
    """Run the fake ship; each stage takes 0.5 s and the whole run 8.5 s on the fake clock."""
    ctx = StepContext(config=None, state={})
    return run(steps(kind), ctx, sink or (lambda event: None), clock=TickClock())


def info(**overrides: Any) -> RunInfo:
    values: dict[str, Any] = dict(
        service=SERVICE,
        service_dir="examples/node-hello",
        environment="staging",
        started_at=datetime(2026, 11, 27, 6, 30, tzinfo=UTC),
        finished_at=datetime(2026, 11, 27, 6, 31, tzinfo=UTC),
        git_sha=SHA,
        git_dirty=False,
        namespace="node-hello",
        release="node-hello",
        kube_context="staging",
        reproduce=("deployer ship examples/node-hello --env staging",),
    )
    values.update(overrides)
    return RunInfo(**values)


__all__ = ["FAILURE_KINDS", "STAGES", "StepResult", "info", "ship_run", "steps"]
