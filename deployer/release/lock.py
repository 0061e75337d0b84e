"""One ship at a time per release: a Kubernetes Lease in the release's namespace.

Why a Lease (coordination.k8s.io/v1) and not helm's own pending-* state:

- helm's pending state only exists *during* `helm upgrade`; two ships racing through build/push/render
  would both reach helm, and the loser gets an opaque "another operation is in progress" after minutes of
  work. The Lease is taken before the deploy stage starts and held through rollout watch and smoke checks.
- helm's pending state cannot tell a live run from a dead one. The Lease can: the holder renews it every
  `duration/3` seconds, so a Lease not renewed for `duration` seconds belongs to a dead run and is taken
  over. That is what makes `Helm.recover_pending` safe: whoever holds the Lease knows any pending-*
  release state is left over from a run that died.
- Acquisition is atomic on the API server: `create` fails with 409 when the Lease exists, and a takeover is
  an `update` carrying the resourceVersion that was read, so two takers cannot both win.

The Lease is named `deployer-ship-<release>`; its holderIdentity says who holds it (user@host pid), and
annotations say what runs (command) and since when, so the refusal message can name the other run.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from kubernetes import client

from deployer.errors import DeployFailed
from deployer.tools.kube import KubeForbidden, KubeNotFound, KubeRequestFailed, call

__all__ = ["LOCK_PREFIX", "ReleaseLock", "ShipInProgress", "default_holder"]

LOCK_PREFIX = "deployer-ship-"
MANAGED_BY = {"app.kubernetes.io/managed-by": "deployer"}


class ShipInProgress(DeployFailed):
    """Another ship of the same release holds the lock."""


def default_holder() -> str:
    """`user@host pid=N id=xxxxxxxx`: unique per process and readable in the refusal message."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()} pid={os.getpid()} id={uuid.uuid4().hex[:8]}"


def _now() -> datetime:
    # MicroTime needs a fractional part when parsed by the API server; .isoformat() drops a zero one.
    now = datetime.now(UTC)
    return now if now.microsecond else now.replace(microsecond=1)


class ReleaseLock:
    """A renewed Lease guarding one release. Use as a context manager around deploy → watch → smoke."""

    def __init__(
        self,
        api: client.ApiClient | None,
        namespace: str,
        release: str,
        *,
        holder: str | None = None,
        duration: int = 60,
        command: str = "deployer ship",
        coordination: Any = None,
        core: Any = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.namespace = namespace
        self.release_name = release
        self.name = (LOCK_PREFIX + release)[:63].rstrip("-")
        self.holder = holder or default_holder()
        self.duration = duration
        self.command = command
        self._coord = coordination or client.CoordinationV1Api(api)
        self._core = core or client.CoreV1Api(api)
        self._clock = clock
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._version: str | None = None
        self.renew_error: BaseException | None = None

    # -- acquire / renew / release ------------------------------------------------------------------

    def acquire(self) -> None:
        """Take the Lease, or raise ShipInProgress naming the live holder. Creates the namespace if needed."""
        self._ensure_namespace()
        now = self._clock()
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=self.name,
                namespace=self.namespace,
                labels={**MANAGED_BY, "deployer/release": self.release_name},
                annotations={"deployer/command": self.command, "deployer/started": now.isoformat()},
            ),
            spec=client.V1LeaseSpec(
                holder_identity=self.holder,
                lease_duration_seconds=self.duration,
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            ),
        )
        try:
            created = call(
                f"create lease {self.name}", self._coord.create_namespaced_lease, self.namespace, body
            )
            self._version = created.metadata.resource_version
            return
        except KubeRequestFailed as e:
            if e.status != 409:
                raise
        current = call(
            f"read lease {self.name}", self._coord.read_namespaced_lease, self.name, self.namespace
        )
        spec = current.spec
        if spec.holder_identity == self.holder:
            self._version = current.metadata.resource_version
            return
        age = self._age(spec)
        if age is not None and age < (spec.lease_duration_seconds or self.duration):
            annotations = current.metadata.annotations or {}
            raise ShipInProgress(
                f"another ship of release {self.release_name!r} in namespace {self.namespace!r} is running: "
                f"{spec.holder_identity} ({annotations.get('deployer/command', '?')}, started "
                f"{annotations.get('deployer/started', '?')}, last renewed {age:.0f}s ago)",
                hint=(
                    "wait for it to finish; if that run is dead its lock expires "
                    f"{spec.lease_duration_seconds or self.duration}s after its last renewal"
                ),
            )
        # Expired: the holder died without releasing. Take over with the version we read (atomic).
        current.spec = client.V1LeaseSpec(
            holder_identity=self.holder,
            lease_duration_seconds=self.duration,
            acquire_time=now,
            renew_time=now,
            lease_transitions=(spec.lease_transitions or 0) + 1,
        )
        current.metadata.annotations = {
            **(current.metadata.annotations or {}),
            "deployer/command": self.command,
            "deployer/started": now.isoformat(),
            "deployer/took-over-from": spec.holder_identity or "",
        }
        try:
            replaced = call(
                f"take over lease {self.name}",
                self._coord.replace_namespaced_lease,
                self.name,
                self.namespace,
                current,
            )
        except KubeRequestFailed as e:
            if e.status == 409:
                raise ShipInProgress(
                    f"another ship of release {self.release_name!r} took the expired lock at the same moment",
                    hint="run again once it has finished",
                ) from e
            raise
        self._version = replaced.metadata.resource_version

    def renew(self) -> None:
        """Push renewTime forward; raises ShipInProgress if someone else holds the Lease now."""
        current = call(
            f"read lease {self.name}", self._coord.read_namespaced_lease, self.name, self.namespace
        )
        if current.spec.holder_identity != self.holder:
            raise ShipInProgress(
                f"lost the lock of release {self.release_name!r} to {current.spec.holder_identity}",
                hint="this run stalled longer than the lock duration; run again",
            )
        current.spec.renew_time = self._clock()
        replaced = call(
            f"renew lease {self.name}",
            self._coord.replace_namespaced_lease,
            self.name,
            self.namespace,
            current,
        )
        self._version = replaced.metadata.resource_version

    def release(self) -> None:
        """Delete the Lease if this process still holds it (checked via resourceVersion precondition)."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
            self._renewer = None
        if self._version is None:
            return
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version=self._version))
        try:
            call(
                f"delete lease {self.name}",
                self._coord.delete_namespaced_lease,
                self.name,
                self.namespace,
                body=options,
            )
        except KubeNotFound:
            pass
        except KubeRequestFailed as e:
            if e.status != 409:  # 409: someone took it over after we stalled; theirs now
                raise
        finally:
            self._version = None

    # -- context manager with background renewal ------------------------------------------------------

    def __enter__(self) -> ReleaseLock:
        self.acquire()
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name=f"lease-{self.name}", daemon=True)
        self._renewer.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    @property
    def lost(self) -> ShipInProgress | None:
        """Why this run no longer holds the Lease (another run took it over after this one stalled past
        the Lease duration), or None while it is still ours. Whoever holds it now owns the release: a
        run that lost it must not change the release any more (no rollback, no smoke against it)."""
        error = self.renew_error
        return error if isinstance(error, ShipInProgress) else None

    def _renew_loop(self) -> None:
        while not self._stop.wait(max(1.0, self.duration / 3)):
            try:
                self.renew()
                self.renew_error = None
            except ShipInProgress as e:
                self.renew_error = e  # someone else holds it: renewing again cannot win it back
                return
            except Exception as e:  # noqa: BLE001 - recorded; the next renewal may succeed
                self.renew_error = e

    # -- helpers ------------------------------------------------------------------------------------

    def _age(self, spec: Any) -> float | None:
        stamp = spec.renew_time or spec.acquire_time
        if stamp is None:
            return None
        if isinstance(stamp, str):
            stamp = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return (self._clock() - stamp).total_seconds()

    def _ensure_namespace(self) -> None:
        try:
            call(f"read namespace {self.namespace}", self._core.read_namespace, self.namespace)
            return
        except KubeNotFound:
            pass
        except KubeForbidden:
            # A namespace-scoped deployer may not read namespaces; the Lease create below then says
            # plainly whether the namespace exists.
            return
        body = client.V1Namespace(metadata=client.V1ObjectMeta(name=self.namespace, labels=dict(MANAGED_BY)))
        try:
            call(f"create namespace {self.namespace}", self._core.create_namespace, body)
        except KubeRequestFailed as e:
            if e.status != 409:  # created concurrently: fine
                raise
