"""The `cluster` fixture: a fake `Cluster` behind `release.ref.connect` (fakes in fakes.py)."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from deployer.release import ref as ref_mod
from deployer.rollout.diagnosis import RolloutVerdict
from deployer.tools.helm import Helm
from tests.deployer.release.fakes import (
    FakeHelm,
    FakeKube,
    FakeLock,
    _healthy,
)


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Callable[..., SimpleNamespace]:
    """Install a fake Cluster behind `release.ref.connect`; returns a builder (call it before invoking)."""

    def build(
        rows: list[dict[str, Any]],
        *,
        kube: FakeKube | None = None,
        watch: Callable[..., RolloutVerdict] = _healthy,
        manifest: str = "",
        rendered: str = "",
        refuse: dict[str, str] | None = None,
        lock_holder: str | None = None,
    ) -> SimpleNamespace:
        fake_helm = FakeHelm(rows, manifest, rendered, refuse)
        kube = kube or FakeKube()
        lock = FakeLock(lock_holder)
        watched: list[dict[str, Any]] = []

        def watcher(namespace: str, deployment: str, **kwargs: Any) -> RolloutVerdict:
            assert lock.held, "the rollout is watched while holding the release lock"
            watched.append({"namespace": namespace, "deployment": deployment, **kwargs})
            return watch(**kwargs)

        made = ref_mod.Cluster(
            helm=Helm(binary="helm", runner=fake_helm),
            apps=kube,
            core=kube,
            coordination=kube,
            watch=watcher,
            lock=lock,
        )
        monkeypatch.setattr(ref_mod, "connect", lambda tgt, **_kw: made)
        return SimpleNamespace(helm=fake_helm, kube=kube, lock=lock, watched=watched)

    return build
