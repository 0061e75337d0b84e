"""`deployer promote SERVICE --from A --to B`: what may be promoted, decided from what runs in A (pure).

Production runs exactly the digest staging tested (issue 11, item 6): the digest promoted is the one the
release in A's namespace runs, and only when helm deployed it, its pods are healthy and it passed its
smoke checks there (`deployer.release.passed`). Anything else is refused (exit 11, the pipeline's policy)
naming each reason, unless `--force`, which the report then records. Nothing is rebuilt: the image and
chart are copied by digest (`deployer.release.promote_steps`) and deployed with B's values over the
chart A ran, which `values_overlay` computes.

Nothing here runs a process or opens a connection; the steps feed it what they read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deployer.errors import DeployerError, DeployFailed, ExitCode, PolicyViolation
from deployer.release.passed import Pass, passed_in

__all__ = ["Decision", "PromotionRefused", "SourceRelease", "decide", "values_overlay"]


class PromotionRefused(DeployerError, PolicyViolation):
    """The digest in the source environment was not deployed, healthy and smoke-passed there: promoting it
    would put an untested image in front of the target environment's users. A pipeline policy (exit 11)."""

    exit_code = ExitCode.POLICY


@dataclass(frozen=True)
class SourceRelease:
    """What the source environment's release looks like now (read by the `source` step)."""

    environment: str
    namespace: str
    release: str
    helm_status: str  # deployed, failed, pending-upgrade, …
    image: str | None  # what the Deployment runs: repository@sha256:…
    healthy: bool  # every desired replica updated, ready and available
    ready: str  # "1/1", for messages
    passes: tuple[Pass, ...] = ()


@dataclass(frozen=True)
class Decision:
    """The digest to promote, where it came from, and what `--force` overrode (empty: nothing)."""

    repository: str
    digest: str
    passed: Pass | None
    forced: tuple[str, ...] = ()

    @property
    def pinned(self) -> str:
        return f"{self.repository}@{self.digest}"


def decide(src: SourceRelease, *, force: bool, service: str) -> Decision:
    """The digest to promote from `src`, or why not.

    A release without a running image cannot be promoted at all (DeployFailed, exit 15: ship it first).
    A digest that is not deployed + healthy + passed is refused with every reason (PromotionRefused, exit
    11) unless `force`; then the reasons are kept in `Decision.forced` for the report.
    """
    where = f"release {src.release} in namespace {src.namespace} ({src.environment})"
    if not src.image or "@sha256:" not in src.image:
        raise DeployFailed(
            f"{where} runs no image by digest ({src.image or 'no Deployment found'}): nothing to promote",
            hint=f"ship it there first: deployer ship {service} --env {src.environment}",
        )
    repository, digest = src.image.split("@", 1)
    passed = passed_in(src.passes, digest, src.environment)
    reasons = []
    if src.helm_status != "deployed":
        reasons.append(f"helm says the release is {src.helm_status}, not deployed")
    if not src.healthy:
        reasons.append(f"its pods are not healthy ({src.ready} ready)")
    if passed is None:
        reasons.append(_never_passed(src, digest))
    if reasons and not force:
        raise PromotionRefused(
            f"refusing to promote {digest} from {src.environment}: " + "; ".join(reasons),
            hint=f"ship it to {src.environment} with its smoke checks (deployer ship {service} --env "
            f"{src.environment}), then promote again; or promote it untested with --force",
            details={"source": {"image": src.image, "refused": reasons}},
        )
    return Decision(repository, digest, passed, tuple(reasons))


def _never_passed(src: SourceRelease, digest: str) -> str:
    elsewhere = sorted({p.environment for p in src.passes if p.digest == digest})
    if elsewhere:
        return f"it passed its smoke checks only in {', '.join(elsewhere)}, never in {src.environment}"
    return (
        f"it has no record of passing smoke checks in {src.environment} (shipped with --skip-smoke, "
        "without smoke checks, or they failed)"
    )


def values_overlay(
    image_repository: str, digest: str, tag: str, *, pull_secrets: Sequence[str], deploy: Any
) -> dict[str, Any]:
    """The values file `helm upgrade` applies over the copied chart's own values in the target
    environment. `deploy` is the service's DeployConfig as the target environment resolves it.

    Only what belongs to the environment rather than to the tested service: where the image is pulled
    from (the same digest), with which Secret, and what the environment's deploy policy sets (replicas,
    resources). Everything else (command, env, probes, ports) stays what A ran and tested.
    """
    resources: Mapping[str, Mapping[str, str]] = deploy.resources
    return {
        "image": {"repository": image_repository, "digest": digest, "tag": tag},
        "imagePullSecrets": list(pull_secrets),
        "replicaCount": deploy.replicas,
        "resources": {kind: dict(q) for kind, q in resources.items()},
    }
