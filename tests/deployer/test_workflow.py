"""The step runner by itself: order, stop on failure, outcomes as data, events."""

from __future__ import annotations

import time

import pytest

from deployer import errors
from deployer.errors import ExitCode
from deployer.workflow import (
    Status,
    Step,
    StepContext,
    StepFinished,
    StepProgress,
    StepResult,
    StepStarted,
    WorkflowFinished,
    WorkflowStarted,
    final_exit_code,
    run,
)


def _ctx(deadline: float | None = None) -> StepContext:
    return StepContext(config={"service": "hello"}, state={}, deadline=deadline)


def test_steps_run_in_order_and_share_config_and_state():
    seen = []

    def first(ctx):
        seen.append(("first", ctx.config["service"]))
        ctx.state["digest"] = "sha256:abc"
        return {"image": "hello:1"}

    def second(ctx):
        seen.append(("second", ctx.state["digest"]))

    outcome = run([Step("first", first), Step("second", second)], _ctx())

    assert seen == [("first", "hello"), ("second", "sha256:abc")]
    assert [r.status for r in outcome.results] == [Status.SUCCESS, Status.SUCCESS]
    assert outcome.results[0].details == {"image": "hello:1"}
    assert outcome.exit_code == 0
    assert bool(outcome) is True
    assert outcome.failed is None


def test_user_error_stops_the_run_with_its_exit_code_and_later_steps_are_not_run():
    called = []

    def push(ctx):
        err = errors.PushFailed("unauthorized: authentication required", hint="run docker login")
        err.evidence = ["denied: requested access to the resource is denied"]
        err.next_command = "deployer doctor"
        err.details = {"registry": "127.0.0.1:5000"}
        raise err

    outcome = run(
        [Step("build", lambda ctx: None), Step("push", push), Step("deploy", lambda ctx: called.append(1))],
        _ctx(),
    )

    assert called == []
    assert [r.status for r in outcome.results] == [Status.SUCCESS, Status.FAILED, Status.NOT_RUN]
    failed = outcome.failed
    assert failed.name == "push"
    assert failed.reason == "unauthorized: authentication required"
    assert failed.hint == "run docker login"
    assert failed.exit_code == ExitCode.PUSH
    assert failed.evidence == ("denied: requested access to the resource is denied",)
    assert failed.next_command == "deployer doctor"
    assert failed.details == {"registry": "127.0.0.1:5000"}
    assert outcome.exit_code == ExitCode.PUSH
    assert outcome.results[2].reason == "an earlier step failed"


def test_user_error_location_is_part_of_the_reason():
    def compile_(ctx):
        raise errors.ConfigError("unknown field 'lives.bogus'", file="blubber.yaml", line=7, path="lives")

    outcome = run([Step("compile", compile_)], _ctx())
    assert outcome.failed.reason == "blubber.yaml:7: lives: unknown field 'lives.bogus'"
    assert outcome.exit_code == ExitCode.CONFIG


def test_unexpected_exception_is_an_internal_failure_with_traceback():
    def broken(ctx):
        raise ZeroDivisionError("division by zero")

    outcome = run([Step("watch", broken)], _ctx())
    failed = outcome.failed
    assert failed.exit_code == ExitCode.INTERNAL
    assert failed.reason == "internal error: ZeroDivisionError: division by zero"
    assert "Traceback (most recent call last)" in failed.details["traceback"]
    assert outcome.exit_code == 1


def test_ctrl_c_becomes_interrupted_and_exit_130():
    def waiting(ctx):
        raise KeyboardInterrupt

    outcome = run([Step("watch", waiting), Step("smoke", lambda ctx: None)], _ctx())
    assert [r.status for r in outcome.results] == [Status.INTERRUPTED, Status.NOT_RUN]
    assert outcome.exit_code == 130


def test_a_step_may_return_its_own_result_and_the_runner_names_and_times_it():
    outcome = run([Step("smoke", lambda ctx: StepResult.skipped("x", "no smoke checks configured"))], _ctx())
    result = outcome.results[0]
    assert result.name == "smoke"
    assert result.status is Status.SKIPPED
    assert result.duration >= 0
    assert bool(result) is True
    assert outcome.exit_code == 0


def test_a_step_does_not_start_after_the_deadline():
    called = []
    outcome = run([Step("deploy", lambda ctx: called.append(1))], _ctx(deadline=time.monotonic() - 1))
    assert called == []
    assert outcome.failed.exit_code == ExitCode.TIMEOUT
    assert outcome.failed.reason == "the overall deadline passed during step 'deploy'"


def test_events_tell_the_display_every_state_change_in_order():
    events = []

    def watch(ctx):
        ctx.progress("1/2 pods available")
        ctx.progress("2/2 pods available")

    outcome = run([Step("watch", watch, title="watch rollout")], _ctx(), sink=events.append)

    kinds = [WorkflowStarted, StepStarted, StepProgress, StepProgress, StepFinished, WorkflowFinished]
    assert [type(e) for e in events] == kinds
    assert events[0] == WorkflowStarted((("watch", "watch rollout"),))
    assert events[1] == StepStarted("watch", "watch rollout", 0, 1)
    assert [e.message for e in events if isinstance(e, StepProgress)] == [
        "1/2 pods available",
        "2/2 pods available",
    ]
    assert all(e.name == "watch" for e in events if isinstance(e, StepProgress))
    assert events[4].result is outcome.results[0]
    assert events[-1].run is outcome


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], 0),
        ([(Status.SUCCESS, ExitCode.OK), (Status.SKIPPED, ExitCode.OK)], 0),
        ([(Status.SUCCESS, ExitCode.OK), (Status.FAILED, ExitCode.SMOKE)], 17),
        ([(Status.FAILED, ExitCode.TEST_FAILED), (Status.FAILED, ExitCode.BUILD)], 12),
        # a failure that forgot its code is still a failure
        ([(Status.FAILED, ExitCode.OK)], 1),
    ],
)
def test_final_exit_code_is_the_first_failures_code(statuses, expected):
    results = [StepResult(f"s{i}", status, exit_code=code) for i, (status, code) in enumerate(statuses)]
    assert final_exit_code(results) == expected


def test_serialize_is_json_ready_and_ordered():
    result = StepResult(
        "push", Status.FAILED, reason="denied", duration=1.23456, exit_code=ExitCode.PUSH, evidence=("a",)
    )
    assert result.serialize() == {
        "name": "push",
        "status": "failed",
        "reason": "denied",
        "duration_seconds": 1.235,
        "exit_code": 14,
        "hint": None,
        "evidence": ["a"],
        "next_command": None,
        "details": {},
    }


def test_a_multi_line_message_is_a_reason_plus_evidence():
    def build(ctx):
        raise errors.BuildFailed(
            "docker build failed at [3/5] RUN npm ci: exit code 1\n  | npm ERR! missing script\n  |\n  | done"
        )

    failed = run([Step("build", build)], _ctx()).failed
    assert failed.reason == "docker build failed at [3/5] RUN npm ci: exit code 1"
    assert failed.evidence == ("npm ERR! missing script", "", "done")


def test_several_config_problems_are_evidence_one_per_line():
    from blubber.errors import ConfigErrors

    problems = [
        errors.ConfigError("unknown field 'a'", file="b.yaml", line=2),
        errors.ConfigError("unknown field 'c'", file="b.yaml", line=5),
    ]

    def compile_(ctx):
        raise ConfigErrors(problems)

    failed = run([Step("compile", compile_)], _ctx()).failed
    assert failed.reason == "b.yaml:2: unknown field 'a'"
    assert failed.evidence == ("b.yaml:2: unknown field 'a'", "b.yaml:5: unknown field 'c'")
