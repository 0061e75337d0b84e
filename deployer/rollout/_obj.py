"""Small readers over API objects as plain dicts (the JSON the API server sends, camelCase keys).

Every status function in this package takes objects in this form: what `Watch.stream(deserialize=False)`
yields, what a list with `_preload_content=False` returns, and what `ApiClient.sanitize_for_serialization`
makes of a client model. Recorded fixtures in tests/resources/k8s/ are the same JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


def dig(obj: Any, *path: str | int, default: Any = None) -> Any:
    """`obj[p0][p1]...`, or `default` as soon as a step is missing or None."""
    for step in path:
        try:
            obj = obj[step]
        except (KeyError, IndexError, TypeError):
            return default
        if obj is None:
            return default
    return obj


def name(obj: Obj) -> str:
    return dig(obj, "metadata", "name", default="")


def uid(obj: Obj) -> str:
    return dig(obj, "metadata", "uid", default="")


def annotations(obj: Obj) -> dict[str, str]:
    return dig(obj, "metadata", "annotations", default={})


def labels(obj: Obj) -> dict[str, str]:
    return dig(obj, "metadata", "labels", default={})


def owner_uids(obj: Obj) -> set[str]:
    """UIDs of the objects that own `obj` (ownerReferences)."""
    return {ref.get("uid", "") for ref in dig(obj, "metadata", "ownerReferences", default=[])}


def condition(obj: Obj, type_: str) -> Obj | None:
    """The status condition of `type_`, if the object has one."""
    for cond in dig(obj, "status", "conditions", default=[]):
        if cond.get("type") == type_:
            return cond
    return None


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp from the API (`2026-11-27T06:22:02Z`, maybe with microseconds) as aware UTC."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
