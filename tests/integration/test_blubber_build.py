"""Blubber's Dockerfiles build on the real engine (scripts/stack up) from our base images, and the images
are what the config says: users, ownership, working directory, entrypoint, labels, copied artifacts.

Two multi-stage outputs end to end: a base-image application built from a builder stage, and a scratch
image that copies one artifact from a builder stage. Builds use the service directory as context and the
Dockerfile on stdin, like the deployer (`docker build -f - <service dir>`), with BuildKit and host network.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import textwrap
import uuid
from pathlib import Path

import pytest

from blubber import compile_dockerfile, load, runtime
from deployer.tools.docker import DOCKER_CONFIG
from tests.integration.conftest import DOCKER

pytestmark = [pytest.mark.docker, pytest.mark.registry]

BASE = "127.0.0.1:5000/base/bookworm:12"


def docker(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_BUILDKIT": "1", "DOCKER_CONFIG": str(DOCKER_CONFIG)}
    env.pop("DOCKER_HOST", None)
    result = subprocess.run(
        [DOCKER, *args], input=stdin, capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, (
        f"docker {' '.join(args[:2])} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture
def images():
    """Tags built by a test, removed afterwards."""
    tags: list[str] = []
    yield tags
    if tags:
        subprocess.run([DOCKER, "rmi", "-f", *tags], capture_output=True)


def service(tmp_path: Path, config: str, files: dict[str, str]) -> Path:
    root = tmp_path / "svc"
    (root / ".pipeline").mkdir(parents=True)
    (root / ".pipeline" / "blubber.yaml").write_text(textwrap.dedent(config))
    for name, text in files.items():
        path = root / name
        path.write_text(text)
        if text.startswith("#!"):
            path.chmod(0o755)
    return root


def build(root: Path, variant: str, images: list[str], *build_args: str) -> tuple[str, dict]:
    """Compile with the shipped default policy and build; returns (tag, image config)."""
    dockerfile = compile_dockerfile(load(root / ".pipeline" / "blubber.yaml"), variant)
    tag = f"blubber-test/{variant}:{uuid.uuid4().hex[:10]}"
    images.append(tag)
    args = [a for b in build_args for a in ("--build-arg", b)]
    docker(
        "build",
        "--network",
        "host",
        "--progress",
        "plain",
        *args,
        "-t",
        tag,
        "-f",
        "-",
        str(root),
        stdin=dockerfile,
    )
    (info,) = json.loads(docker("image", "inspect", tag).stdout)
    return tag, info["Config"]


APP_CONFIG = f"""\
version: v4
base: {BASE}
runs: {{environment: {{GREETING: "hi there"}}}}
variants:
  build:
    arguments: {{TARGET: world}}
    builders:
      - custom:
          requirements: [deps.txt]
          command: [sh, -c, 'cat deps.txt > deps.out && echo "$TARGET" > target.out']
          caches: [/var/cache/blubber-test]
      - custom:
          script: |
            #!/bin/sh
            set -e
            echo "script ran as $(id -u) in $(pwd)" > script.out
    copies: [local]
  production:
    copies: [{{from: build}}, {{from: build, source: ./target.out, destination: /srv/app/from-build.out}}]
    entrypoint: [./hello.sh, prod]
"""
APP_FILES = {
    "hello.sh": '#!/bin/sh\necho "Hello, $1: $GREETING"\n',
    "deps.txt": "dep-a\n",
    "README.md": "readme\n",
}


def test_application_built_from_a_builder_stage(tmp_path: Path, stack, images) -> None:
    root = service(tmp_path, APP_CONFIG, APP_FILES)
    tag, config = build(root, "production", images, "TARGET=override")

    rt = runtime(load(root / ".pipeline" / "blubber.yaml"), "production")
    assert config["User"] == str(rt.uid) == "900"
    assert config["WorkingDir"] == rt.workdir == "/srv/app"
    assert config["Entrypoint"] == list(rt.entrypoint) == ["./hello.sh", "prod"]
    assert not config["Cmd"]
    assert config["Labels"] == {"blubber.variant": "production", "blubber.version": "0.1.0"}
    assert "GREETING=hi there" in config["Env"] and "HOME=/home/runuser" in config["Env"]

    assert docker("run", "--rm", "--network", "host", tag).stdout == "Hello, prod: hi there\n"
    probe = docker("run", "--rm", "--network", "host", "--entrypoint", "sh", tag, "-c",
                   "id -u; stat -c '%n %u:%g' README.md hello.sh from-build.out; cat deps.out target.out "
                   "from-build.out script.out; grep -c '^somebody:x:65533:' /etc/passwd; "
                   "grep -c '^runuser:x:900:' /etc/passwd; ls /tmp | grep -c blubber || true; "
                   "touch hello.sh 2>/dev/null && echo writable || echo read-only")  # fmt: skip
    assert probe.stdout.splitlines() == [
        "900",
        "README.md 65533:65533",
        "hello.sh 65533:65533",
        "from-build.out 65533:65533",
        "dep-a",
        "override",  # --build-arg overrides the `arguments` default
        "override",  # copied from the build stage by a relative source (resolved in build's /srv/app)
        "script ran as 65533 in /srv/app",
        "1",
        "1",
        "0",  # the builder script did not stay in the image
        "read-only",  # the runtime user cannot modify the application files
    ]


SCRATCH_CONFIG = f"""\
version: v4
lives: {{in: /usr/local/app, as: appowner, uid: 1234, gid: 1235}}
runs: {{as: apprunner, uid: 4321, gid: 4320, insecurely: true, in: /usr/local}}
variants:
  build:
    base: {BASE}
    builder:
      requirements: [main.txt]
      command: "tr a-z A-Z < main.txt > artifact.txt"
    entrypoint: [cat, artifact.txt]
  application:
    copies: [{{from: build, source: ./artifact.txt, destination: /artifact.txt}}]
    entrypoint: [/artifact.txt]
"""


def test_scratch_image_with_an_artifact_from_a_builder_stage(tmp_path: Path, stack, images) -> None:
    root = service(tmp_path, SCRATCH_CONFIG, {"main.txt": "hello from blubber\n"})
    tag, config = build(root, "application", images)
    assert config["Entrypoint"] == ["/artifact.txt"]
    assert config["Labels"]["blubber.variant"] == "application"
    container = docker("create", tag).stdout.strip()
    try:
        exported = subprocess.run([DOCKER, "export", container], capture_output=True, check=True).stdout
    finally:
        subprocess.run([DOCKER, "rm", container], capture_output=True)
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        member = tar.getmember("artifact.txt")
        assert tar.extractfile(member).read() == b"HELLO FROM BLUBBER\n"
        assert not any(name.startswith(("etc/passwd", "bin/", "usr/")) for name in tar.getnames())

    # The builder stage itself: custom users, insecure runtime (runs as the lives user), runtime directory.
    build_tag, build_config = build(root, "build", images)
    assert (build_config["User"], build_config["WorkingDir"]) == ("1234", "/usr/local")
    probe = docker("run", "--rm", "--network", "host", "--entrypoint", "sh", build_tag, "-c",
                   "id -u; getent passwd appowner apprunner | cut -d: -f1,3,4; getent group appowner apprunner "  # noqa: E501
                   "| cut -d: -f1,3; stat -c '%u:%g' /usr/local/app/artifact.txt")  # fmt: skip
    assert probe.stdout.splitlines() == [
        "1234", "appowner:1234:1235", "apprunner:4321:4320", "appowner:1235", "apprunner:4320", "1234:1235",
    ]  # fmt: skip
