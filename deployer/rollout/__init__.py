"""Follow a Deployment's rollout and say, fast, whether it worked and if not why.

One module per kind (`deployment`, `replicaset`, `pod`, `event`), each with its pure status function over
API objects as dicts; `reasons` holds the one classification table and the failure budget; `probes` the
probe-derived readiness grace; `watcher` the watch loop; `feed` the typed events it yields; `diagnosis`
the verdict with log lines and Warning events.
"""

from deployer.rollout.deployment import RolloutStatus, deployment_status, rollout_status
from deployer.rollout.diagnosis import RolloutVerdict
from deployer.rollout.feed import RolloutEvent
from deployer.rollout.pod import pod_status
from deployer.rollout.reasons import Failure, FailurePolicy
from deployer.rollout.watcher import RolloutWatch, watch_rollout

__all__ = [
    "Failure",
    "FailurePolicy",
    "RolloutEvent",
    "RolloutStatus",
    "RolloutVerdict",
    "RolloutWatch",
    "deployment_status",
    "pod_status",
    "rollout_status",
    "watch_rollout",
]
