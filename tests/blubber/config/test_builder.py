from __future__ import annotations

import subprocess

import pytest

from blubber.config.artifacts import Artifact
from blubber.config.builder import Builder, Cache, Mount, expand
from blubber.dockerfile.phases import Phase
from blubber.errors import ConfigError
from tests.blubber.helpers import config, context, phase_lines

CTX_YAML = """
base: debian:bookworm
arguments: {MAKE_TARGET: foo}
runs: {environment: {GOCACHE: /var/cache/go}}
variants:
  assets: {base: node:22}
  app: {builder: {mounts: [assets]}}
"""


def test_parse_all_keys() -> None:
    b = config(
        """
        builder:
          command: [make, -f, Makefile, foo]
          requirements: [Makefile, foo, bar/baz]
          mounts: [local, {from: local, source: ./src, destination: /mnt}]
          caches: ["/root/.cache", {destination: /var/cache/go, id: go, access: locked}]
        """
    ).common.builder
    assert b == Builder(
        ("make", "-f", "Makefile", "foo"),
        None,
        (Artifact("local", "Makefile"), Artifact("local", "foo"), Artifact("local", "bar/baz")),
        (Mount("local"), Mount("local", "./src", "/mnt")),
        (Cache("/root/.cache"), Cache("/var/cache/go", "go", "locked")),
    )


def test_list_command_with_requirements() -> None:
    b = Builder(("make", "-f", "Makefile", "foo"), requirements=tuple(
        Artifact("local", f) for f in ("Makefile", "foo", "bar/baz")))  # fmt: skip
    assert phase_lines(b, Phase.PRE_INSTALL) == [
        'COPY --chown=$LIVES_UID:$LIVES_GID ["Makefile", "foo", "./"]',
        'COPY --chown=$LIVES_UID:$LIVES_GID ["bar/baz", "bar/"]',
        'RUN make "-f" "Makefile" "foo"',
    ]
    assert phase_lines(b, Phase.POST_INSTALL) == []


def test_string_command_is_verbatim_and_arguments_expand() -> None:
    assert phase_lines(Builder("make ${MAKE_TARGET}"), Phase.PRE_INSTALL) == ["RUN make ${MAKE_TARGET}"]
    assert phase_lines(Builder("go build .\n"), Phase.PRE_INSTALL) == ["RUN go build ."]
    assert phase_lines(Builder("date +%s"), Phase.PRE_INSTALL) == ["RUN date +%s"]
    assert phase_lines(Builder(("npm", "run-script", "build:vue")), Phase.PRE_INSTALL) == [
        'RUN npm "run-script" "build:vue"'
    ]
    assert phase_lines(Builder(("make", "${MAKE_TARGET}", "$(id)")), Phase.PRE_INSTALL) == [
        'RUN make "${MAKE_TARGET}" "\\$(id)"'
    ]


def test_requirements_are_copied_without_command() -> None:
    # Quirk 5: 0.23 ignored them; we follow HEAD.
    assert phase_lines(Builder(requirements=(Artifact("local", "main.c"),)), Phase.PRE_INSTALL) == [
        'COPY --chown=$LIVES_UID:$LIVES_GID ["main.c", "./"]'
    ]


@pytest.mark.parametrize(
    "script",
    [
        'echo "hi $USER" > out\n',
        "#!/bin/sh\nprintf 'a\\\\b %s\\n' x > out\n",
        "echo '`backticks` and $(subshell) stay literal' > out",
    ],
)
def test_script_runs_exactly_as_written(tmp_path, script: str) -> None:
    """Run the generated RUN text with a real /bin/sh and compare with running the script directly."""
    run = phase_lines(Builder(script=script), Phase.PRE_INSTALL)[0].removeprefix("RUN ")
    run = run.replace("/tmp/.blubber-builder-script", str(tmp_path / "s"))
    subprocess.run(["sh", "-c", run], cwd=tmp_path, check=True, env={"USER": "me", "PATH": "/usr/bin:/bin"})
    generated = (tmp_path / "out").read_text()
    (tmp_path / "direct.sh").write_text(script)
    subprocess.run(["sh", "direct.sh"], cwd=tmp_path, check=True, env={"USER": "me", "PATH": "/usr/bin:/bin"})
    assert generated == (tmp_path / "out").read_text()
    assert not (tmp_path / "s").exists()  # the script does not stay in the image


def test_mounts_and_caches() -> None:
    b = Builder(
        "go build",
        mounts=(Mount("assets", "/src/dist", "./dist"), Mount("local")),
        caches=(Cache("${GOCACHE}"), Cache("${GOPATH}/pkg"), Cache("/c", "cid", "private")),
    )
    (line,) = phase_lines(b, Phase.PRE_INSTALL, context(CTX_YAML))
    assert line == (
        "RUN --mount=type=bind,from=assets,source=/src/dist,target=/srv/app/dist,rw "
        "--mount=type=bind,source=/,target=/srv/app,rw "
        "--mount=type=cache,id=/var/cache/go,target=/var/cache/go,sharing=shared,uid=65533,gid=65533 "
        "--mount=type=cache,id=${GOPATH}/pkg,target=${GOPATH}/pkg,sharing=shared,uid=65533,gid=65533 "
        "--mount=type=cache,id=cid,target=/c,sharing=private,uid=65533,gid=65533 go build"
    )


def test_expand_known_variables_only() -> None:
    assert expand("${A}/$B/${C}", {"A": "a", "B": "b"}) == "a/b/${C}"


def test_merge_replaces_each_key() -> None:
    a = Builder(("make",), None, (Artifact("local", "x"),), (Mount("local"),), (Cache("/c"),))
    assert a.merge(Builder(script="echo")) == Builder(("make",), "echo", (Artifact("local", "x"),),
                                                      (Mount("local"),), (Cache("/c"),))  # fmt: skip
    assert a.merge(Builder(requirements=(), caches=())) == Builder(("make",), None, (), (Mount("local"),), ())


def test_command_and_script_are_exclusive() -> None:
    with pytest.raises(ConfigError) as e:
        config("builder: {command: foo, script: bar}")
    assert [(p.path, p.message) for p in e.value.problems] == [
        ("builder.command", 'is not allowed if any of field(s) "script" is declared/included'),
        ("builder.script", 'is not allowed if any of field(s) "command" is declared/included'),
    ]


def test_inherited_command_plus_own_script_fails_after_expansion() -> None:
    from tests.blubber.helpers import dockerfile

    with pytest.raises(ConfigError) as e:
        dockerfile(
            "base: debian:bookworm\nbuilder: {command: make}\nvariants:\n  app: {builder: {script: x}}", "app"
        )
    assert e.value.problems[0].message == 'is not allowed if any of field(s) "script" is declared/included'
    assert "found after merging the top level and includes into 'app'" in e.value.problems[0].hint


@pytest.mark.parametrize(
    ("yaml", "path", "message"),
    [
        ("builder: {command: 'make \\\\'}", "builder.command", "must not end with a backslash"),
        ("builder: {command: \"a\\nb\"}", "builder.command", "must be a single line without control characters"),  # noqa: E501
        # BuildKit reads `<<EOF` in a RUN line as a heredoc: the next Dockerfile lines would be its text.
        ("builder: {command: 'cat <<EOF'}", "builder.command", 'must not contain a heredoc ("<<")'),
        ("builder: {command: ['<<-X', x]}", "builder.command[0]", 'must not contain a heredoc ("<<")'),
        ("builder: {mounts: [{from: local, source: 'a b'}]}", "builder.mounts[0].source", '"a b" cannot be used in a mount'),  # noqa: E501
        ("builder: {caches: ['/x,uid=0']}", "builder.caches[0].destination", '"/x,uid=0" cannot be used in a mount'),  # noqa: E501
        ("builder: {caches: [{destination: /x, access: all}]}", "builder.caches[0].access",
         '"all" is not one of: shared, locked, private'),
        ("builder: {mounts: [asets]}", "builder.mounts[0].from", 'unknown variant "asets"'),
        ("builder: {caches: [/a, /a]}", "builder.caches", "cannot contain duplicates"),
        ("builder: {caches: [{id: x}]}", "builder.caches[0].destination", '"destination" is required'),
    ],
)  # fmt: skip
def test_errors(yaml: str, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(yaml)
    assert (e.value.path, e.value.message) == (path, message)


@pytest.mark.parametrize(
    ("yaml", "path", "message"),
    [
        # A variable is substituted into the flag at compile time: its value is checked as written.
        ("runs: {environment: {FOO: 'a b'}}\nvariants:\n  app: {builder: {command: [make], mounts: [{destination: $FOO}]}}",  # noqa: E501
         "variants.app.builder.mounts[0].destination", '"$FOO" becomes "/srv/app/a b", which cannot be used in a mount'),  # noqa: E501
        ("arguments: {CC: '/c id=x'}\nvariants:\n  app: {builder: {command: [make], caches: ['${CC}']}}",
         "variants.app.builder.caches[0].destination", '"${CC}" becomes "/c id=x", which cannot be used in a mount'),  # noqa: E501
        ("arguments: {SRC: 'x,readonly'}\nvariants:\n  app: {builders: [{custom: {mounts: [{from: local, source: $SRC}]}}]}",  # noqa: E501
         "variants.app.builders[0].custom.mounts[0].source", '"$SRC" becomes "x,readonly", which cannot be used in a mount'),  # noqa: E501
        # A relative path is joined to lives.in, which may itself hold a space.
        ("lives: {in: /srv/my app}\nvariants:\n  app: {builder: {command: [make], caches: [.cache]}}",
         "variants.app.builder.caches[0].destination", '".cache" becomes "/srv/my app/.cache", which cannot be used in a mount'),  # noqa: E501
    ],
)  # fmt: skip
def test_mount_paths_are_checked_after_substitution(yaml: str, path: str, message: str) -> None:
    # These compiled to an UnsafeValue raised by the renderer: an internal error instead of a config error.
    with pytest.raises(ConfigError) as e:
        dockerfile_of("base: debian:bookworm\n" + yaml, "app")
    problem = e.value.problems[0] if hasattr(e.value, "problems") else e.value
    assert (problem.file, problem.path, problem.message) == ("blubber.yaml", path, message)
    assert problem.line is not None


def test_safe_substituted_mount_paths_still_compile() -> None:
    text = dockerfile_of(
        "base: debian:bookworm\narguments: {CC: /c}\nvariants:\n  app: {builder: {command: [make], caches: ['${CC}']}}",  # noqa: E501
        "app",
    )
    assert "--mount=type=cache,id=/c,target=/c,sharing=shared,uid=65533,gid=65533 make" in text


def dockerfile_of(yaml: str, variant: str) -> str:
    from tests.blubber.helpers import dockerfile

    return dockerfile(yaml, variant)


def test_a_here_string_is_not_a_heredoc() -> None:
    text = "base: debian:bookworm\nvariants:\n  app: {builder: {command: 'cat <<< x'}}"
    assert "RUN cat <<< x" in dockerfile_of(text, "app")
