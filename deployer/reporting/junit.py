"""JUnit XML for CI dashboards, built from the workflow's results.

Three suites, so a dashboard shows what failed without opening the log:

- ``<service>.test-variant``: one test case for the test variant's run (failure = the tests failed,
  error = the test image could not even be built/run, skipped = an earlier stage failed);
- ``<service>.smoke``: one test case per smoke check (skipped as one case when smoke did not run);
- ``<service>.ship``: one test case per stage, so a rollout or push failure is visible too
  (``<service>.promote`` for `deployer promote`, which has no test-variant suite).

Reads the same `StepResult`s as the JSON report (`details["tests"]`, `details["smoke"]`); every text
is masked through `deployer.reporting.redact` before it is written.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deployer.errors import ExitCode
from deployer.reporting.origin_line import describe
from deployer.reporting.redact import redact
from deployer.workflow import Status, StepResult, WorkflowRun

__all__ = ["build_junit", "write_junit"]


def _case(suite: ET.Element, classname: str, name: str, seconds: float) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{seconds:.3f}")


def _outcome(case: ET.Element, tag: str, message: str, kind: str, text: str = "") -> None:
    node = ET.SubElement(case, tag, message=redact(message), type=kind)
    if text:
        node.text = redact(text)


def _system_out(case: ET.Element, lines: list[str]) -> None:
    if lines:
        ET.SubElement(case, "system-out").text = redact("\n".join(lines))


def _finish(suite: ET.Element) -> ET.Element:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    for tag in ("failure", "error", "skipped"):
        count = sum(1 for c in cases if c.find(tag) is not None)
        suite.set(f"{tag}s" if tag != "skipped" else "skipped", str(count))
    suite.set("time", f"{sum(float(c.get('time', '0')) for c in cases):.3f}")
    return suite


def _test_variant_suite(service: str, result: StepResult | None) -> ET.Element:
    name = f"{service}.test-variant"
    suite = ET.Element("testsuite", name=name)
    tests: Mapping[str, Any] = (result.details.get("tests") if result is not None else None) or {}
    variant = str(tests.get("variant", "test"))
    case = _case(suite, name, f"{variant} variant", result.duration if result is not None else 0.0)
    tail = [str(line) for line in tests.get("output_tail", [])]
    if result is None or result.status in (Status.NOT_RUN, Status.SKIPPED):
        why = result.reason if result is not None else "no test stage in this run"
        ET.SubElement(case, "skipped", message=redact(why or "skipped"))
    elif result.status is Status.SUCCESS:
        _system_out(case, tail)
    elif result.exit_code == ExitCode.TEST_FAILED:
        # The evidence is the failing tests' own lines; the plain tail often holds only the totals.
        evidence = list(result.evidence) or tail
        _outcome(case, "failure", result.reason, "TestVariantFailed", "\n".join(evidence))
        _system_out(case, tail)
    else:  # the tests never got to run: image build failed, interrupted, internal error, ...
        _outcome(case, "error", result.reason, ExitCode(result.exit_code).name, "\n".join(result.evidence))
    return _finish(suite)


def _smoke_suite(service: str, result: StepResult | None) -> ET.Element:
    name = f"{service}.smoke"
    suite = ET.Element("testsuite", name=name)
    checks = list((result.details.get("smoke") if result is not None else None) or [])
    if not checks:
        case = _case(suite, name, "smoke checks", result.duration if result is not None else 0.0)
        if result is not None and result.is_failed:
            kind = ExitCode(result.exit_code).name
            _outcome(case, "error", result.reason, kind, "\n".join(result.evidence))
        else:
            why = (result.reason if result is not None else "") or "smoke checks did not run"
            ET.SubElement(case, "skipped", message=redact(why))
        return _finish(suite)
    for check in checks:
        case = _case(suite, name, str(check["name"]), float(check.get("duration_seconds", 0.0)))
        status = check.get("status")
        detail = str(check.get("detail", ""))
        if status == "failed":
            _outcome(case, "failure", detail or "smoke check failed", str(check.get("kind", "smoke")), detail)
        elif status == "skipped":
            ET.SubElement(case, "skipped", message=redact(detail or "skipped"))
        else:
            _system_out(case, [detail] if detail else [])
    return _finish(suite)


def _stages_suite(service: str, run: WorkflowRun, command: str) -> ET.Element:
    name = f"{service}.{command}"
    suite = ET.Element("testsuite", name=name)
    for result in run.results:
        case = _case(suite, name, result.name, result.duration)
        if result.is_failed:
            origin = result.details.get("origin")
            config = [f"config: {describe(origin)}"] if origin else []
            body = "\n".join([*result.evidence, *([f"hint: {result.hint}"] if result.hint else []), *config])
            message = f"{result.reason}; {config[0]}" if config else result.reason
            _outcome(case, "failure", message, ExitCode(result.exit_code).name, body)
        elif result.status in (Status.NOT_RUN, Status.SKIPPED):
            ET.SubElement(case, "skipped", message=redact(result.reason or result.status.value))
    return _finish(suite)


def build_junit(
    run: WorkflowRun,
    service: str,
    *,
    test_stage: str = "test",
    smoke_stage: str = "smoke",
    command: str = "ship",
) -> ET.ElementTree:
    """The JUnit document for `run` of `service` by `deployer <command>` (a promote has no test stage, so
    no test-variant suite; its stages suite is `<service>.promote`)."""
    root = ET.Element("testsuites", name=f"deployer {command} {service}")
    has_tests = command == "ship" or run.result(test_stage) is not None
    suites = [
        *([_test_variant_suite(service, run.result(test_stage))] if has_tests else []),
        _smoke_suite(service, run.result(smoke_stage)),
        _stages_suite(service, run, command),
    ]
    root.extend(suites)
    for attr in ("tests", "failures", "errors", "skipped"):
        root.set(attr, str(sum(int(s.get(attr, "0")) for s in suites)))
    root.set("time", f"{run.duration:.3f}")
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(path: Path, run: WorkflowRun, service: str, **options: str) -> None:
    """Write the JUnit XML for `run` to `path`, atomically (`options`: those of `build_junit`)."""
    tree = build_junit(run, service, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tree.write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)
