"""The built-in environment is today's local stack (what scripts/stack and e2e/cluster start)."""

from __future__ import annotations

from pathlib import Path

from deployer.target import LOCAL, CredentialsKind, TlsMode


def test_local_is_the_stack_the_project_starts() -> None:
    assert LOCAL.name == "local"
    assert LOCAL.registry.host == "127.0.0.1:5000"
    assert LOCAL.registry.repository("node-hello") == "127.0.0.1:5000/staging/node-hello"
    assert LOCAL.registry.charts == "oci://127.0.0.1:5000/staging/charts"
    assert LOCAL.registry.tls.mode is TlsMode.INSECURE
    assert LOCAL.registry.credentials.kind is CredentialsKind.FILE
    assert LOCAL.cluster.kubeconfig == Path("/var/lib/deployer/cluster/kubeconfig")
    assert LOCAL.cluster.context is None
    # deploy.yaml's namespace, else the release name: as deployer does without environments
    assert LOCAL.cluster.namespace.namespace("hello", "hello") == "hello"
    assert LOCAL.cluster.namespace.namespace("hello", "hello", chosen="team") == "team"
    assert LOCAL.policies.blubber is not None and LOCAL.policies.blubber.is_file()
    assert LOCAL.policies.deploy is not None and LOCAL.policies.deploy.is_file()
