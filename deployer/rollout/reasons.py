"""The one table that says what each failure reason means: how soon it fails a rollout, and what to do.

Reasons come from container states (`waiting.reason`, `terminated.reason`, or `ExitCode:N`/`Signal:N` when
the runtime gave none, with an `Init:` prefix for init containers), pod conditions, ReplicaSet and
Deployment conditions. `classify(reason, message)` finds the first matching rule; a rule with a message
pattern is more specific than one without, so it is listed first.

Kinds, i.e. when a reason fails the rollout:
- DEFINITIVE: at once; retrying cannot help (a malformed or missing image, a bad container config).
- BACKOFF: at once; the kubelet is already backing off after repeated failures.
- COUNTED: when the container's exits reach the budget (`FailurePolicy.max_exits`); the first exit may be a
  blip (a dependency not up yet).
- GRACE: when the condition has lasted longer than the grace for it (probe-derived, or the policy's).
- TRANSIENT: never by itself; the rollout's deadline bounds it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Kind(enum.Enum):
    DEFINITIVE = "definitive"
    BACKOFF = "back-off"
    COUNTED = "counted"
    GRACE = "grace"
    TRANSIENT = "transient"


@dataclass(frozen=True)
class Rule:
    """What one reason means. `pattern` (a regex on the API's message) narrows the rule when set."""

    reason: str
    kind: Kind
    hint: str
    pattern: str | None = None

    def matches(self, reason: str, message: str) -> bool:
        if reason != self.reason and not (self.reason == "ExitCode:*" and reason.startswith("ExitCode:")):
            return False
        return self.pattern is None or re.search(self.pattern, message, re.IGNORECASE) is not None


_NOT_FOUND = r"not found|manifest unknown|404|no such host"
_DENIED = r"unauthorized|authentication required|denied|forbidden|401|403"

MISSING_IMAGE_HINT = (
    "the image does not exist in the registry the cluster pulls from: check the reference, that the tag or "
    "digest was pushed, and that the registry host matches"
)

# The table, in sections: other modules ask which section a reason is in (smoke's test pods).
_IMAGE: tuple[Rule, ...] = (
    Rule(
        "ErrImagePull",
        Kind.DEFINITIVE,
        MISSING_IMAGE_HINT,
        _NOT_FOUND,
    ),
    Rule(
        "ErrImagePull",
        Kind.DEFINITIVE,
        "the registry refused the cluster's credentials: check imagePullSecrets or the node's registry "
        "configuration",
        _DENIED,
    ),
    Rule("ErrImagePull", Kind.TRANSIENT, "pulling the image failed; the kubelet retries"),
    Rule(
        "ImagePullBackOff",
        Kind.DEFINITIVE,
        MISSING_IMAGE_HINT,
        _NOT_FOUND,
    ),
    Rule(
        "ImagePullBackOff",
        Kind.BACKOFF,
        "the kubelet could not pull the image and is backing off: see the pull error in the events",
    ),
    Rule(
        "ErrImageNeverPull",
        Kind.DEFINITIVE,
        "imagePullPolicy is Never and the image is not on the node: use IfNotPresent or load the image",
    ),
    Rule("InvalidImageName", Kind.DEFINITIVE, "the image reference is malformed: check image and tag"),
)
_START: tuple[Rule, ...] = (  # creating and starting the container
    Rule(
        "CreateContainerConfigError",
        Kind.DEFINITIVE,
        "the image's user is not numeric but the pod requires runAsNonRoot: set a numeric uid (runs.uid) "
        "or runAsUser",
        r"non-numeric user",
    ),
    Rule(
        "CreateContainerConfigError",
        Kind.TRANSIENT,
        # The kubelet's first try with a Secret or ConfigMap it has not watched before may come before its
        # watch has synced, for one that exists too; the next try says what is wrong, if anything.
        "the kubelet has not read the Secret or ConfigMap the pod names yet and retries; a Secret that does "
        'not exist shows next as `secret "<name>" not found`',
        r"failed to sync (secret|configmap) cache",
    ),
    Rule(
        "CreateContainerConfigError",
        Kind.DEFINITIVE,
        "a Secret the pod's env reads (deploy.yaml secretEnv), or a key in it, does not exist in the "
        "release's namespace: create it there (`kubectl create secret generic <secret> "
        "--from-literal=<key>=... -n <namespace>`), or fix the names in secretEnv",
        r"secret \S+ not found|couldn't find key .* in Secret",
    ),
    Rule(
        "CreateContainerConfigError",
        Kind.DEFINITIVE,
        "the container's configuration is invalid (a missing ConfigMap or Secret, or a securityContext the "
        "image cannot satisfy): see the message",
    ),
    Rule(
        "CreateContainerError",
        Kind.DEFINITIVE,
        "the container runtime could not create the container: see the message",
    ),
    Rule(
        "RunContainerError",
        Kind.DEFINITIVE,
        "the container could not be started; usually the command is missing from the image or not "
        "executable: check the entrypoint",
    ),
    Rule(
        "ContainerCannotRun",
        Kind.DEFINITIVE,
        "the container could not be started; usually the command is missing from the image or not "
        "executable: check the entrypoint",
    ),
    Rule(
        "StartError",
        Kind.DEFINITIVE,
        "the container could not be started; usually the command is missing from the image or not "
        "executable: check the entrypoint",
    ),
)
_REST: tuple[Rule, ...] = (
    # --- exits
    Rule(
        "CrashLoopBackOff",
        Kind.BACKOFF,
        "the container keeps exiting and the kubelet is backing off: see its last log lines and exit code",
    ),
    Rule(
        "OOMKilled",
        Kind.COUNTED,
        "the container ran out of memory: raise its memory limit or lower the app's memory use",
    ),
    Rule(
        "ExitCode:127",
        Kind.DEFINITIVE,
        "exit code 127: the command was not found; check the entrypoint and that it exists in the image",
    ),
    Rule(
        "ExitCode:126",
        Kind.DEFINITIVE,
        "exit code 126: the command is not executable; check its file mode or interpreter line",
    ),
    Rule(
        "Completed",
        Kind.COUNTED,
        "the main process exited with code 0; a Deployment's container must keep running",
    ),
    Rule("ExitCode:*", Kind.COUNTED, "the container exited with an error: see its last log lines"),
    Rule("Error", Kind.COUNTED, "the container exited with an error: see its last log lines"),
    Rule("Signal", Kind.COUNTED, "the container was killed by a signal: see its last log lines"),
    # --- scheduling, readiness, the Deployment's and ReplicaSet's own conditions
    Rule(
        "Unschedulable",
        Kind.GRACE,
        "no node can run the pod: see the scheduler's message (resources requested, node selector, taints)",
    ),
    Rule(
        "ReadinessProbeFailed",
        Kind.GRACE,
        "the readiness probe still fails after the time its settings allow: check the probe's path and "
        "port against what the app serves, and the app's log",
    ),
    Rule(
        "ProgressDeadlineExceeded",
        Kind.DEFINITIVE,
        "the Deployment made no progress within spec.progressDeadlineSeconds: see the pods' state and events",
    ),
    Rule(
        "FailedCreate",
        Kind.DEFINITIVE,
        "the namespace's Pod Security level forbids this pod: fix the securityContext",
        r"PodSecurity",
    ),
    Rule(
        "FailedCreate",
        Kind.TRANSIENT,
        "the ReplicaSet could not create pods (quota, admission): see the message",
    ),
    Rule(
        "UnexpectedImage",
        Kind.DEFINITIVE,
        "the Deployment does not run the image this deploy applied: something else changed it (a concurrent "
        "deploy of the same release, or a chart fetched by a version tag another deploy overwrote); see "
        "`helm history` and the release's chart version",
    ),
    Rule("HookFailed", Kind.DEFINITIVE, "a helm hook or test pod failed: see its log lines"),
    Rule("PodFailed", Kind.TRANSIENT, "the pod failed (e.g. it was evicted); its ReplicaSet replaces it"),
    # --- normal progress
    Rule("ContainerCreating", Kind.TRANSIENT, "the container is being created"),
    Rule("PodInitializing", Kind.TRANSIENT, "init containers are running"),
)
RULES: tuple[Rule, ...] = (*_IMAGE, *_START, *_REST)

# A container waiting for one of these reasons cannot get its image.
IMAGE_PULL_REASONS = frozenset(rule.reason for rule in _IMAGE)
# A container that ended with one of these reasons never ran its command.
START_REASONS = frozenset(rule.reason for rule in _START)

_UNKNOWN = Rule("", Kind.TRANSIENT, "see the pod's events")


def classify(reason: str, message: str = "") -> Rule:
    """The rule for `reason` (an `Init:` prefix is ignored), refined by the API's `message`.

    `Signal:N` reasons share the `Signal` rule. Unknown reasons are TRANSIENT: the deadline bounds them,
    and a new reason never fails a rollout it does not understand.
    """
    bare = reason.removeprefix("Init:")
    if bare.startswith("Signal:"):
        bare = "Signal"
    for rule in RULES:
        if rule.matches(bare, message):
            return rule
    return _UNKNOWN


@dataclass(frozen=True)
class Failure:
    """Why a rollout failed, as found in one object: which rule fired, where, and what to do.

    `reason` is the API's reason (`CrashLoopBackOff`, `Init:ErrImagePull`, `ExitCode:3`, ...), `message`
    the API's detail for it, `rule` says in words which rule fired ("back-off", "2 exits ≥ budget 2", ...).
    `restarted` tells the log collector to read the previous container's log.
    """

    reason: str
    message: str
    hint: str
    rule: str
    object: str  # kind/name, e.g. "pod/web-6f7d9-abcde" or "deployment/web"
    pod: str | None = None
    container: str | None = None
    restarted: bool = False
    exit_code: int | None = None

    def describe(self) -> str:
        """One line: `pod/x container y: CrashLoopBackOff (back-off): back-off 10s restarting ...`."""
        where = self.object + (f" container {self.container}" if self.container else "")
        text = f"{where}: {self.reason} ({self.rule})"
        return f"{text}: {self.message}" if self.message else text


@dataclass(frozen=True)
class FailurePolicy:
    """The failure budget: how much to forgive before a rollout counts as failed.

    max_exits: exits of one container (restarts included) that fail the rollout; the first exit is
    forgiven by default because a dependency may simply not be up yet, the second is not.
    unschedulable_grace: seconds a pod may stay unschedulable; a rolling update frees room within seconds,
    and the local cluster has no autoscaler that could add a node.
    readiness_grace: seconds a running container may stay not-ready; None derives it from the container's
    probes (`probes.readiness_grace`).
    unprobed_settle: seconds a container without a readiness probe must have run before its pod counts as
    healthy. Such a container is "ready" the moment its process starts, so readiness proves nothing; an app
    that dies on start-up (bad config, missing module) exits within a second or two. With a readiness
    probe, passing it is the proof and nothing is added.
    pull_secret_grace: seconds from a pod's creation during which a refused pull is retried rather than
    failed when the pod names imagePullSecrets: the kubelet's first read of a new pull Secret can time out
    on a busy node, it then pulls anonymously, and its retry (10 s later) has the Secret.
    slow_probe_grace: seconds added to the readiness grace of a pod whose readiness probe has only timed
    out so far, never answered wrong: on a loaded node a healthy app can answer a 1 s probe late for a
    while (seen in CI at load 9), whereas a wrong path or port is refused or answered at once.
    """

    max_exits: int = 2
    unschedulable_grace: float = 20.0
    readiness_grace: float | None = None
    unprobed_settle: float = 3.0
    pull_secret_grace: float = 30.0
    slow_probe_grace: float = 30.0


DEFAULT_POLICY = FailurePolicy()
