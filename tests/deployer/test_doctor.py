"""`deployer doctor`: each check with fakes at the Probes seam, and once on the real stack and cluster."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deployer import doctor
from deployer.doctor import DoctorConfig, Finding, Probes
from deployer.errors import EnvironmentMissing, ExitCode
from tests.conftest import require

PASSWORD = "s3cret-Registry-pw"


class FakeCluster:
    def __init__(
        self, *, denied=(), namespace_exists=True, version="Kubernetes v1.32.3 at https://10.0.0.1:6443"
    ):
        self.denied = set(denied)
        self.exists = namespace_exists
        self.version = version
        self.asked = []

    def server_version(self):
        if isinstance(self.version, Exception):
            raise self.version
        return self.version

    def namespace_exists(self, namespace):
        return self.exists

    def can_i(self, verb, group, resource, namespace):
        self.asked.append((verb, group, resource, namespace))
        return (verb, resource) not in self.denied


def _probes(*, docker=(0, "20.10.24"), helm=(0, "v3.16.4+g1234"), http=None, cluster=None):
    http = http or {(): 401, ("auth",): 200}

    def run(argv, env, timeout):
        return docker if argv[0].endswith("docker") else helm

    def get(url, headers, timeout):
        key = ("auth",) if "Authorization" in headers else ()
        value = http[key]
        if isinstance(value, Exception):
            raise value
        return value

    def make_cluster(kubeconfig, context):
        if isinstance(cluster, Exception):
            raise cluster
        return cluster or FakeCluster()

    return Probes(run=run, http=get, cluster=make_cluster)


@pytest.fixture
def creds(tmp_path):
    path = tmp_path / "credentials.env"
    path.write_text(f"REGISTRY_USER=deployer\nREGISTRY_PASSWORD={PASSWORD}\n")
    path.chmod(0o600)
    return path


def _config(creds, **kw):
    return DoctorConfig(credentials=creds, namespace="node-hello", **kw)


def _run(config, probes):
    lines = []
    code = doctor.run(config, probes, echo=lines.append)
    return code, lines


def test_all_good(creds):
    code, lines = _run(_config(creds), _probes())
    assert code == 0
    assert lines == [
        "ok    docker          engine 20.10.24 answers on unix:///var/run/docker.sock",
        "ok    registry        127.0.0.1:5000 answers (anonymous GET /v2/ → 401)",
        "ok    registry login  user 'deployer' logs in to 127.0.0.1:5000",
        "ok    helm            /var/cache/deployer/tools/bin/helm v3.16.4+g1234",
        "ok    kubeconfig      the staging kubeconfig loads",
        "ok    cluster         Kubernetes v1.32.3 at https://10.0.0.1:6443",
        "ok    namespace       namespace 'node-hello' exists",
        "ok    rbac            may do everything a ship does in namespace 'node-hello'",
        "doctor: all checks passed",
    ]


def test_rbac_is_asked_for_every_permission_a_ship_needs(creds):
    cluster = FakeCluster()
    doctor.check_all(_config(creds), _probes(cluster=cluster))
    assert ("create", "coordination.k8s.io", "leases", "node-hello") in cluster.asked
    assert ("get", "", "pods/portforward", "node-hello") in cluster.asked
    assert ("get", "", "pods/log", "node-hello") in cluster.asked
    expected = sum(len(verbs) for _, _, verbs in doctor.SHIP_PERMISSIONS)
    assert len(cluster.asked) == expected


def _failing(findings):
    return [(f.check, f.message, f.fix) for f in findings if not f.ok]


def test_docker_not_running(creds):
    probes = _probes(docker=(1, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."))
    assert _failing(doctor.check_all(_config(creds), probes)) == [
        (
            "docker",
            "the docker engine does not answer on unix:///var/run/docker.sock: "
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.",
            "start it with: scripts/stack up",
        )
    ]


def test_docker_not_installed(creds):
    failing = _failing(doctor.check_all(_config(creds), _probes(docker=(127, "docker: not found"))))
    assert failing == [
        ("docker", "/usr/bin/docker is not installed", "scripts/stack up (installs docker.io)")
    ]


def test_registry_down(creds):
    probes = _probes(http={(): OSError("[Errno 111] Connection refused"), ("auth",): 200})
    assert _failing(doctor.check_all(_config(creds), probes)) == [
        (
            "registry",
            "nothing answers at http://127.0.0.1:5000/v2/: [Errno 111] Connection refused",
            "start it with: scripts/stack up",
        )
    ]


def test_registry_rejects_the_credentials_and_never_prints_them(creds):
    code, lines = _run(_config(creds), _probes(http={(): 401, ("auth",): 401}))
    assert code == ExitCode.ENVIRONMENT
    text = "\n".join(lines)
    assert (
        "FAIL  registry login  the credentials in "
        f"{creds} do not log in to 127.0.0.1:5000 (GET /v2/ → 401)" in text
    )
    assert PASSWORD not in text


def test_registry_without_auth_and_world_readable_credentials(creds):
    creds.chmod(0o644)
    failing = _failing(doctor.check_all(_config(creds), _probes(http={(): 200, ("auth",): 200})))
    assert failing == [
        (
            "registry auth",
            "127.0.0.1:5000 accepts anonymous requests; pushes are not authenticated",
            "run the registry with htpasswd auth (scripts/stack up does)",
        ),
        ("registry credentials", f"{creds} is readable by others (mode 644)", f"chmod 600 {creds}"),
    ]


def test_missing_credentials_file(tmp_path):
    failing = _failing(doctor.check_all(_config(tmp_path / "nope.env"), _probes()))
    assert failing == [
        (
            "registry login",
            f"cannot read the registry credentials {tmp_path / 'nope.env'}: No such file or directory",
            "scripts/stack up writes them (REGISTRY_USER=..., REGISTRY_PASSWORD=...)",
        )
    ]


def test_helm_missing(creds):
    failing = _failing(doctor.check_all(_config(creds), _probes(helm=(127, "helm: not found"))))
    assert failing == [
        ("helm", "helm is not installed at /var/cache/deployer/tools/bin/helm", "build: e2e/tools.sh")
    ]


def test_kubeconfig_missing(creds):
    err = EnvironmentMissing(
        "kubeconfig /nope does not exist", hint="start the local cluster with `e2e/cluster up`"
    )
    findings = doctor.check_all(_config(creds), _probes(cluster=err))
    assert _failing(findings) == [
        ("kubeconfig", "kubeconfig /nope does not exist", "start the local cluster with `e2e/cluster up`")
    ]
    assert [f.check for f in findings][-1] == "kubeconfig"  # no cluster checks without a kubeconfig


def test_cluster_unreachable(creds):
    err = EnvironmentMissing("cannot reach the Kubernetes API to read the server version: refused")
    failing = _failing(doctor.check_all(_config(creds), _probes(cluster=FakeCluster(version=err))))
    assert failing == [
        (
            "cluster",
            "cannot reach the Kubernetes API to read the server version: refused",
            "check with: e2e/cluster status",
        )
    ]


def test_rbac_denials_are_listed_with_a_fix(creds):
    cluster = FakeCluster(denied={("create", "leases"), ("update", "leases"), ("get", "pods/portforward")})
    failing = _failing(doctor.check_all(_config(creds), _probes(cluster=cluster)))
    assert failing == [
        (
            "rbac",
            "in namespace 'node-hello' this user may not: get pods/portforward; "
            "create/update leases (coordination.k8s.io)",
            "kubectl --namespace node-hello create rolebinding deployer --clusterrole=admin "
            "--user=<the kubeconfig's user>  (admin covers leases; edit does not)",
        )
    ]


def test_missing_namespace_that_cannot_be_created(creds):
    cluster = FakeCluster(namespace_exists=False, denied={("create", "namespaces")})
    failing = _failing(doctor.check_all(_config(creds), _probes(cluster=cluster)))
    assert failing[0] == (
        "namespace",
        "namespace 'node-hello' does not exist and this user may not create it",
        "kubectl create namespace node-hello  (as a cluster admin)",
    )


def test_other_environment_is_a_kubeconfig_context(creds):
    seen = []

    def make_cluster(kubeconfig, context):
        seen.append((kubeconfig, context))
        return FakeCluster()

    config = _config(creds, environment="prod-eu", kubeconfig=Path("/k/config"))
    doctor.check_all(config, Probes(run=_probes().run, http=_probes().http, cluster=make_cluster))
    assert seen == [(Path("/k/config"), "prod-eu")]


def test_render_marks_failures_with_their_fix():
    findings = [Finding("a", True, "fine"), Finding("bb", False, "broken", fix="do x")]
    lines = doctor.render(findings, color=False)
    assert lines == [
        "ok    a   fine",
        "FAIL  bb  broken",
        "          fix: do x",
        "doctor: 1 problem(s) found",
    ]


@pytest.mark.docker
@pytest.mark.registry
@pytest.mark.cluster
def test_doctor_on_the_real_stack_and_cluster():
    from deployer.tools.helm import HELM_BIN
    from deployer.tools.kube import DEFAULT_KUBECONFIG

    require("docker", os.path.exists("/var/run/docker.sock"), "scripts/stack up")
    require("registry credentials", doctor.CREDENTIALS.exists(), "scripts/stack up")
    require("helm", os.path.exists(HELM_BIN), "e2e/tools.sh")
    require("cluster", os.path.exists(DEFAULT_KUBECONFIG), "e2e/cluster up")
    lines: list[str] = []
    code = doctor.run(DoctorConfig(namespace="default"), echo=lines.append)
    assert lines[-1] == "doctor: all checks passed", "\n".join(lines)
    assert code == 0
    password = dict(
        line.split("=", 1) for line in doctor.CREDENTIALS.read_text().splitlines() if "=" in line
    ).get("REGISTRY_PASSWORD")
    assert password and password not in "\n".join(lines)
