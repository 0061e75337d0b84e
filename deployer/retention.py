"""What ships leave in the local engine, bounded: a service's old images and the build cache.

Every build labels its image `io.deployer.service=<service>`. A rebuild moves the local tag
(`deployer/<service>:<variant>`) to the new image and leaves the old one untagged in the engine; on a
long-lived runner they pile up (92 images, 1.2 GB after 25 ships). After each ship `tidy` removes the
service's untagged images beyond the newest `keep` (default 3, `$DEPLOYER_KEEP_IMAGES`): what is deployed
lives in the registry, so the engine only needs the current images and a few for comparison. Tagged images
are the current ones and stay; an image a container still uses stays too.

BuildKit's cache grows with every changed layer and never shrinks by itself: `tidy` also prunes it to
`cache_bytes` (default 2 GiB, `$DEPLOYER_BUILD_CACHE_MAX`, in bytes), least recently used first, so the
layers the next build needs (the recent ones) remain.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from deployer.tools import docker

__all__ = ["DEFAULT_CACHE_BYTES", "DEFAULT_KEEP", "SERVICE_LABEL", "Tidied", "old_images", "tidy"]

SERVICE_LABEL = "io.deployer.service"
"""Image label naming the service an image was built for (set by `deployer.build`)."""

DEFAULT_KEEP = 3
DEFAULT_CACHE_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Tidied:
    """What `tidy` did: image ids removed, untagged images kept, build cache reclaimed (engine's words)."""

    removed: tuple[str, ...]
    kept: int
    cache_reclaimed: str

    def line(self) -> str:
        return (
            f"local images: removed {len(self.removed)} old, kept {self.kept} untagged; "
            f"build cache reclaimed {self.cache_reclaimed}"
        )


def _setting(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else default


def old_images(images: Sequence[docker.LocalImage], keep: int) -> list[docker.LocalImage]:
    """The untagged images past the newest `keep` of them (`images` in any order)."""
    untagged = sorted((i for i in images if not i.tags), key=lambda i: i.created, reverse=True)
    return untagged[max(keep, 0) :]


def tidy(service: str, *, keep: int | None = None, cache_bytes: int | None = None) -> Tidied:
    """Remove `service`'s old local images and bound the engine's build cache (see the module)."""
    keep = _setting("DEPLOYER_KEEP_IMAGES", DEFAULT_KEEP) if keep is None else keep
    cache_bytes = (
        _setting("DEPLOYER_BUILD_CACHE_MAX", DEFAULT_CACHE_BYTES) if cache_bytes is None else cache_bytes
    )
    images = docker.images(f"{SERVICE_LABEL}={service}")
    stale = old_images(images, keep)
    removed = docker.remove_unused_images([i.id for i in stale])
    untagged = sum(1 for i in images if not i.tags)
    return Tidied(tuple(removed), untagged - len(removed), docker.prune_build_cache(cache_bytes))
