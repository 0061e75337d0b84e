"""The unit-test guard in conftest.py refuses docker/helm/kubectl and the Kubernetes API."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sh

from tests.deployer.conftest import ReachedOutside


@pytest.mark.parametrize(
    "call",
    [
        lambda: subprocess.run(["/usr/bin/docker", "info"], check=False),
        lambda: subprocess.run("helm version", shell=False, check=False),
    ],
)
def test_subprocess_calls_to_guarded_tools_are_refused(call, no_outside_calls_in_unit_tests):
    with pytest.raises(ReachedOutside, match="unit test tried to call `(docker|helm)` through subprocess"):
        call()
    assert len(no_outside_calls_in_unit_tests) == 1
    no_outside_calls_in_unit_tests.clear()  # refused on purpose here


def test_sh_calls_to_guarded_tools_are_refused(no_outside_calls_in_unit_tests, tmp_path):
    fake = tmp_path / "kubectl"
    fake.write_text("#!/bin/sh\necho ran\n")
    fake.chmod(0o755)
    with pytest.raises(ReachedOutside, match="`kubectl` through sh"):
        sh.Command(str(fake))("version")
    no_outside_calls_in_unit_tests.clear()


def test_kubernetes_api_calls_are_refused(no_outside_calls_in_unit_tests):
    from kubernetes import client

    api = client.CoreV1Api(client.ApiClient(client.Configuration(host="https://127.0.0.1:6443")))
    with pytest.raises(
        ReachedOutside, match=r"the Kubernetes API \(GET https://127.0.0.1:6443/api/v1/namespaces"
    ):
        api.list_namespace()
    no_outside_calls_in_unit_tests.clear()


def test_other_processes_still_run():
    out = subprocess.run([sys.executable, "-c", "print('ok')"], capture_output=True, text=True, check=True)
    assert out.stdout == "ok\n"
    assert sh.Command(sys.executable)("-c", "print('ok')") == "ok\n"


@pytest.mark.docker
def test_marked_tests_are_not_guarded(no_outside_calls_in_unit_tests):
    # The fixture stands aside: Popen is the real one again.
    assert subprocess.Popen.__init__.__qualname__ == "Popen.__init__"
