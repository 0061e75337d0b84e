"""JUnit XML from ship results, read back with a JUnit reader (junitparser)."""

from __future__ import annotations

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from deployer.reporting.junit import write_junit
from tests.deployer import shipfakes


def _read(tmp_path, kind=None):
    path = tmp_path / "junit.xml"
    write_junit(path, shipfakes.ship_run(kind), shipfakes.SERVICE)
    xml = JUnitXml.fromfile(str(path))
    return {suite.name: suite for suite in xml}, xml


def _outcome(case):
    kinds = {type(r) for r in case.result}
    if not kinds:
        return "passed"
    (kind,) = kinds
    return {Failure: "failure", Error: "error", Skipped: "skipped"}[kind]


def test_healthy_ship_is_all_passed(tmp_path):
    suites, xml = _read(tmp_path)
    assert sorted(suites) == ["node-hello.ship", "node-hello.smoke", "node-hello.test-variant"]
    assert [(c.name, _outcome(c)) for c in suites["node-hello.test-variant"]] == [("test variant", "passed")]
    assert [(c.name, _outcome(c)) for c in suites["node-hello.smoke"]] == [
        ("GET /", "passed"),
        ("helm test", "passed"),
    ]
    assert [c.name for c in suites["node-hello.ship"]] == list(shipfakes.STAGES)
    assert all(_outcome(c) == "passed" for c in suites["node-hello.ship"])
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (11, 0, 0, 0)
    test_case = next(iter(suites["node-hello.test-variant"]))
    assert "ok 1 - responds with hello" in test_case.system_out


def test_failing_test_variant_is_a_failure_with_its_output(tmp_path):
    suites, xml = _read(tmp_path, "test_failed")
    (case,) = list(suites["node-hello.test-variant"])
    assert _outcome(case) == "failure"
    (failure,) = case.result
    assert failure.message == "the test variant exited with 1"
    assert failure.type == "TestVariantFailed"
    assert failure.text == "not ok 1 - responds with hello\n# fail 1"
    assert case.system_out == "not ok 1 - responds with hello\n# fail 1"
    # smoke never ran: one skipped case, and every later stage is skipped
    assert [_outcome(c) for c in suites["node-hello.smoke"]] == ["skipped"]
    assert [_outcome(c) for c in suites["node-hello.ship"]] == ["passed", "failure"] + ["skipped"] * 6
    assert suites["node-hello.test-variant"].failures == 1


def test_build_failure_before_tests_is_an_error_of_the_ship_not_a_test_failure(tmp_path):
    suites, _ = _read(tmp_path, "config")
    (case,) = list(suites["node-hello.test-variant"])
    assert _outcome(case) == "skipped"
    assert case.result[0].message == "an earlier step failed"


def test_smoke_failure_marks_only_the_failing_check(tmp_path):
    suites, xml = _read(tmp_path, "smoke")
    assert [(c.name, _outcome(c)) for c in suites["node-hello.smoke"]] == [
        ("GET /", "passed"),
        ("GET /health", "failure"),
    ]
    assert xml.failures == 2  # the check, and the smoke stage in the ship suite


@pytest.mark.parametrize("kind", shipfakes.FAILURE_KINDS)
def test_every_failure_kind_parses_and_names_the_failed_stage(kind, tmp_path):
    suites, _ = _read(tmp_path, kind)
    failed = [c.name for c in suites["node-hello.ship"] if _outcome(c) == "failure"]
    assert len(failed) == 1


def test_a_rollout_failure_names_the_configuration_line_in_its_message(tmp_path):
    suites, _ = _read(tmp_path, "rollout")
    (watch,) = [c for c in suites["node-hello.ship"] if c.name == "watch"]
    (failure,) = watch.result
    line = (
        "config: examples/node-hello/.pipeline/blubber.yaml:27: variants.production.entrypoint is "
        "[node, server.js] (set in the service's file): the container exited (CrashLoopBackOff: last exit: "
        "ExitCode:1)"
    )
    assert failure.message.endswith(f"; {line}") and failure.text.endswith(line)
    # a failure with no traced line keeps its message as it was
    suites, _ = _read(tmp_path, "push")
    (push,) = [c for c in suites["node-hello.ship"] if c.name == "push"]
    assert push.result[0].message == "unauthorized: authentication required"
