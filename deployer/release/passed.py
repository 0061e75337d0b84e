"""Where a digest passed: "digest D passed its smoke checks in environment E", kept beside the release.

The record is one annotation on the release's Deployment, `deployer/passed`: a JSON list of
`{"digest", "environment", "revision", "at"}`, newest first, at most `KEEP` entries (helm keeps 10
revisions, so every revision a rollback can return to still has its entry). A ship or a promote writes it
only after its smoke checks passed; `deployer promote` reads it in the source environment.

Why there (docs/promote.md): it lives and dies with the release (an uninstall removes it), it needs no verb
the least-privilege Role lacks (`patch deployments` is what helm's upgrade uses already), and helm's
three-way merge keeps an annotation its chart does not render, so an upgrade or rollback leaves it alone.
Each entry names its digest, so a stale one can never vouch for another image: what runs must be one of
the digests listed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["ANNOTATION", "KEEP", "Pass", "parse", "passed_in", "record", "with_pass"]

ANNOTATION = "deployer/passed"
KEEP = 10


@dataclass(frozen=True)
class Pass:
    """One digest that passed its smoke checks in one environment (at helm revision `revision`)."""

    digest: str
    environment: str
    revision: int | None = None
    at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "environment": self.environment,
            "revision": self.revision,
            "at": self.at,
        }


def parse(annotations: Mapping[str, str] | None) -> list[Pass]:
    """The passes recorded in a Deployment's annotations, newest first; [] when none (or unreadable: a
    record someone edited by hand into something else vouches for nothing)."""
    text = (annotations or {}).get(ANNOTATION)
    if not text:
        return []
    try:
        entries = json.loads(text)
    except ValueError:
        return []
    if not isinstance(entries, list):
        return []
    out = []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("digest"), str) and entry.get("environment"):
            revision = entry.get("revision")
            out.append(
                Pass(
                    digest=entry["digest"],
                    environment=str(entry["environment"]),
                    revision=revision if isinstance(revision, int) else None,
                    at=str(entry.get("at") or ""),
                )
            )
    return out


def passed_in(passes: Sequence[Pass], digest: str, environment: str) -> Pass | None:
    """The newest record of `digest` passing in `environment`, if there is one."""
    return next((p for p in passes if p.digest == digest and p.environment == environment), None)


def with_pass(passes: Sequence[Pass], new: Pass) -> list[Pass]:
    """`passes` with `new` first (an older entry of the same digest and environment dropped), at most KEEP."""
    rest = [p for p in passes if (p.digest, p.environment) != (new.digest, new.environment)]
    return [new, *rest][:KEEP]


def record(
    api: Any, namespace: str, release: str, digest: str, environment: str, *, revision: int | None = None
) -> dict[str, Any]:
    """Add "`digest` passed in `environment`" to the release's Deployment. Never raises: the checks did
    pass, so a record that cannot be written is said in the result (and a later promote refuses, naming
    --force) rather than turning a good ship into a failed one."""
    from kubernetes import client

    from deployer.errors import UserError
    from deployer.tools.kube import call

    apps = client.AppsV1Api(api)
    entry = Pass(digest, environment, revision, datetime.now(UTC).isoformat(timespec="seconds"))
    try:
        deployment = call(f"read deployment {release}", apps.read_namespaced_deployment, release, namespace)
        passes = with_pass(parse(deployment.metadata.annotations), entry)
        body = {"metadata": {"annotations": {ANNOTATION: json.dumps([p.to_json() for p in passes])}}}
        call(f"annotate deployment {release}", apps.patch_namespaced_deployment, release, namespace, body)
    except UserError as err:
        return {"recorded": False, "environment": environment, "digest": digest, "detail": err.message}
    detail = f"{ANNOTATION} on deployment {release}"
    return {"recorded": True, "environment": environment, "digest": digest, "detail": detail}
