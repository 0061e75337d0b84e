"""The JSON ship report: built from results, valid against its schema for every outcome."""

from __future__ import annotations

import json

import jsonschema
import pytest

from deployer.reporting.report import build_report, report_schema, write_report
from tests.deployer import shipfakes


def _validate(report: dict) -> None:
    validator = jsonschema.Draft202012Validator(
        report_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(report), key=lambda e: list(e.path))
    assert [f"{list(e.path)}: {e.message}" for e in errors] == []


def test_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(report_schema())


def test_healthy_ship_report(tmp_path):
    report = build_report(shipfakes.ship_run(), shipfakes.info())
    _validate(report)

    assert report["outcome"] == {
        "status": "success",
        "exit_code": 0,
        "exit_class": "ok",
        "failed_stage": None,
        "reason": None,
        "hint": None,
        "next_command": None,
        "origin": None,
    }
    assert [s["name"] for s in report["stages"]] == list(shipfakes.STAGES)
    assert {s["status"] for s in report["stages"]} == {"success"}
    # build recorded tags, push added the digest: one entry per variant
    assert report["images"] == [
        {
            "variant": "production",
            "repository": "127.0.0.1:5000/node-hello",
            "tags": ["0123456789ab", "20261127-063000-production"],
            "digest": shipfakes.DIGEST,
            "pushed": True,
            "image_id": "sha256:" + "ef" * 32,
        }
    ]
    assert report["rollout"] == {
        "verdict": "healthy",
        "reason": None,
        "revision": 3,
        "rolled_back": False,
        "rollback": None,
    }
    assert report["tests"]["passed"] is True
    assert [c["status"] for c in report["smoke"]] == ["passed", "passed"]
    assert report["chart"]["digest"] == shipfakes.CHART_DIGEST
    assert report["git"] == {"sha": shipfakes.SHA, "dirty": False}
    assert report["started_at"] == "2026-11-27T06:30:00Z"
    assert report["reproduce"] == ["deployer ship examples/node-hello --env staging"]

    path = tmp_path / "out" / "report.json"
    write_report(path, report)
    assert json.loads(path.read_text()) == report
    assert path.read_text().endswith("}\n")


EXPECTED = {
    # kind: (exit code, failed stage, rollout verdict)
    "config": (10, "compile", "not-run"),
    "policy": (11, "compile", "not-run"),
    "test_failed": (12, "test", "not-run"),
    "build": (13, "build", "not-run"),
    "push": (14, "push", "not-run"),
    "deploy": (15, "deploy", "not-run"),
    "rollout": (16, "watch", "failed"),
    "smoke": (17, "smoke", "healthy"),
    "timeout": (18, "watch", "timeout"),
    "environment": (19, "build", "not-run"),
    "interrupted": (130, "watch", "interrupted"),
    "internal": (1, "chart", "not-run"),
}


def test_every_failure_kind_has_an_expectation():
    assert set(EXPECTED) == set(shipfakes.FAILURE_KINDS)


@pytest.mark.parametrize("kind", shipfakes.FAILURE_KINDS)
def test_failed_ship_report_validates_and_names_the_failure(kind, tmp_path):
    code, stage, verdict = EXPECTED[kind]
    report = build_report(shipfakes.ship_run(kind), shipfakes.info())
    _validate(report)

    outcome = report["outcome"]
    assert outcome["exit_code"] == code
    assert outcome["failed_stage"] == stage
    assert outcome["status"] == ("interrupted" if kind == "interrupted" else "failed")
    assert outcome["exit_class"] == {"test_failed": "test_failed"}.get(kind, kind)
    assert report["rollout"]["verdict"] == verdict
    statuses = [s["status"] for s in report["stages"]]
    failed_at = shipfakes.STAGES.index(stage)
    assert statuses[:failed_at] == ["success"] * failed_at
    assert statuses[failed_at] in {"failed", "interrupted"}
    assert statuses[failed_at + 1 :] == ["not-run"] * (len(statuses) - failed_at - 1)

    path = tmp_path / "report.json"
    write_report(path, report)
    _validate(json.loads(path.read_text()))


def test_rollout_failure_records_the_diagnosis_and_the_rollback():
    report = build_report(shipfakes.ship_run("rollout"), shipfakes.info())
    rollout = report["rollout"]
    assert rollout["verdict"] == "failed"
    assert rollout["reason"] == "CrashLoopBackOff: container app exited with 1"
    assert rollout["rolled_back"] is True
    assert rollout["rollback"] == {"action": "rollback", "to_revision": 2, "verified": True, "detail": None}
    assert rollout["revision"] == 3
    assert rollout["evidence"][0] == "log app: Error: Cannot find module '/srv/app/server.js'"
    assert report["outcome"]["next_command"] == "deployer status examples/node-hello"
    # the configuration line behind the crash, as the watch step traced it (deployer/origin.py)
    assert report["outcome"]["origin"] == shipfakes.ORIGIN
    assert build_report(shipfakes.ship_run("push"), shipfakes.info())["outcome"]["origin"] is None


def test_schema_refuses_an_origin_without_its_line_or_layer():
    report = build_report(shipfakes.ship_run("rollout"), shipfakes.info())
    validator = jsonschema.Draft202012Validator(report_schema())
    assert validator.is_valid(report)
    for broken in (
        {k: v for k, v in shipfakes.ORIGIN.items() if k != "line"},
        {**shipfakes.ORIGIN, "source": "x"},
    ):
        report["outcome"]["origin"] = broken
        assert not validator.is_valid(report), broken


def test_test_failure_report_keeps_the_failing_output_and_nothing_was_pushed():
    report = build_report(shipfakes.ship_run("test_failed"), shipfakes.info())
    assert report["tests"]["passed"] is False
    assert report["tests"]["output_tail"] == ["not ok 1 - responds with hello", "# fail 1"]
    assert report["images"] == []
    assert report["chart"] is None
    assert report["smoke"] == []


def test_smoke_failure_lists_each_check():
    report = build_report(shipfakes.ship_run("smoke"), shipfakes.info())
    checks = [(c["name"], c["status"]) for c in report["smoke"]]
    assert checks == [("GET /", "passed"), ("GET /health", "failed")]


def test_internal_error_keeps_the_traceback_in_the_stage_details():
    report = build_report(shipfakes.ship_run("internal"), shipfakes.info())
    chart = next(s for s in report["stages"] if s["name"] == "chart")
    assert chart["reason"] == "internal error: RuntimeError: boom"
    assert "RuntimeError: boom" in chart["details"]["traceback"]


def test_schema_rejects_a_report_that_lies_about_success():
    report = build_report(shipfakes.ship_run("push"), shipfakes.info())
    report["outcome"]["status"] = "success"
    validator = jsonschema.Draft202012Validator(report_schema())
    assert not validator.is_valid(report)


def test_report_is_deterministic(tmp_path):
    run = shipfakes.ship_run()
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_report(a, build_report(run, shipfakes.info()))
    write_report(b, build_report(run, shipfakes.info()))
    assert a.read_bytes() == b.read_bytes()
