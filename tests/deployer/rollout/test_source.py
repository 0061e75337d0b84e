"""deployer.rollout.source: ApiSource over the client's real `Watch.stream`, fed a fake HTTP response."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from deployer.rollout.source import ApiSource, clock_offset
from deployer.tools.kube import KubeForbidden, WatchExpired


class FakeResponse:
    """What the client's list functions return with `_preload_content=False`: a urllib3-like response."""

    def __init__(self, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.data = body
        self.headers = headers or {}
        self.status = 200
        self.closed = False

    def stream(self, amt: Any = None, decode_content: bool = False):
        yield from self.data.splitlines(keepends=True)

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        pass


def _source(fn) -> ApiSource:
    source = ApiSource(client.ApiClient(), "ns", "web")
    source._calls["pod"] = (fn, {"label_selector": "app=web"})
    return source


POD = {"metadata": {"name": "web-1", "resourceVersion": "12"}, "status": {"phase": "Pending"}}


def test_list_returns_raw_items_and_the_list_version() -> None:
    calls: list[tuple] = []

    def list_pods(namespace: str, **kw: Any) -> FakeResponse:
        calls.append((namespace, kw))
        return FakeResponse(json.dumps({"metadata": {"resourceVersion": "10"}, "items": [POD]}).encode())

    items, version = _source(list_pods).list("pod")
    assert (items, version) == ([POD], "10")
    assert calls == [("ns", {"_preload_content": False, "label_selector": "app=web"})]


def test_a_list_measures_the_servers_clock_from_its_date_header() -> None:
    ahead = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)

    def list_pods(namespace: str, **kw: Any) -> FakeResponse:
        body = json.dumps({"metadata": {"resourceVersion": "10"}, "items": []}).encode()
        return FakeResponse(body, {"Date": ahead})

    source = _source(list_pods)
    assert source.clock_offset == 0.0
    source.list("pod")
    assert 28.5 <= source.clock_offset <= 31


def test_clock_offset_ignores_the_headers_own_error_and_bad_dates() -> None:
    received = datetime(2026, 12, 3, 17, 0, 0, 700000, tzinfo=UTC)
    assert clock_offset("Thu, 03 Dec 2026 17:00:00 GMT", received) == 0.0  # truncated second, not skew
    assert clock_offset("Thu, 03 Dec 2026 16:59:39 GMT", received) == pytest.approx(-21.2)
    assert clock_offset("Thu, 03 Dec 2026 17:00:05 GMT", received) == pytest.approx(4.8)
    assert clock_offset("yesterday", received) == 0.0
    assert clock_offset(None, received) == 0.0


def test_watch_yields_raw_dicts_then_410_becomes_watch_expired() -> None:
    calls: list[dict] = []
    lines = [
        {"type": "ADDED", "object": POD},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "13"}}},
        {
            "type": "ERROR",
            "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"},
        },
    ]

    def list_pods(namespace: str, **kw: Any) -> FakeResponse:
        calls.append(kw)
        return FakeResponse(b"".join(json.dumps(line).encode() + b"\n" for line in lines))

    seen = []
    with pytest.raises(WatchExpired, match="watch pods in namespace ns: Expired: too old"):
        for event in _source(list_pods).watch("pod", "11", 30):
            seen.append(event)
    assert seen == [("ADDED", POD), ("BOOKMARK", {"metadata": {"resourceVersion": "13"}})]
    assert isinstance(seen[0][1], dict)
    (kw,) = calls
    assert (kw["resource_version"], kw["timeout_seconds"], kw["allow_watch_bookmarks"], kw["watch"]) == (
        "11",
        30,
        True,
        True,
    )
    assert kw["label_selector"] == "app=web"


def test_api_errors_are_translated() -> None:
    def list_pods(namespace: str, **kw: Any) -> FakeResponse:
        raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(KubeForbidden, match=r"cannot list pods in namespace ns: Forbidden \(403\)") as e:
        _source(list_pods).list("pod")
    assert isinstance(e.value.__cause__, ApiException)


def test_stopped_source_starts_no_watch() -> None:
    source = _source(lambda *a, **kw: pytest.fail("watch started after stop"))
    source.stop()
    assert list(source.watch("pod", "1", 30)) == []
