"""Smoke checks after a healthy rollout: the chart's `helm test` pod and the HTTP checks of deploy.yaml.

Every check runs (one failure does not hide the others) and yields one `CheckResult`, so reports and
JUnit get one entry per check. If any failed, `run_checks` raises `SmokeFailed` carrying the results.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from blubber.errors import UserError
from deployer.deploy_config import DeployConfig, SmokeCheck
from deployer.errors import SmokeFailed

__all__ = ["CheckResult", "SmokeReport", "evaluate", "run_checks"]

# (path, timeout seconds) -> (status, body): one HTTP GET against the deployed service.
HttpGet = Callable[[str, float], tuple[int, bytes]]
# (release, namespace, timeout seconds) -> output; raises a UserError when the test pod fails.
HelmTest = Callable[[str, str, int], str]

EXCERPT = 400  # characters of a body or log shown in a result


@dataclass(frozen=True)
class CheckResult:
    """One smoke check's outcome. `kind` is "helm-test" or "http"."""

    name: str
    kind: str
    passed: bool
    seconds: float
    message: str
    output: str = field(default="", repr=False)


class SmokeReport(SmokeFailed):
    """SmokeFailed with every check's result attached (`results`, and `evidence` lines for the summary)."""

    def __init__(self, results: Sequence[CheckResult], release: str, namespace: str) -> None:
        failed = [r for r in results if not r.passed]
        names = ", ".join(r.name for r in failed)
        super().__init__(
            f"{len(failed)} of {len(results)} smoke checks failed: {names}",
            hint=f"helm test {release} --namespace {namespace} --logs",
        )
        self.results = tuple(results)
        self.evidence = [f"{r.name}: {r.message}" for r in failed] + [
            line for r in failed for line in r.output.splitlines()[-20:]
        ]
        self.details = {"smoke": [r.__dict__ for r in results]}


def _excerpt(data: bytes | str) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "…"


def evaluate(check: SmokeCheck, status: int, body: bytes) -> tuple[bool, str]:
    """Does a response pass `check`? Returns (passed, one-line explanation)."""
    if status != check.status:
        return False, f"GET {check.path}: status {status}, expected {check.status}"
    if check.body is not None and check.body.encode("utf-8") not in body:
        return False, f"GET {check.path}: status {status} but body does not contain {check.body!r}"
    expect = f" and body contains {check.body!r}" if check.body is not None else ""
    return True, f"GET {check.path}: status {status}{expect}"


def run_checks(
    deploy: DeployConfig,
    *,
    helm_test: HelmTest | None,
    http_get: HttpGet | None,
    clock: Callable[[], float] = time.monotonic,
) -> list[CheckResult]:
    """Run `helm test` (if enabled) then every HTTP check; raise SmokeReport if any failed."""
    results: list[CheckResult] = []
    if deploy.helm_test and helm_test is not None:
        start = clock()
        try:
            output = helm_test(deploy.release, deploy.namespace, deploy.timeouts.smoke)
            results.append(
                CheckResult("helm-test", "helm-test", True, clock() - start, "helm test passed", output)
            )
        except UserError as e:
            results.append(
                CheckResult("helm-test", "helm-test", False, clock() - start, "helm test failed", e.message)
            )
    for check in deploy.smoke_checks:
        if http_get is None:
            break
        start = clock()
        try:
            status, body = http_get(check.path, float(deploy.timeouts.smoke))
            passed, message = evaluate(check, status, body)
            output = _excerpt(body)
        except UserError as e:
            passed, message, output = False, f"GET {check.path}: {e.message}", ""
        results.append(CheckResult(check.name, "http", passed, clock() - start, message, output))
    if any(not r.passed for r in results):
        raise SmokeReport(results, deploy.release, deploy.namespace)
    return results
