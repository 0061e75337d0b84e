"""`deployer rollback`: under the release lock (a running ship is refused), repair a pending-* release,
`helm rollback` to the chosen revision, and watch the rollout with the same watcher as `ship`. A rollout
that does not become healthy is `RolloutFailed` (exit 16) with the diagnosis, log tail and events; helm
failures are `DeployFailed` (exit 15).

Nothing here prints: progress goes to the callback, the result is data with `lines()` for the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from deployer.errors import DeployFailed, RolloutFailed
from deployer.release.ref import Cluster, ReleaseRef, Watch, deployment_generation, no_release
from deployer.tools.helm import GOOD, Helm, Revision

__all__ = ["RollbackResult", "pick_rollback_revision", "roll_back_and_watch", "rollback"]

ROLLBACK_DESCRIPTION = "Rollback to "  # what helm writes for a rollback revision


@dataclass(frozen=True)
class RollbackResult:
    """A rollback that rolled out healthy."""

    release: str
    namespace: str
    from_revision: int
    to_revision: int
    new_revision: int
    duration: float
    recovered: str | None = None

    def lines(self) -> list[str]:
        out = [f"recovered: {self.recovered}"] if self.recovered else []
        out.append(
            f"rolled back {self.release} in {self.namespace} from revision {self.from_revision} to "
            f"{self.to_revision} (now revision {self.new_revision}); healthy after {self.duration:.1f}s"
        )
        return out


def _rollback_source(rev: Revision) -> int | None:
    text = rev.description.removeprefix(ROLLBACK_DESCRIPTION)
    return int(text) if rev.description.startswith(ROLLBACK_DESCRIPTION) and text.isdigit() else None


def pick_rollback_revision(history: Sequence[Revision], current: int) -> int | None:
    """The revision `deployer rollback` goes back to when none is given (None: there is none).

    Helm's own default is simply `current - 1`, which after a failed ship is the broken revision (its
    upgrade "succeeded"; only the rollout failed). Instead: the newest revision before the current one that
    helm deployed successfully, that was not itself rolled back away from (the next revision is a
    "Rollback to …"), and that is not what the current revision already is a copy of.
    """
    ordered = sorted(history, key=lambda r: r.revision)
    by_number = {r.revision: r for r in ordered}
    copy_of = _rollback_source(by_number[current]) if current in by_number else None
    for rev in reversed(ordered):
        if rev.revision >= current or rev.status not in GOOD or rev.revision == copy_of:
            continue
        after = by_number.get(rev.revision + 1)
        if after is not None and _rollback_source(after) is not None:
            continue
        return rev.revision
    return None


def rollback(
    tgt: ReleaseRef,
    cluster: Cluster,
    *,
    revision: int | None = None,
    timeout: float = 300.0,
    progress: Callable[[str], None] = lambda _line: None,
    command: str = "deployer rollback",
) -> RollbackResult:
    """Roll the release back to `revision` (default: `pick_rollback_revision`) and watch it roll out.

    Holds the release lock throughout (another ship or rollback is refused with exit 15); a release stuck
    in pending-* from an interrupted run is repaired first. Raises DeployFailed (15) when there is no
    release, no revision to go to, or helm fails; RolloutFailed (16) when the rolled-back version does not
    become healthy within `timeout` seconds.
    """
    if cluster.helm.status(tgt.release, tgt.namespace) is None:
        raise no_release(tgt)  # checked before the lock, which would create the namespace
    with cluster.lock(tgt.namespace, tgt.release, command):
        recovery = cluster.helm.recover_pending(tgt.release, tgt.namespace)
        recovered = recovery.describe() if recovery.action != "none" else None
        if recovered:
            progress(recovered)
        current = cluster.helm.status(tgt.release, tgt.namespace)
        if current is None:
            raise DeployFailed(
                f"release {tgt.release!r} was stuck in {recovery.stuck_status} with nothing to roll back to "
                "and has been uninstalled",
                hint=f"ship it again: deployer ship {tgt.service.directory}",
            )
        history = cluster.helm.history(tgt.release, tgt.namespace)
        known = {r.revision for r in history}
        if revision is None:
            revision = pick_rollback_revision(history, current.revision)
            if revision is None:
                raise DeployFailed(
                    f"release {tgt.release!r} has no earlier good revision than {current.revision}",
                    hint=f"see `deployer status {tgt.service.directory}`; pass --revision N to choose one",
                )
        elif revision not in known:
            raise DeployFailed(
                f"release {tgt.release!r} has no revision {revision} (helm keeps: "
                f"{', '.join(str(r) for r in sorted(known)) or 'none'})",
                hint=f"see `deployer status {tgt.service.directory}`",
            )
        started = datetime.now(UTC)
        progress(f"helm rollback {tgt.release} {revision} (from revision {current.revision})")
        verdict = roll_back_and_watch(
            cluster.helm,
            tgt.namespace,
            tgt.release,
            revision,
            watch=cluster.watch,
            generation=lambda: deployment_generation(cluster.apps, tgt.namespace, tgt.release),
            timeout=timeout,
            since=started,
            on_event=lambda event: progress(f"watch: {event.text()}"),
        )
        after = cluster.helm.status(tgt.release, tgt.namespace)
        new_revision = after.revision if after is not None else 0
        if not verdict.healthy:
            raise _rollback_failed(tgt, verdict, revision, new_revision)
    return RollbackResult(
        release=tgt.release,
        namespace=tgt.namespace,
        from_revision=current.revision,
        to_revision=revision,
        new_revision=new_revision,
        duration=float(verdict.duration),
        recovered=recovered,
    )


def roll_back_and_watch(
    helm: Helm,
    namespace: str,
    release: str,
    revision: int,
    *,
    watch: Watch,
    generation: Callable[[], int | None],
    timeout: float,
    since: datetime | None = None,
    on_event: Callable[[Any], None] | None = None,
) -> Any:
    """`helm rollback` to `revision` and watch what it applied until it is healthy or clearly failed; the
    rollout verdict. The one rollback of `deployer rollback` and of a ship whose rollout failed.

    `generation()` is read right after helm applied the rollback, so the watch never judges the spec from
    before (whose complete status would read as a healthy rollback).
    """
    helm.rollback(release, namespace, revision)
    return watch(namespace, release, timeout=timeout, since=since, on_event=on_event, generation=generation())


def _rollback_failed(tgt: ReleaseRef, verdict: Any, revision: int, new_revision: int) -> RolloutFailed:
    diagnosis, where, evidence = verdict.diagnosis, verdict.where(tgt.release), verdict.evidence()
    # The CLI prints the message: the evidence goes under the first line, as `ship`'s summary shows it.
    return RolloutFailed(
        f"rollback to revision {revision} (now revision {new_revision}) did not become healthy: "
        f"{where}: {diagnosis}" + "".join(f"\n  | {line}" for line in evidence),
        hint=(verdict.hint or "")
        + f"; choose another revision: deployer rollback {tgt.service.directory} --revision N",
        evidence=evidence,
    )
