"""Smoke checks after a healthy rollout: the chart's `helm test` pod and the HTTP checks of deploy.yaml.

Every check runs (one failure does not hide the others) and yields one `CheckResult`, so reports and
JUnit get one entry per check. If any failed, `run_checks` raises `SmokeFailed` carrying the results.

The chart's test pod is the `helm test` hook. `deployer ship` creates it while the rollout is watched and
tells it to go once the rollout is healthy (deployer.tools.testpod), through the same `HelmTest`
callback; `helm test` itself runs it when that cannot be done.

A failed `helm test` is explained when the cause is known (`diagnose_helm_test`): the chart's test pod runs
`bash`, and an image without it fails before the script prints anything; helm then says only "pod … failed".
The kubelet's reason is in the test pod's status (read with `read_test_pods` when the caller passes
`test_pods`); without it, an empty test log is the sign.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from blubber.errors import UserError
from deployer.deploy_config import DeployConfig, SmokeCheck
from deployer.errors import SmokeFailed

__all__ = [
    "BASH_HINT",
    "CheckResult",
    "Diagnosis",
    "SmokeReport",
    "diagnose_helm_test",
    "evaluate",
    "read_test_pods",
    "run_checks",
]

# (path, timeout seconds) -> (status, body): one HTTP GET against the deployed service.
HttpGet = Callable[[str, float], tuple[int, bytes]]
# (release, namespace, timeout seconds) -> output; raises a UserError when the test pod fails.
HelmTest = Callable[[str, str, int], str]
# (release, namespace) -> the release's helm test pods as API JSON; read only to explain a failed helm test.
TestPods = Callable[[str, str], Sequence[dict[str, Any]]]

BASH_HINT = (
    "the test pod's image has no bash: set smoke.testImage in .pipeline/deploy.yaml to an image with bash "
    "(e.g. the base image), or smoke.helmTest: false"
)
"""What to do when the chart's test pod cannot start bash."""

# How runc (under containerd or dockerd) says the command is missing: a bare name not found on $PATH, or an
# absolute path that does not exist.
_NO_EXECUTABLE = re.compile(
    r'exec: "(?P<exe>[^"]+)": (?:executable file not found in \$PATH|stat [^:]*: no such file or directory)'
)

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
    hint: str = ""  # what to do about this failure, when its cause is known


class SmokeReport(SmokeFailed):
    """SmokeFailed with every check's result attached (`results`, and `evidence` lines for the summary)."""

    def __init__(self, results: Sequence[CheckResult], release: str, namespace: str) -> None:
        failed = [r for r in results if not r.passed]
        names = ", ".join(r.name for r in failed)
        known = [r.hint for r in failed if r.hint]
        # A check whose cause is known says it in the one-line reason, not only in the evidence.
        causes = "".join(
            f"; {r.name}: {r.message.removeprefix('helm test failed: ')}" for r in failed if r.hint
        )
        super().__init__(
            f"{len(failed)} of {len(results)} smoke checks failed: {names}{causes}",
            hint="; ".join(known) if known else f"helm test {release} --namespace {namespace} --logs",
        )
        self.results = tuple(results)
        self.evidence = [f"{r.name}: {r.message}" for r in failed] + [
            line for r in failed for line in r.output.splitlines()[-20:]
        ]
        self.details = {"smoke": [r.__dict__ for r in results]}


def _excerpt(data: bytes | str) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "…"


@dataclass(frozen=True)
class Diagnosis:
    """Why the helm test pod failed, in words: a `message` for the check, a `hint`, and the kubelet's text."""

    message: str
    hint: str
    evidence: tuple[str, ...] = ()


def read_test_pods(api: Any, namespace: str, release: str, *, core: Any = None) -> list[dict[str, Any]]:
    """The release's helm test pods (annotation `helm.sh/hook: test`, or `deployer/helm-test: test` on
    those a ship created from the hook: deployer.tools.testpod) as API JSON.

    The chart's `before-hook-creation` delete policy keeps a failed test pod until the next `helm test`, so
    its status is still there after helm gave up. `core` replaces `CoreV1Api(api)` (tests).
    """
    from kubernetes import client

    from deployer.tools.kube import call
    from deployer.tools.testpod import ANNOTATION

    response = call(
        f"list the test pods of {release} in {namespace}",
        (core or client.CoreV1Api(api)).list_namespaced_pod,
        namespace,
        label_selector=f"app.kubernetes.io/instance={release}",
        _preload_content=False,
    )
    pods = json.loads(response.data)["items"]
    return [p for p in pods if _is_test_hook((p.get("metadata") or {}).get("annotations") or {}, ANNOTATION)]


def stuck_before_start(pod: dict[str, Any]) -> bool:
    """Whether a test pod that has not started waits for what will not come (an image that cannot be
    pulled, a missing Secret): judged by the rollout's reason table, with its graces (a pull Secret the
    kubelet has not read yet is waited for)."""
    from deployer.rollout.pod import pod_status

    return pod_status(pod, now=datetime.now(UTC)).failure is not None


def _is_test_hook(annotations: dict[str, str], early: str) -> bool:
    hook = annotations.get("helm.sh/hook") or annotations.get(early) or ""
    return "test" in [h.strip() for h in hook.split(",")]


def _missing_executable_hint(exe: str) -> str:
    if exe.rsplit("/", 1)[-1] == "bash":
        return BASH_HINT
    return (
        f"the test pod's image has no {exe}: set smoke.testImage in .pipeline/deploy.yaml to an image with "
        f"{exe}, or smoke.helmTest: false"
    )


def _from_pods(pods: Sequence[dict[str, Any]]) -> Diagnosis | None:
    from deployer.rollout.pod import pod_status
    from deployer.rollout.reasons import IMAGE_PULL_REASONS, START_REASONS

    for pod in pods:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        images = {
            c.get("name"): c.get("image", "")
            for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
        }
        for c in pod_status(pod, now=datetime.now(UTC)).containers:
            image = images.get(c.name, "")
            where = f"pod {meta.get('name', '?')}, container {c.name}"
            kubelet = f"{where}: {c.reason}: {c.message}" if c.message else f"{where}: {c.reason}"
            missing = _NO_EXECUTABLE.search(c.message)
            if missing and c.state in ("waiting", "terminated"):
                exe = missing["exe"]
                return Diagnosis(
                    f"the test pod's image {image} has no {exe}: its container could not start",
                    _missing_executable_hint(exe),
                    (kubelet,),
                )
            if c.state == "terminated" and c.reason in START_REASONS:
                return Diagnosis(
                    f"the test pod's container could not start in image {image} ({c.reason})",
                    "the test pod runs bash as the service's user: set smoke.testImage in "
                    ".pipeline/deploy.yaml to an image where it can (e.g. the base image), or "
                    "smoke.helmTest: false",
                    (kubelet,),
                )
            if c.state == "waiting" and c.reason in IMAGE_PULL_REASONS:
                return Diagnosis(
                    f"the test pod cannot pull its image {image} ({c.reason})",
                    "check smoke.testImage in .pipeline/deploy.yaml: the image must exist in a registry the "
                    "cluster's nodes can pull from",
                    (kubelet,),
                )
    return None


def _silent_test_pod(output: str) -> str | None:
    """The name of a test pod that helm says failed and whose log is empty, else None.

    The chart's test script prints a line for every attempt before it can exit, so a failed pod with no
    log line never ran the script: its command, bash, did not start.
    """
    failed = set(re.findall(r"pod (\S+) failed", output))
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if not line.startswith("POD LOGS: "):
            continue
        pod = line.removeprefix("POD LOGS: ").strip()
        rest = []
        for after in lines[index + 1 :]:
            if after.startswith("POD LOGS: "):
                break
            rest.append(after)
        if pod in failed and not any(r.strip() for r in rest):
            return pod
    return None


def diagnose_helm_test(
    output: str, pods: Sequence[dict[str, Any]] | None = None, *, namespace: str = ""
) -> Diagnosis | None:
    """Explain a failed `helm test` from the test pods' status (`pods`, API JSON) or else helm's `output`.

    None when nothing points at the test pod itself (then the service's answer, in the log, is the story).
    The empty-log inference is used only without the pods' status: with it, a pod that did start (and was,
    say, OOM-killed before its first line) is not blamed on bash.
    """
    if pods:
        return _from_pods(pods)
    silent = _silent_test_pod(output)
    if silent is None:
        return None
    where = f"--namespace {namespace} " if namespace else ""
    return Diagnosis(
        f"the test pod {silent} failed without printing a line: its command (bash) did not start",
        BASH_HINT.replace("has no bash", "probably has no bash")
        + f" (`kubectl {where}describe pod {silent}` shows the kubelet's reason)",
    )


def evaluate(check: SmokeCheck, status: int, body: bytes) -> tuple[bool, str]:
    """Does a response pass `check`? Returns (passed, one-line explanation)."""
    if status != check.status:
        return False, f"GET {check.path}: status {status}, expected {check.status}"
    if check.body is not None and check.body.encode("utf-8") not in body:
        return False, f"GET {check.path}: status {status} but body does not contain {check.body!r}"
    expect = f" and body contains {check.body!r}" if check.body is not None else ""
    return True, f"GET {check.path}: status {status}{expect}"


def _failed_helm_test(
    deploy: DeployConfig, error: UserError, test_pods: TestPods | None
) -> tuple[str, str, str]:
    """(message, output, hint) of a failed helm test, explained when the cause is known."""
    output, notes = error.message, []
    pods: Sequence[dict[str, Any]] | None = None
    if test_pods is not None:
        try:
            pods = test_pods(deploy.release, deploy.namespace)
        except UserError as e:  # the explanation is a bonus: never let it hide the failure itself
            notes.append(f"(could not read the test pod's status: {e.message})")
    found = diagnose_helm_test(output, pods, namespace=deploy.namespace)
    # The kubelet's words go last: reports keep the tail of a check's output.
    if found is None:
        return "helm test failed", "\n".join([output, *notes]), ""
    return f"helm test failed: {found.message}", "\n".join([output, *found.evidence, *notes]), found.hint


def run_checks(
    deploy: DeployConfig,
    *,
    helm_test: HelmTest | None,
    http_get: HttpGet | None,
    test_pods: TestPods | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> list[CheckResult]:
    """Run `helm test` (if enabled) and every HTTP check; raise SmokeReport if any failed.

    The helm test pod and the HTTP checks do not depend on each other, and the pod's life (scheduled,
    started, its exit seen by the kubelet) is most of the stage, so the HTTP checks run while it lives
    (`helm_test` on its own thread; the callers' callbacks must allow that). Each check is timed on its
    own; the results come in a fixed order, helm test first. `test_pods` (optional) reads the test pods'
    status after a failed helm test, to explain it.
    """
    from deployer.background import Background

    pod_check = None
    if deploy.helm_test and helm_test is not None:
        pod_check = Background(
            lambda: _run_helm_test(deploy, helm_test, test_pods, clock), name="smoke-helm-test"
        )
    results: list[CheckResult] = []
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
    if pod_check is not None:
        results.insert(0, pod_check.result())
    if any(not r.passed for r in results):
        raise SmokeReport(results, deploy.release, deploy.namespace)
    return results


def _run_helm_test(
    deploy: DeployConfig, helm_test: HelmTest, test_pods: TestPods | None, clock: Callable[[], float]
) -> CheckResult:
    start = clock()
    try:
        output = helm_test(deploy.release, deploy.namespace, deploy.timeouts.smoke)
        return CheckResult("helm-test", "helm-test", True, clock() - start, "helm test passed", output)
    except UserError as e:
        message, output, hint = _failed_helm_test(deploy, e, test_pods)
        return CheckResult("helm-test", "helm-test", False, clock() - start, message, output, hint)
