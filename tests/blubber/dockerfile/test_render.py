"""The renderer: exact instruction formats (upstream's instruction tests, spec §7.5)."""

from __future__ import annotations

import pytest

from blubber.dockerfile.instructions import (
    Arg,
    BindMount,
    CacheMount,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    From,
    Label,
    Run,
    User,
    Workdir,
)
from blubber.dockerfile.render import render_cmd, render_instruction, render_stage


@pytest.mark.parametrize(
    ("instruction", "text"),
    [
        (From("foo", "bar"), "FROM foo AS bar"),
        (From(None, "bar"), "FROM scratch AS bar"),
        (Run.of("echo %s", "hello"), 'RUN echo "hello"'),
        (Run((Cmd("echo %s", ("hello",)), Cmd("echo %s", ("yo",)))), 'RUN echo "hello" && echo "yo"'),
        (Copy(("foo1", "foo2"), "bar"), 'COPY ["foo1", "foo2", "bar/"]'),
        (Copy(("foo1", "foo2"), "bar/", chown="123:124"), 'COPY --chown=123:124 ["foo1", "foo2", "bar/"]'),
        (
            Copy(("foo1", "foo2"), "bar/", chown="123:124", from_="foo"),
            'COPY --chown=123:124 --from=foo ["foo1", "foo2", "bar/"]',
        ),
        (Copy(("foo1", "foo2"), "bar/", from_="foo"), 'COPY --from=foo ["foo1", "foo2", "bar/"]'),
        (
            Copy((".",), ".", excludes=("*.md", "!keep.md")),
            'COPY --exclude=*.md --exclude=!keep.md [".", "."]',
        ),
        (Entrypoint(("foo", "bar")), 'ENTRYPOINT ["foo", "bar"]'),
        (Env.of({"foo": "bar", "bar": "foo"}), 'ENV bar="foo" foo="bar"'),
        (Label((("bar", "foo"), ("foo", "bar"))), 'LABEL bar="foo" foo="bar"'),
        (User("1000"), "USER 1000"),
        (Workdir("/foo/dir"), 'WORKDIR "/foo/dir"'),
        (Arg("RUNS_AS", "runuser"), 'ARG RUNS_AS="runuser"'),
        (Arg("RUNS_UID", 900), "ARG RUNS_UID=900"),
        (Run.of("/bin/true\nRUN echo HACKED!"), "RUN /bin/true\\nRUN echo HACKED!"),
        (Env.of({"a": "b\nRUN echo HACKED!"}), 'ENV a="b\\nRUN echo HACKED!"'),
    ],
)
def test_instruction_text(instruction, text: str) -> None:
    assert render_instruction(instruction) == text


def test_cmd_slots_and_appended_arguments() -> None:
    assert render_cmd(Cmd("echo %s %s", ("foo bar", "baz"))) == 'echo "foo bar" "baz"'
    assert (
        render_cmd(Cmd("useradd -d %s -u %s", ("/foo", "666", "bar"))) == 'useradd -d "/foo" -u "666" "bar"'
    )
    assert render_cmd(Cmd("npm install")) == "npm install"
    assert render_cmd(Cmd("printf '%%b' %s", ("x",))) == "printf '%b' \"x\""


def test_run_mounts() -> None:
    run = Run(
        (Cmd("go build"),),
        (
            BindMount("/srv/app/dist", "assets", "/src/dist"),
            BindMount("/srv/app"),
            CacheMount("/var/cache/go", "/var/cache/go", "shared", 65533, 65533),
        ),
    )
    assert render_instruction(run) == (
        "RUN --mount=type=bind,from=assets,source=/src/dist,target=/srv/app/dist,rw "
        "--mount=type=bind,source=/,target=/srv/app,rw "
        "--mount=type=cache,id=/var/cache/go,target=/var/cache/go,sharing=shared,uid=65533,gid=65533 go build"
    )


def test_stage_is_newline_terminated_lines() -> None:
    assert render_stage([From(None, "x"), Entrypoint(("/x",))]) == 'FROM scratch AS x\nENTRYPOINT ["/x"]\n'


def test_unknown_instruction_is_a_bug() -> None:
    with pytest.raises(TypeError):
        render_instruction("RUN rm -rf /")  # type: ignore[arg-type]
