"""End-to-end tests and the local Kubernetes cluster they run against (see e2e/cluster)."""
