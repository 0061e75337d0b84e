"""The built-in environment: today's local stack, so `make demo` and `deployer ship` need no deployer.yaml.

It is what scripts/stack and e2e/cluster start: the registry on 127.0.0.1:5000 over plain HTTP (loopback;
said explicitly, as any insecure registry must be) with the credentials file `scripts/stack up` writes,
and the local cluster's admin kubeconfig. A deployer.yaml may define an environment of the same name to
replace it.
"""

from __future__ import annotations

from pathlib import Path

from deployer import policies as shipped_policies

from . import model as m

__all__ = ["LOCAL", "LOCAL_NAME"]

LOCAL_NAME = "local"

_HOST = "127.0.0.1:5000"
_NAMESPACE = "staging"

LOCAL = m.Environment(
    name=LOCAL_NAME,
    registry=m.Registry(
        host=_HOST,
        namespace=_NAMESPACE,
        charts=f"oci://{_HOST}/{_NAMESPACE}/charts",
        tls=m.Tls(m.TlsMode.INSECURE),
        credentials=m.CredentialsSource(
            m.CredentialsKind.FILE, path=Path("/var/lib/deployer/registry/credentials.env")
        ),
    ),
    cluster=m.Cluster(
        kubeconfig=Path("/var/lib/deployer/cluster/kubeconfig"),
        context=None,
        # As deployer does today: the service's deploy.yaml `namespace:`, else the release name.
        namespace=m.NamespaceRule("{release}", service_may_choose=True),
    ),
    policies=m.Policies(blubber=shipped_policies.BLUBBER, deploy=shipped_policies.DEPLOY),
)
"""The local stack as one Environment value."""
