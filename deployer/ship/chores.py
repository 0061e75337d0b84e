"""What a ship does off its critical path: the registry build cache pushes, the removal of the pushed
image's local push tags and the engine clean-up.

None of it decides the ship: a fresh runner's next build wants the cache, a long-lived runner wants its
engine bounded, but the deploy needs neither. Done in line they cost the push stage 1-2 s (measured:
push 1.0-1.8 s against 0.2 s for a raw `docker tag` + `docker push`). So they are queued
(`deployer.background.Chores`: one at a time, in order) and held until the image itself is pushed (before
that the critical path needs the engine and the registry), then run beside the chart, deploy and watch
stages, and are joined once the last stage is done, bounded by the ship's --timeout. A chore that fails
is a line in the output and the report, never a failed ship.

The invariants stay: the test variant's cache is queued only once its tests passed, and nothing is
queued by a failed test; what ran in the background, for how long and beside which stages is recorded in
the report under the stage that queued it (`details.background`), and the time the ship waited for it
after its last stage is in the total.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from deployer import errors
from deployer.background import ChoreResult, beside
from deployer.ship.context import Ctx, ShipState, time_left
from deployer.workflow import Status, WorkflowRun

__all__ = ["finish", "queue_cache_push", "queue_engine_tidy", "queue_untag"]

_PUSH_TIMEOUT = 900.0  # as deployer.build's pushes: bounded even without a deadline of the ship's


def queue_cache_push(ctx: Ctx, stage: str, variant: str, images: Sequence[Any]) -> None:
    """Push the registry build cache `images` (`deployer.buildcache.CacheImage`s) of `variant`."""
    if not images:
        return

    def push(say: Callable[[str], None]) -> None:
        from deployer import buildcache

        failed = buildcache.push(images, progress=say, timeout=time_left(ctx, _PUSH_TIMEOUT))
        if failed:
            raise _Warning(f"{len(failed)} of {len(images)} cache images not pushed")

    ctx.state.chores.add(f"build cache of {variant}", stage, push)


def queue_untag(ctx: Ctx, stage: str, references: Sequence[str]) -> None:
    """Remove the registry-named local tags of a pushed image (`deployer.build.push(untag=False)`)."""

    def untag(say: Callable[[str], None]) -> None:
        from deployer.tools import docker
        from deployer.tools.command import ToolFailed

        try:
            docker.untag(list(references))
        except (ToolFailed, errors.EnvironmentMissing) as err:
            raise _Warning(f"local push tags not removed: {err}") from err
        say(f"removed the local push tags {', '.join(references)}")

    ctx.state.chores.add("push tags", stage, untag)


def queue_engine_tidy(ctx: Ctx, stage: str, service: str) -> None:
    """Bound the service's old local images and the build cache (`deployer.retention`)."""

    def tidy(say: Callable[[str], None]) -> None:
        from deployer import retention
        from deployer.tools.command import ToolFailed

        try:
            say(retention.tidy(service).line())
        except (ToolFailed, errors.EnvironmentMissing) as err:
            raise _Warning(f"local clean-up skipped: {err}") from err

    ctx.state.chores.add("engine clean-up", stage, tidy)


class _Warning(Exception):
    """A chore that did not do all of its work (already said in its lines)."""


def finish(
    run: WorkflowRun,
    state: ShipState,
    windows: Mapping[str, tuple[float, float]],
    deadline: float | None,
    say: Callable[[str, str], None],
) -> WorkflowRun:
    """Join the chores (up to `deadline`) once every stage is done; `say(stage, line)` each chore's lines
    and an account of it, and return `run` with each chore recorded under the stage that queued it, and
    the wait after the last stage added to the total. `windows`: each stage's (start, end), monotonic.

    An interrupted ship does not wait: its chores are abandoned (run() stops their tools)."""
    failed = run.failed
    if failed is not None and failed.status is Status.INTERRUPTED:
        return run
    last_end = max((end for _, end in windows.values()), default=time.monotonic())
    # A ship that stopped before its image was pushed drops what it held: with the registry gone (a failed
    # push) the cache push would only wait for it again, and a failed build's test cache can wait for the
    # next passing ship.
    dropped = "not run: the ship stopped before its image was pushed" if failed is not None else None
    results = state.chores.finish(deadline, drop_held=dropped)
    waited = max(time.monotonic() - last_end, 0.0) if results else 0.0
    recorded: dict[str, list[dict[str, Any]]] = {}
    for chore in results:
        beside = _overlapped(chore, windows)
        entry = {
            "name": chore.name,
            "status": "ok" if chore.ok else "warning" if chore.started is not None else "not-run",
            "seconds": None if chore.seconds is None else round(chore.seconds, 3),
            "overlapped": beside,
            "lines": list(chore.lines),
        }
        recorded.setdefault(chore.stage, []).append(entry)
        for line in chore.lines:
            say(chore.stage, f"background: {line}")
        say(chore.stage, f"background: {chore.name} {_account(chore, beside, last_end)}")
    if not recorded:
        return run
    stages = tuple(
        replace(r, details={**r.details, "background": recorded[r.name]}) if r.name in recorded else r
        for r in run.results
    )
    return replace(run, results=stages, duration=run.duration + waited)


def _overlapped(chore: ChoreResult, windows: Mapping[str, tuple[float, float]]) -> list[str]:
    """The stages that ran while `chore` did."""
    if chore.started is None:
        return []
    return beside(chore.started, chore.finished if chore.finished is not None else time.monotonic(), windows)


def _account(chore: ChoreResult, beside: Sequence[str], last_end: float) -> str:
    if chore.seconds is None:
        return "did not finish before the ship's --timeout" if chore.started is not None else "was not run"
    if beside:
        where = f"beside {', '.join(beside)}"
    else:
        done_after = chore.finished is not None and chore.finished > last_end
        where = "after the last stage" if done_after else "between two stages"
    after = chore.finished - last_end if chore.finished is not None else 0.0
    tail = f", {after:.1f}s of it after the last stage" if after > 0.05 and beside else ""
    verdict = "done" if chore.ok else "did not finish its work (a warning: the ship is not failed by it)"
    return f"{verdict} in {chore.seconds:.1f}s, {where}{tail}"
