"""The Kubernetes client edge: build an `ApiClient` from a kubeconfig, and turn API failures into our errors.

This is the only module that catches `kubernetes.client.ApiException` (and the urllib3 connection errors
under it) and decides what it means for a user. Everything else calls through `call()` or `api_errors()`,
so a 403 reads the same wherever it happens, and the original exception stays chained (`raise … from`).

A `410 Gone` on a watch is not a user error: it means "list again". It becomes `WatchExpired`, which the
rollout watcher catches and resumes from.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import urllib3.exceptions
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from deployer.errors import DeployFailed, EnvironmentMissing
from deployer.tools.apiserver import DEFAULT_KUBECONFIG, kubeconfig_path

__all__ = [
    "DEFAULT_KUBECONFIG",
    "KubeForbidden",
    "KubeNotFound",
    "KubeRequestFailed",
    "KubeUnreachable",
    "WatchExpired",
    "api_errors",
    "call",
    "can_i",
    "load_api",
    "pod_log",
]

"""The local staging cluster that `e2e/cluster up` writes; the default target."""

_T = TypeVar("_T")


class KubeRequestFailed(DeployFailed):
    """The API server answered a request with an error we cannot work around."""

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class KubeNotFound(KubeRequestFailed):
    """The object (or namespace) asked for does not exist (404)."""


class KubeForbidden(KubeRequestFailed):
    """The credentials in the kubeconfig were refused (401) or lack a permission (403)."""


class KubeUnreachable(EnvironmentMissing):
    """No API server answered: wrong address, cluster down, or a bad kubeconfig."""


class WatchExpired(Exception):
    """A watch's resourceVersion is too old (410 Gone): list again and watch from the new version.

    Internal control flow for the watcher, not a user error.
    """


def load_api(
    kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None
) -> client.ApiClient:
    """Return an `ApiClient` for `context` in `kubeconfig` (default: the local staging cluster).

    `kubeconfig=None` uses `$KUBECONFIG` when set, else `DEFAULT_KUBECONFIG`. Raises `KubeUnreachable`
    when the file is missing or unusable, with a hint on how to get one.
    """
    path = kubeconfig_path(kubeconfig)
    hint = "start the local cluster with `e2e/cluster up`, or pass --kubeconfig/--context for another one"
    if not path.is_file():
        raise KubeUnreachable(f"kubeconfig {path} does not exist", hint=hint)
    configuration = client.Configuration()
    try:
        config.load_kube_config(
            config_file=str(path), context=context, client_configuration=configuration, persist_config=False
        )
    except (ConfigException, OSError, ValueError) as e:
        where = f" (context {context!r})" if context else ""
        raise KubeUnreachable(f"cannot use kubeconfig {path}{where}: {e}", hint=hint) from e
    return client.ApiClient(configuration)


def _translate(e: ApiException | urllib3.exceptions.HTTPError, what: str) -> Exception:
    """Map one client exception to our error for the action `what` (e.g. "list pods in ns x")."""
    if isinstance(e, urllib3.exceptions.HTTPError):
        return KubeUnreachable(
            f"cannot reach the Kubernetes API to {what}: {e}",
            hint="check that the cluster is up (`e2e/cluster status`) and the kubeconfig points at it",
        )
    status = e.status or 0
    detail = (e.reason or "").strip()
    if status == 410:
        return WatchExpired(f"{what}: {detail or 'resource version too old'}")
    if status == 404:
        return KubeNotFound(f"cannot {what}: not found", status=status)
    if status in (401, 403):
        return KubeForbidden(
            f"cannot {what}: {detail or 'forbidden'} ({status})",
            status=status,
            hint="the kubeconfig's user lacks permission for this; check its RBAC role bindings",
        )
    if status == 0:
        return KubeUnreachable(f"cannot reach the Kubernetes API to {what}: {detail}")
    return KubeRequestFailed(f"cannot {what}: {detail} ({status})", status=status)


@contextlib.contextmanager
def api_errors(what: str) -> Iterator[None]:
    """Run the body and re-raise client failures as our errors, chained; `what` names the action."""
    try:
        yield
    except (ApiException, urllib3.exceptions.HTTPError) as e:
        raise _translate(e, what) from e


def call(what: str, fn: Callable[..., _T], *args: object, **kwargs: object) -> _T:
    """Call one client method, translating its failures (see `api_errors`)."""
    with api_errors(what):
        return fn(*args, **kwargs)


def can_i(api: client.ApiClient, verb: str, resource: str, namespace: str | None, group: str = "") -> bool:
    """The API server's own RBAC answer for this identity (a SelfSubjectAccessReview); `resource` may
    name a subresource (`pods/attach`)."""
    name, _, sub = resource.partition("/")
    attributes = client.V1ResourceAttributes(
        verb=verb, group=group, resource=name, subresource=sub or None, namespace=namespace
    )
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes)
    )
    where = f" in {namespace}" if namespace else ""
    answer = call(
        f"ask whether this identity may {verb} {resource}{where}",
        client.AuthorizationV1Api(api).create_self_subject_access_review,
        review,
    )
    return bool(answer.status and answer.status.allowed)


def pod_log(core: client.CoreV1Api, pod: str, namespace: str, **kwargs: Any) -> str:
    """A container's log as the kubelet kept it (kwargs: container, previous, tail_lines, ...).

    Read raw: the client "deserializes" a log that happens to be one JSON document into a dict and
    returns its Python repr (single quotes), so an app logging JSON would show mangled lines.
    """
    with api_errors(f"read the log of {pod}"):
        resp = core.read_namespaced_pod_log(pod, namespace, _preload_content=False, **kwargs)
        return str(resp.data.decode("utf-8", errors="replace"))
