"""deployer: build, test, push, deploy, watch and smoke-check a service on staging."""
