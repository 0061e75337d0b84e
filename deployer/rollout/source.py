"""The watcher's seam to the cluster: list, watch from a resourceVersion, read logs.

`Source` is the protocol the watcher needs; `ApiSource` implements it with the official client for one
namespace. Objects come back as plain dicts (the API's JSON), which is what the status functions take.
Client failures are translated by `deployer.tools.kube` (410 Gone becomes `WatchExpired`). Unit tests put a
scripted `Source` here; the e2e tests run `ApiSource` against the real cluster.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from kubernetes import client, watch

from deployer.rollout._obj import Obj
from deployer.tools.kube import api_errors, pod_log

__all__ = ["KINDS", "ApiSource", "Source", "clock_offset"]

KINDS = ("deployment", "replicaset", "pod", "event")
"""What the watcher follows, in the order it starts the streams."""


class Source(Protocol):
    clock_offset: float
    """Seconds the API server's clock is ahead of ours (0 when within the measure's error), so the watcher
    can compare the API's timestamps with its own time."""

    def list(self, kind: str) -> tuple[list[Obj], str]:
        """All objects of `kind` the rollout may care about, and the list's resourceVersion."""
        ...

    def watch(self, kind: str, resource_version: str, timeout: int) -> Iterator[tuple[str, Obj]]:
        """(type, object) changes after `resource_version` for up to `timeout` s; raises WatchExpired on 410.

        Types are ADDED, MODIFIED, DELETED and BOOKMARK (an object with only metadata.resourceVersion).
        """
        ...

    def logs(self, pod: str, container: str, *, previous: bool, tail: int) -> list[str]:
        """The last `tail` lines of a container's log (of its previous run if `previous`)."""
        ...

    def stop(self) -> None:
        """Make running `watch` iterators end soon (called from another thread)."""
        ...


class ApiSource:
    """`Source` over the official client for one namespace and one Deployment.

    `pod_selector` narrows the pod and ReplicaSet streams; None follows the whole namespace, which also
    catches helm hook and test pods (they do not carry the Deployment's labels).
    """

    def __init__(
        self, api: client.ApiClient, namespace: str, deployment: str, pod_selector: str | None = None
    ) -> None:
        self.namespace = namespace
        self._core = client.CoreV1Api(api)
        apps = client.AppsV1Api(api)
        selector = {"label_selector": pod_selector} if pod_selector else {}
        self._calls: dict[str, tuple[Callable[..., Any], dict[str, str]]] = {
            "deployment": (
                apps.list_namespaced_deployment,
                {"field_selector": f"metadata.name={deployment}"},
            ),
            "replicaset": (apps.list_namespaced_replica_set, selector),
            "pod": (self._core.list_namespaced_pod, selector),
            "event": (self._core.list_namespaced_event, {}),
        }
        self._watches: set[watch.Watch] = set()
        self._lock = threading.Lock()
        self._stopped = False
        self.clock_offset = 0.0

    def list(self, kind: str) -> tuple[list[Obj], str]:
        fn, kwargs = self._calls[kind]
        with api_errors(f"list {kind}s in namespace {self.namespace}"):
            # Raw JSON, not client models: the status functions read the API's own field names.
            resp = fn(self.namespace, _preload_content=False, **kwargs)
            body = json.loads(resp.data)
        self.clock_offset = clock_offset(resp.headers.get("Date"), datetime.now(UTC))
        return body.get("items") or [], body["metadata"]["resourceVersion"]

    def watch(self, kind: str, resource_version: str, timeout: int) -> Iterator[tuple[str, Obj]]:
        fn, kwargs = self._calls[kind]

        # `Watch.stream` deserializes into client models unless it cannot tell the return type; a wrapper
        # without annotations or docstring hides it, so events keep their raw dicts and ERROR events
        # (410 Gone) still become ApiException, which api_errors turns into WatchExpired.
        def raw(*args: Any, **kw: Any) -> Any:
            return fn(*args, **kw)

        w = watch.Watch()
        with self._lock:
            if self._stopped:
                return
            self._watches.add(w)
        try:
            with api_errors(f"watch {kind}s in namespace {self.namespace}"):
                for event in w.stream(
                    raw,
                    self.namespace,
                    resource_version=resource_version,
                    timeout_seconds=timeout,
                    allow_watch_bookmarks=True,
                    # The server ends the watch after `timeout`; the read timeout only catches a dead link.
                    _request_timeout=(10, timeout + 15),
                    **kwargs,
                ):
                    yield event["type"], event["raw_object"]
        finally:
            with self._lock:
                self._watches.discard(w)

    def logs(self, pod: str, container: str, *, previous: bool, tail: int) -> list[str]:
        with api_errors(f"read the log of {pod}/{container}"):
            text = pod_log(
                self._core,
                pod,
                self.namespace,
                container=container,
                previous=previous,
                tail_lines=tail,
                _request_timeout=10,
            )
        return text.splitlines()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            for w in self._watches:
                w.stop()


def clock_offset(date_header: str | None, received: datetime, *, noise: float = 2.0) -> float:
    """Seconds the server's clock (its HTTP `Date`, whole seconds) is ahead of ours at `received`.

    Within `noise` it is 0: the header's second truncation and the response's travel are not skew.
    """
    if not date_header:
        return 0.0
    try:
        server = parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return 0.0
    if server.tzinfo is None:
        return 0.0
    # The header truncates to the second: the server's time was within [server, server + 1 s).
    offset = (server + timedelta(seconds=0.5) - received).total_seconds()
    return offset if abs(offset) >= noise else 0.0
