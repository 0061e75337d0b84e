"""`deployer diff`: render the chart a ship would install from the current blubber.yaml and deploy.yaml
and compare it per resource with the live release's manifest (`Helm.diff`). The image of a ship is only
known after it is built and pushed, so the diff uses the live release's image (or `--image`); it shows what
the configuration would change.

Nothing here prints: the result is data with `lines()` for the CLI.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from deployer.errors import UserError
from deployer.release.ref import Cluster, ReleaseRef, with_chart
from deployer.tools.helm import ResourceDiff

__all__ = ["DiffResult", "diff"]

PLACEHOLDER_DIGEST = "sha256:" + "0" * 64


@dataclass(frozen=True)
class DiffResult:
    """The per-resource differences between the live release and what a ship would install."""

    release: str
    namespace: str
    image: str  # the image the rendering used
    image_note: str  # where that image came from
    live_revision: int | None
    diffs: list[ResourceDiff]

    def lines(self) -> list[str]:
        live = f"revision {self.live_revision}" if self.live_revision else "no live release"
        out = [
            f"release {self.release} in {self.namespace} ({live}) vs the chart rendered from the service now",
            f"image: {self.image} ({self.image_note})",
        ]
        if not self.diffs:
            out.append("no changes")
            return out
        for d in self.diffs:
            out.append(f"{d.change}: {d.kind} {d.name}")
            out.extend(d.diff.rstrip("\n").splitlines())
        counts = {c: sum(1 for d in self.diffs if d.change == c) for c in ("changed", "added", "removed")}
        out.append(", ".join(f"{n} {c}" for c, n in counts.items() if n) + " resource(s)")
        return out


def _live_image(manifest: str) -> str | None:
    import yaml

    from deployer.tools.helm import split_manifest

    for (kind, _name), text in split_manifest(manifest).items():
        if kind != "Deployment":
            continue
        doc = yaml.safe_load(text)
        containers = (((doc.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
        if containers:
            return str(containers[0].get("image", "")) or None
    return None


def diff(tgt: ReleaseRef, cluster: Cluster, *, image: str | None = None) -> DiffResult:
    """Render the chart a ship would install now and compare it with the live release, per resource.

    The image: `image` when given (`repo@sha256:…`), else the one the live release runs (so only
    configuration changes show), else a placeholder digest for a release that does not exist yet. The live
    chart version and app version are reused, so labels that only carry them do not show as changes.
    """
    import blubber
    from deployer import chart as chart_mod
    from deployer import deploy_config, policies
    from deployer.chart import ImageRef
    from deployer.target import resolve

    current = with_chart(cluster, cluster.helm.status(tgt.release, tgt.namespace))
    manifest = cluster.helm.get_manifest(tgt.release, tgt.namespace) if current is not None else ""
    live = _live_image(manifest) if manifest else None
    if image:
        chosen, note = image, "given with --image"
    elif live:
        chosen, note = live, "the live one; a ship builds and pushes a new image, known after the push"
    else:
        where = (getattr(tgt, "where", None) or resolve(None)).registry
        chosen = f"{where.repository(tgt.service.name)}@{PLACEHOLDER_DIGEST}"
        note = "placeholder: a ship builds and pushes the image, its digest is known after the push"
    try:
        ref = ImageRef.parse(chosen)
    except ValueError as e:
        raise UserError(str(e), hint="give the image as repository@sha256:<64 hex digits>") from e
    if current is not None and not ref.tag and current.app_version:
        ref = replace(ref, tag=current.app_version)  # the version label shows the pushed tag
    version = chart_mod.chart_version()
    if current is not None and current.chart.startswith(f"{tgt.release}-"):
        version = current.chart.removeprefix(f"{tgt.release}-")
    blubber_policy = tgt.where.environment.policies.blubber_file() if tgt.where else policies.BLUBBER
    config = blubber.load(tgt.service.config, policy=blubber_policy)
    runtime = blubber.runtime(config, tgt.deploy.variant)
    values = chart_mod.render_values(
        tgt.deploy,
        runtime,
        ref,
        policy=deploy_config.load_policy(tgt.where.environment.policies.deploy if tgt.where else None),
        blubber_file=str(tgt.service.config),
    )
    with tempfile.TemporaryDirectory(prefix="deployer-diff-") as tmp:
        rendered = chart_mod.write_chart(
            Path(tmp), tgt.release, version, values, app_version=ref.tag or version
        )
        diffs = cluster.helm.diff(tgt.release, tgt.namespace, rendered.path)
    return DiffResult(
        release=tgt.release,
        namespace=tgt.namespace,
        image=ref.pinned,
        image_note=note,
        live_revision=current.revision if current is not None else None,
        diffs=diffs,
    )
