"""The chart's helm test pod as rendered by the real helm, and its script run by the real bash.

`deployer ship` creates the test pod while it watches the rollout and writes `go` on its stdin once the
rollout is healthy (deployer/tools/testpod.py): the script must make no request before that, fail
without one when no go comes, and start at once under `helm test` (TEST_AWAIT_GO_SECONDS 0). Here the
script runs on this machine against a local HTTP server standing in for the Service.
"""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer.tools.helm import HELM_BIN, Helm
from deployer.tools.testpod import ANNOTATION, AWAIT_GO, early_manifests
from tests.conftest import require
from tests.integration.test_chart_helm import rendered

BASH = shutil.which("bash") or "/bin/bash"


class _Server(http.server.ThreadingHTTPServer):
    requests: list[float]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the script reads the status line and hangs up: a broken pipe here is expected


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.requests.append(time.monotonic())  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def service() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def test_pod(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The chart's test pod as helm renders it for node-hello (rendered once for the module)."""
    require("helm", Path(HELM_BIN).is_file(), "e2e/tools.sh")
    require("bash", Path(BASH).is_file(), "apt-get install bash")
    chart = rendered(tmp_path_factory.mktemp("chart"))
    text = Helm().template("node-hello", "staging", chart, values_file=str(chart / "values.yaml"))
    (pod,) = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "Pod"]
    return pod


def _start(pod: dict[str, Any], server: _Server) -> subprocess.Popen[str]:
    """The pod's command with its environment, the Service's address pointing at `server`."""
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    env |= {
        f"{env['TARGET_ENV_PREFIX']}_SERVICE_HOST": "127.0.0.1",
        "TARGET_PORT": str(server.server_address[1]),
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.Popen(
        [BASH, *container["command"][1:]],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_the_rendered_test_pod_can_be_created_early(test_pod: dict[str, Any]) -> None:
    (pod,) = early_manifests(yaml.safe_dump(test_pod), "web", 90)  # type: ignore[misc]
    assert pod["metadata"]["annotations"] == {ANNOTATION: "test"}
    (container,) = pod["spec"]["containers"]
    assert {"name": AWAIT_GO, "value": "90"} in container["env"]
    assert (container["stdin"], container["stdinOnce"]) == (True, True)


def test_under_helm_test_the_script_requests_at_once(test_pod: dict[str, Any], service: _Server) -> None:
    (container,) = test_pod["spec"]["containers"]
    assert {"name": AWAIT_GO, "value": "0"} in container["env"]  # the chart's own value
    script = _start(test_pod, service)
    out, _ = script.communicate(timeout=30)  # stdin closed at once: nothing is read from it
    assert script.returncode == 0, out
    assert len(service.requests) == 1
    assert "-> HTTP/1.0 200 OK" in out


def test_the_request_waits_for_go(test_pod: dict[str, Any], service: _Server) -> None:
    (early,) = early_manifests(yaml.safe_dump(test_pod), "web", 20)  # type: ignore[misc]
    script = _start(early, service)
    time.sleep(1.0)  # the pod is up and waiting; the rollout is not healthy yet
    assert script.poll() is None
    assert service.requests == []
    went = time.monotonic()
    out, _ = script.communicate("go\n", timeout=30)
    assert script.returncode == 0, out
    assert len(service.requests) == 1 and service.requests[0] >= went
    assert out.startswith("attempt 1 (0s): GET"), out  # its deadline counts from the go


@pytest.mark.parametrize("stdin", ["", "stop\n"], ids=["stdin closed", "another line"])
def test_without_a_go_the_script_fails_without_a_request(
    test_pod: dict[str, Any], service: _Server, stdin: str
) -> None:
    (early,) = early_manifests(yaml.safe_dump(test_pod), "web", 20)  # type: ignore[misc]
    script = _start(early, service)
    out, _ = script.communicate(stdin, timeout=30)
    assert script.returncode == 1
    assert out == "no go signal within 20s: the request was not made\n"
    assert service.requests == []


def test_a_go_that_never_comes_fails_after_the_wait(test_pod: dict[str, Any], service: _Server) -> None:
    (early,) = early_manifests(yaml.safe_dump(test_pod), "web", 1)  # type: ignore[misc]
    script = _start(early, service)  # stdin stays open, silent: a ship that died before its go
    out, _ = script.stdout.read(), script.wait(timeout=30)  # type: ignore[union-attr]
    assert script.returncode == 1
    assert out == "no go signal within 1s: the request was not made\n"
    assert service.requests == []
