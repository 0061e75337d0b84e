"""A single-node Kubernetes cluster for e2e tests, and the providers behind `e2e/cluster`.

Standard library only: `e2e/cluster up` runs before the project's virtualenv exists in CI.
The recipe and the traps it avoids are described in /work/shared/spec/local-cluster.md.
"""
