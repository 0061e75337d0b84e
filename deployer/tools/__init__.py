"""One module per outside tool deployer runs or talks to: the command runner every process goes through,
docker, the registry, helm, git, the Kubernetes client, port-forwards and the API server probe. Nothing here
knows the ship workflow."""
