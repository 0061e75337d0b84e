"""deployer.retention: which of a service's local images go (pure part)."""

from __future__ import annotations

from deployer import retention
from deployer.tools.docker import LocalImage


def _image(n: int, *tags: str) -> LocalImage:
    return LocalImage(f"sha256:{n:064x}", f"2026-12-03T12:{n:02d}:00.000000000Z", tags)


def test_untagged_images_past_the_newest_kept_go_tagged_ones_stay() -> None:
    images = [_image(n) for n in (3, 1, 5, 2)] + [_image(6, "deployer/web:production"), _image(4, "x:y")]
    assert [i.id for i in retention.old_images(images, keep=2)] == [_image(2).id, _image(1).id]
    assert retention.old_images(images, keep=4) == []
    assert len(retention.old_images(images, keep=0)) == 4  # never a tagged one


def test_the_report_line_says_what_was_removed_kept_and_reclaimed() -> None:
    done = retention.Tidied(("sha256:a", "sha256:b"), 3, "12.5MB")
    assert done.line() == "local images: removed 2 old, kept 3 untagged; build cache reclaimed 12.5MB"
