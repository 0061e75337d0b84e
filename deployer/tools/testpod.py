"""The chart's `helm test` pods, created while the rollout is watched and told to go once it is healthy.

Why (issue 14 item 3, smoke stage ≤ 1.5 s): `helm test` creates its pod only when called, and waits for
the pod's phase. On node-hello (local cluster, load ~6) that was 3.0-3.4 s, of which the request takes
0.1-0.2 s: the pod's sandbox (network, pause container) and bash's start come before it, about 1.3 s;
after the script exits, the kubelet reports the container's exit at its next relist (every second), and
the pod's phase only about 1.4 s later again, once the sandbox is torn down. Here:

- `prepare`, right after `helm upgrade`: the release's test hook pods (`helm get hooks`, as helm would
  create them) are created, a previous run's pod of the same name deleted first (helm's
  `before-hook-creation`), with stdin open and `TEST_AWAIT_GO_SECONDS` set. The chart's script then waits
  on stdin for a line `go` before its request: the pod starts while the rollout is watched, and the
  request is still made only after the rollout is healthy, so it never reaches the old version.
- `EarlyTestPods.run`, once the rollout is healthy: attach to each pod, write `go`, read its output until
  it exits. The verdict is the container's exit code in the pod's status: with `restartPolicy: Never` and
  one container, exit 0 is what makes helm's verdict, the phase, `Succeeded`; the phase follows later.
- `EarlyTestPods.discard`: delete the pods that never got a go (a failed rollout, an abandoned ship).

Only a chart whose test hooks are all single-container Pods with `restartPolicy: Never` that declare
`TEST_AWAIT_GO_SECONDS` is run this way; `prepare` returns why not otherwise, and the caller runs
`helm test`. The pods carry `ANNOTATION` instead of `helm.sh/hook`: the rollout watch judges helm hook
pods as part of the rollout, and a test pod that cannot start is the smoke stage's failure, not the
rollout's. A later `helm test` replaces them by name, as it replaces its own.

The pods are watched (never polled) through an API client of their own: `kubernetes.stream` swaps a
client's transport while it opens a WebSocket, and the HTTP smoke checks open port-forwards on the ship's
client meanwhile. Never prints.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from deployer.errors import DeployFailed
from deployer.tools.kube import KubeForbidden, KubeNotFound, WatchExpired, api_errors, call, can_i, pod_log

__all__ = ["ANNOTATION", "AWAIT_GO", "EarlyTestPods", "early_manifests", "prepare"]

AWAIT_GO = "TEST_AWAIT_GO_SECONDS"
"""The test container's variable: seconds to wait on stdin for `go` (0, the chart's value: no wait)."""
ANNOTATION = "deployer/helm-test"
"""Set on a test pod deployer created from the chart's hook; its value is the hook's `helm.sh/hook`."""

_HOOK = "helm.sh/hook"
_DELETE_TIMEOUT = 30.0  # a previous test pod being deleted (a running `helm test`'s pod has its grace)
Pod = dict[str, Any]


def early_manifests(hooks: str, namespace: str, wait_seconds: int) -> list[Pod] | str:
    """The pods to create from the release's hook manifests (`helm get hooks`), or why they cannot be
    run early. Pure. Hooks that are not tests (pre-install, …) are left to helm."""
    tests = []
    for doc in yaml.safe_load_all(hooks):
        if not isinstance(doc, dict):
            continue
        if "test" not in [h.strip() for h in str(_annotations(doc).get(_HOOK, "")).split(",")]:
            continue
        tests.append(doc)
    if not tests:
        return "the chart has no test hook"
    pods = []
    for doc in tests:
        name = (doc.get("metadata") or {}).get("name", "?")
        spec = doc.get("spec") or {}
        containers = spec.get("containers") or []
        if doc.get("kind") != "Pod" or spec.get("restartPolicy") != "Never" or len(containers) != 1:
            return f"test hook {name} is not a one-container Pod with restartPolicy Never"
        env = containers[0].get("env") or []
        if not any(e.get("name") == AWAIT_GO for e in env):
            return f"test hook {name} does not wait for a go signal ({AWAIT_GO})"
        pod = copy.deepcopy(doc)
        meta = pod["metadata"]
        meta["namespace"] = namespace
        kept = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith(_HOOK)}
        meta["annotations"] = kept | {ANNOTATION: _annotations(doc)[_HOOK]}
        container = pod["spec"]["containers"][0]
        container["stdin"] = True
        container["stdinOnce"] = True  # the go line is written once; then stdin closes
        container["env"] = [
            {"name": AWAIT_GO, "value": str(wait_seconds)} if e.get("name") == AWAIT_GO else e for e in env
        ]
        pods.append(pod)
    return pods


def _annotations(pod: Pod) -> dict[str, str]:
    return (pod.get("metadata") or {}).get("annotations") or {}


def prepare(
    api: client.ApiClient,
    namespace: str,
    hooks: str,
    *,
    wait_seconds: int,
    cannot_start: Callable[[Pod], bool] | None = None,
) -> EarlyTestPods | str:
    """Create the release's test pods, waiting for go; or say why they are left to `helm test`.

    `cannot_start(pod)`: the pod's container waits for what will not come (an image that cannot be
    pulled, a missing Secret): its run fails then instead of waiting out the smoke timeout."""
    pods = early_manifests(hooks, namespace, wait_seconds)
    if isinstance(pods, str):
        return pods
    own = client.ApiClient(api.configuration)
    if not can_i(own, "get", "pods/attach", namespace):
        return "this identity may not attach to pods (pods/attach get)"
    core = client.CoreV1Api(own)
    for pod in pods:
        _replace(core, namespace, pod)
    return EarlyTestPods(own, namespace, [p["metadata"]["name"] for p in pods], cannot_start=cannot_start)


def _replace(core: client.CoreV1Api, namespace: str, pod: Pod) -> None:
    """helm's `before-hook-creation`: delete the pod of that name, wait until it is gone, create."""
    name = pod["metadata"]["name"]
    try:
        with api_errors(f"delete the previous test pod {name} in {namespace}"):
            core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    except KubeNotFound:
        pass
    else:
        gone = _watch_pod(core, namespace, name, lambda p: p is None, time.monotonic() + _DELETE_TIMEOUT)
        if gone is not None:
            raise DeployFailed(
                f"the previous test pod {name} in {namespace} was not deleted within {_DELETE_TIMEOUT:.0f}s",
                hint=f"kubectl --namespace {namespace} get pod {name}",
            )
    call(f"create the test pod {name} in {namespace}", core.create_namespaced_pod, namespace, pod)


def _watch_pod(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    done: Callable[[Pod | None], bool],
    deadline: float,
) -> Pod | None:
    """The pod as JSON once `done(pod)` (None: the pod does not exist), or as last seen at `deadline`.
    Listed once, then watched from that list's resourceVersion (listed again if it expired)."""
    serialize = core.api_client.sanitize_for_serialization
    selector = f"metadata.name={name}"
    what = f"watch the test pod {name} in {namespace}"
    while True:
        listed = call(what, core.list_namespaced_pod, namespace, field_selector=selector)
        pod = serialize(listed.items[0]) if listed.items else None
        if done(pod):
            return pod
        version = listed.metadata.resource_version
        try:
            while (left := deadline - time.monotonic()) > 0:
                stream_ = watch.Watch()
                with api_errors(what):
                    for event in stream_.stream(
                        core.list_namespaced_pod,
                        namespace,
                        field_selector=selector,
                        resource_version=version,
                        timeout_seconds=max(1, int(left + 0.999)),
                    ):
                        if event["type"] == "ERROR":  # the watch ended on the server's side: list again
                            raise WatchExpired(str(event.get("raw_object") or event["object"]))
                        version = event["object"].metadata.resource_version
                        pod = None if event["type"] == "DELETED" else serialize(event["object"])
                        if done(pod) or time.monotonic() >= deadline:
                            stream_.stop()
                            return pod
            return pod
        except WatchExpired:
            continue


def _container(pod: Pod | None) -> tuple[str, dict[str, Any]]:
    """(name, state) of the pod's one container; state {} before the kubelet reported it."""
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or [{}]
    return statuses[0].get("name", ""), statuses[0].get("state") or {}


def _started(pod: Pod | None) -> bool:
    _, state = _container(pod)
    return pod is None or "running" in state or "terminated" in state


def _exited(pod: Pod | None) -> bool:
    return pod is None or "terminated" in _container(pod)[1]


class EarlyTestPods:
    """Test pods created by `prepare`, each waiting for its go."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        names: Sequence[str],
        *,
        cannot_start: Callable[[Pod], bool] | None = None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.names = tuple(names)
        self._cannot_start = cannot_start or (lambda pod: False)
        self._told: set[str] = set()
        # where each run's time went, one line per pod told to go (shown as progress: bench/smoke.py)
        self.timings: list[str] = []

    def run(self, timeout: float) -> str:
        """Tell each pod to go, one after another, as `helm test` runs them; their output.

        Raises DeployFailed for the first pod that fails, worded like `helm test --logs` (`pod X failed`,
        then `POD LOGS: X` and its log), also for a pod that could not start its container; the pods'
        status says why (`deployer.smoke.read_test_pods`). Raises KubeForbidden when attaching is refused.
        """
        deadline = time.monotonic() + timeout
        return "\n".join(self._run_one(name, deadline) for name in self.names)

    def _run_one(self, name: str, deadline: float) -> str:
        core = client.CoreV1Api(self.api)
        began = time.monotonic()
        pod = _watch_pod(core, self.namespace, name, lambda p: _started(p) or self._cannot_start(p), deadline)
        went = time.monotonic()
        self._told.add(name)  # from here on the pod is this run's evidence, kept like helm keeps it
        if pod is None:
            raise self._failed(name, "was deleted before its go (another `helm test`?)")
        if "terminated" in (state := _container(pod)[1]):
            ended = state["terminated"]
            why = f"exited {ended.get('exitCode')} before its go ({ended.get('reason') or 'no reason given'})"
            raise self._failed(name, why, self._log(core, name, ""))
        if "running" not in _container(pod)[1]:
            if self._cannot_start(pod):
                raise self._failed(name, f"cannot start{_waiting(pod)}")
            raise self._failed(name, f"did not start within the smoke timeout{_waiting(pod)}")
        output = self._go(core, name, deadline)
        ended = time.monotonic()
        pod = _watch_pod(core, self.namespace, name, _exited, deadline)
        self.timings.append(
            f"test pod {name}: running {went - began:.2f}s after the smoke step asked; its output ended "
            f"{ended - went:.2f}s after its go, its exit was reported {time.monotonic() - ended:.2f}s later"
        )
        container, state = _container(pod)
        if pod is None:
            raise self._failed(name, "was deleted while it ran (another `helm test`?)", output)
        if "terminated" not in state:
            raise self._failed(name, "did not finish within the smoke timeout", output)
        code = state["terminated"].get("exitCode")
        if code != 0:
            raise self._failed(name, f"container {container} exited {code}", self._log(core, name, output))
        return f"POD LOGS: {name}\n{output}"

    def _go(self, core: client.CoreV1Api, name: str, deadline: float) -> str:
        """Write `go` on the pod's stdin; what it prints until it exits (or the deadline)."""
        what = f"attach to the test pod {name} in {self.namespace}"
        try:
            session = stream(
                core.connect_get_namespaced_pod_attach,
                name,
                self.namespace,
                stdin=True,
                stdout=True,
                stderr=True,
                tty=False,
                _preload_content=False,
            )
        except ApiException as e:
            # The WebSocket handshake's refusal comes as status 0 with the HTTP status in its reason.
            if e.status in (401, 403) or " 403 " in f" {e.reason} ":
                raise KubeForbidden(f"cannot {what}: forbidden", status=403) from e
            with api_errors(what):
                raise
        output: list[str] = []
        try:
            session.write_stdin("go\n")
            while session.is_open() and (left := deadline - time.monotonic()) > 0:
                session.update(timeout=min(1.0, left))
                output += [session.read_stdout() or "", session.read_stderr() or ""]
        finally:
            session.close()
        return "".join(output)

    def _log(self, core: client.CoreV1Api, name: str, seen: str) -> str:
        """The pod's log as the kubelet kept it (what the attach saw when it cannot be read)."""
        try:
            return pod_log(core, name, self.namespace)
        except DeployFailed:
            return seen

    def _failed(self, name: str, why: str, log: str = "") -> DeployFailed:
        return DeployFailed(
            f"pod {name} failed: {why}\nPOD LOGS: {name}\n{log}".rstrip("\n"),
            hint=f"kubectl --namespace {self.namespace} describe pod {name}",
        )

    def discard(self) -> None:
        """Delete the pods never told to go (they would wait out TEST_AWAIT_GO_SECONDS); best effort."""
        core = client.CoreV1Api(self.api)
        for name in self.names:
            if name in self._told:
                continue
            try:
                core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
            except Exception:  # noqa: BLE001,S112 - a leftover pod fails by itself; a clean-up never fails a ship
                continue


def _waiting(pod: Pod) -> str:
    waiting = _container(pod)[1].get("waiting") or {}
    reason = waiting.get("reason")
    return f" ({reason}: {waiting.get('message', '')})".replace(": )", ")") if reason else ""
