"""deployer.tools.docker: reading BuildKit and push output (recorded from docker 20.10 on this stack)."""

from __future__ import annotations

import pytest

from deployer.tools import docker

# `docker build --progress plain` of a RUN that fails (docker 20.10.24, BuildKit 0.8).
FAILED_RUN = """\
#7 [4/5] WORKDIR /srv/app
#7 sha256:badd1fbe1c8eeffe3e43936aaa75348a31b2b77253d666366bdb9e9cba2ea7c2
#7 DONE 0.0s

#8 [5/5] RUN sh "-c" "echo about to fail; echo details on stderr >&2; exit 7"
#8 sha256:34f40031f495edcc214ba311b35e3ee12790555971a0dcffff206828f331c22d
#8 0.136 about to fail
#8 0.136 details on stderr
#8 ERROR: executor failed running [/bin/sh -c sh "-c" "echo about to fail; exit 7"]: exit code: 7
------
 > [5/5] RUN sh "-c" "echo about to fail; echo details on stderr >&2; exit 7":
------
executor failed running [/bin/sh -c sh "-c" "echo about to fail; exit 7"]: exit code: 7
"""

# A multi-stage build whose `prep` stage fails while another vertex prints in between.
FAILED_STAGE = """\
#11 [prep 6/9] RUN npm ci "--only=production"
#12 [production 2/6] RUN groupadd runuser
#11 1.204 npm ERR! code E404
#12 DONE 0.3s
#11 1.205 npm ERR! 404 Not Found - GET https://registry.npmjs.org/nope - Not found
#11 ERROR: executor failed running [/bin/sh -c npm ci "--only=production"]: exit code: 1
------
 > [prep 6/9] RUN npm ci "--only=production":
------
error: failed to solve: executor failed running [/bin/sh -c npm ci "--only=production"]: exit code: 1
"""

# A base image the registry does not have.
MISSING_BASE = """\
#3 [internal] load metadata for 127.0.0.1:5000/base/nope:12
#3 sha256:d3dbf7876bb914cb5acf71448288ff7bce063a321ef2f6dc67af2812729e42ff
#3 ERROR: 127.0.0.1:5000/base/nope:12: not found
------
 > [internal] load metadata for 127.0.0.1:5000/base/nope:12:
------
failed to solve with frontend dockerfile.v0: failed to create LLB definition: \
127.0.0.1:5000/base/nope:12: not found
"""


def test_failed_run_names_the_instruction_and_its_output():
    failure = docker.parse_build_failure(FAILED_RUN)
    assert failure.step == "5/5"
    assert failure.instruction == 'RUN sh "-c" "echo about to fail; echo details on stderr >&2; exit 7"'
    assert failure.reason == "exit code: 7"
    assert failure.tail == ["about to fail", "details on stderr"]


def test_failed_stage_keeps_only_its_own_lines():
    failure = docker.parse_build_failure(FAILED_STAGE)
    assert failure.step == "prep 6/9"
    assert failure.instruction == 'RUN npm ci "--only=production"'
    assert failure.reason == "exit code: 1"
    assert failure.tail == [
        "npm ERR! code E404",
        "npm ERR! 404 Not Found - GET https://registry.npmjs.org/nope - Not found",
    ]


def test_missing_base_image():
    failure = docker.parse_build_failure(MISSING_BASE)
    assert failure.step == "internal"
    assert failure.instruction == "load metadata for 127.0.0.1:5000/base/nope:12"
    assert failure.reason == "127.0.0.1:5000/base/nope:12: not found"
    assert failure.tail == ["127.0.0.1:5000/base/nope:12: not found"]


def test_output_without_a_step_gives_the_last_lines():
    failure = docker.parse_build_failure("line 1\nline 2\nunable to prepare context: path not found\n", 2)
    assert failure.step is None
    assert failure.reason == "unable to prepare context: path not found"
    assert failure.tail == ["line 2", "unable to prepare context: path not found"]


def test_tail_is_bounded():
    lines = "\n".join(f"#5 0.{i:03d} line {i}" for i in range(100))
    output = f"#5 [2/3] RUN make\n{lines}\n------\n > [2/3] RUN make:\n------\nexit code: 2\n"
    assert docker.parse_build_failure(output, tail_lines=3).tail == ["line 97", "line 98", "line 99"]


# `docker push` into a pipe still draws progress with cursor movements (recorded).
PUSH = (
    "The push refers to repository [127.0.0.1:5000/staging/node-hello]\n\n"
    "\x1b[1A\x1b[2K5f70bf18a086: Preparing \x1b[1B\n"
    "\x1b[1A\x1b[2Kf9afca969e82: Preparing \x1b[1B\x1b[2A\x1b[2K5f70bf18a086: Preparing \x1b[2B\n"
    "\x1b[1A\x1b[2Kb921efb629d5: Preparing \x1b[1B\x1b[1A\x1b[2Kb921efb629d5: Pushing [=>  ] 1MB/5MB\x1b[1B"
    "\x1b[5A\x1b[2Kf9afca969e82: Layer already exists \x1b[5B\x1b[4A\x1b[2Kb921efb629d5: Pushed \x1b[4B"
    "\x1b[6A\x1b[2K5f70bf18a086: Mounted from base/nodejs \x1b[6B"
    "20261127T063653Z-production: digest: sha256:" + "c" * 64 + " size: 1781\n"
)


def test_push_output_digest_and_final_layer_states():
    digest, layers = docker.parse_push_output(PUSH)
    assert digest == "sha256:" + "c" * 64
    assert layers == {
        "5f70bf18a086": "Mounted from base/nodejs",
        "f9afca969e82": "Layer already exists",
        "b921efb629d5": "Pushed",
    }


def test_push_output_without_digest():
    assert docker.parse_push_output("denied: requested access to the resource is denied\n") == (None, {})


def test_docker_env_passes_docker_host_only_when_set(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    env = docker.docker_env()
    assert env == {"DOCKER_BUILDKIT": "1", "DOCKER_CONFIG": str(docker.DOCKER_CONFIG)}
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/elsewhere.sock")
    assert docker.docker_env()["DOCKER_HOST"] == "unix:///tmp/elsewhere.sock"


def test_engine_missing_is_recognised_only_from_the_clients_own_words():
    err = docker._engine_missing(
        "Cannot connect to the Docker daemon at unix:///tmp/dead.sock. Is the docker daemon running?"
    )
    assert err is not None
    assert err.hint == docker.START_HINT
    # A build step or test printing "connection refused" about something else is not a dead engine.
    build_line = "#9 1.2 Error: connect ECONNREFUSED 127.0.0.1:5432 (connection refused)"
    assert docker._engine_missing(build_line) is None


# --- login and test runs: no process where none is needed -------------------------------------------------


def test_login_is_skipped_when_dockers_config_has_these_credentials(tmp_path, monkeypatch):
    import base64
    import json

    calls: list[list[str]] = []
    monkeypatch.setattr(docker, "DOCKER_CONFIG", tmp_path)
    monkeypatch.setattr(docker, "_docker", lambda args, **kw: calls.append(args))
    docker.login("127.0.0.1:5000", "ci", "pw")  # no config yet: docker login runs
    assert calls[-1][:2] == ["login", "127.0.0.1:5000"]
    auth = base64.b64encode(b"ci:pw").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"127.0.0.1:5000": {"auth": auth}}}))
    docker.login("127.0.0.1:5000", "ci", "pw")
    assert len(calls) == 1
    docker.login("127.0.0.1:5000", "ci", "new-password")  # other credentials: logs in again
    docker.login("127.0.0.1:5001", "ci", "pw")  # another registry too
    assert len(calls) == 3
    (tmp_path / "config.json").write_text("{not json")
    assert not docker.logged_in("127.0.0.1:5000", "ci", "pw")


def test_a_test_container_is_removed_by_name_only_when_the_run_did_not_return(monkeypatch):
    from deployer.tools.command import Completed

    calls: list[list[str]] = []

    def fake(args, **kw):
        calls.append(args)
        if args[0] == "run" and kw.get("timeout") == 1:
            raise KeyboardInterrupt
        return Completed(argv=args, exit_code=3, stdout="", stderr="", duration=0.1, tail=["boom"])

    monkeypatch.setattr(docker, "_docker", fake)
    assert docker.run_container("img", name="t1", timeout=60).exit_code == 3
    assert [c[0] for c in calls] == ["run"]  # --rm removed it before docker run returned
    with pytest.raises(KeyboardInterrupt):
        docker.run_container("img", name="t2", timeout=1)
    assert calls[-1] == ["rm", "--force", "t2"]
