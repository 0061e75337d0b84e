"""What a ship needs the cluster to allow in the release's namespace: the Role CI is given.

The same rules as e2e/rbac/deployer-role.yaml (a test keeps the two equal) and docs/least-privilege.md,
which says why each is needed (found by removing one verb at a time and shipping: e2e/rbac/trial.py).
`deployer ship` asks for each one (SelfSubjectAccessReview) before it builds or pushes anything.
"""

from __future__ import annotations

__all__ = ["SHIP_RULES", "Rule"]

Rule = tuple[str, str, tuple[str, ...]]  # (api group, resource[/subresource], verbs)

SHIP_RULES: tuple[Rule, ...] = (
    ("", "secrets", ("get", "list", "create", "update", "delete")),  # helm's release records
    ("apps", "deployments", ("get", "list", "watch", "create", "patch", "delete")),
    ("", "services", ("get", "create", "patch", "delete")),
    ("apps", "replicasets", ("list", "watch")),  # the rollout watch
    ("", "pods", ("get", "list", "watch", "create", "delete")),  # create/delete: helm test's hook pod
    ("", "events", ("list", "watch")),
    ("", "pods/log", ("get",)),
    ("", "pods/portforward", ("get",)),  # HTTP smoke checks (the WebSocket upgrade is a GET)
    ("coordination.k8s.io", "leases", ("get", "create", "update", "delete")),  # the release lock
)
