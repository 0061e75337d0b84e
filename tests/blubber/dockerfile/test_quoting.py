"""Injection safety: one quoting function per target: newline, quote, `$` never add an instruction."""

from __future__ import annotations

import pytest

from blubber.dockerfile.instructions import Cmd, Copy, Entrypoint, Env, Run, Workdir
from blubber.dockerfile.quoting import UnsafeValue, dockerfile_quote, flag_value, guard_line, shell_quote
from blubber.dockerfile.render import render_instruction

NASTY = [
    "a\nRUN echo HACKED!",
    'a" && echo HACKED! && echo "',
    "$(echo HACKED!)",
    "`echo HACKED!`",
    "${HOME}",
    "a\r\nRUN x",
    "back\\",
]


def test_dockerfile_quote_is_a_json_string() -> None:
    assert dockerfile_quote('a "b"') == '"a \\"b\\""'
    assert dockerfile_quote("b\nRUN echo HACKED!") == '"b\\nRUN echo HACKED!"'
    assert dockerfile_quote("é") == '"é"'
    # Docker variable references stay (ENV PATH="…:$PATH" relies on it); no command can run at this level.
    assert dockerfile_quote("$PATH") == '"$PATH"'


def test_shell_quote_escapes_everything_that_could_expand() -> None:
    assert shell_quote("libfoo") == '"libfoo"'
    assert shell_quote('a"b') == '"a\\"b"'
    assert shell_quote("$(id)") == '"\\$(id)"'
    assert shell_quote("`id`") == '"\\`id\\`"'
    assert shell_quote("$HOME") == '"\\$HOME"'
    assert shell_quote("a\\") == '"a\\\\"'


def test_shell_quote_with_expand_keeps_variables_but_not_substitution() -> None:
    assert shell_quote("${MAKE_TARGET}", expand=True) == '"${MAKE_TARGET}"'
    assert shell_quote("$NAME", expand=True) == '"$NAME"'
    assert shell_quote("$(id)", expand=True) == '"\\$(id)"'
    assert shell_quote("`id`", expand=True) == '"\\`id\\`"'


def test_flag_value_refuses_what_cannot_be_quoted() -> None:
    assert flag_value("build") == "build"
    for bad in ["a b", "a,b", 'a"', "a\nb", "", "a\\b"]:
        with pytest.raises(UnsafeValue):
            flag_value(bad)


def test_guard_line_escapes_newlines_and_refuses_continuations() -> None:
    assert guard_line("RUN /bin/true\nRUN echo HACKED!") == "RUN /bin/true\\nRUN echo HACKED!"
    with pytest.raises(UnsafeValue):
        guard_line("RUN foo \\")
    with pytest.raises(UnsafeValue):
        guard_line("RUN foo \\  \t")


@pytest.mark.parametrize("value", NASTY)
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda v: Run.of("apt-get install -y", "ok", v), id="package"),
        pytest.param(lambda v: Run.of("mkdir -p %s", v), id="path-in-run"),
        pytest.param(lambda v: Run.of("make", v, expand=True), id="command-arg"),
        pytest.param(lambda v: Env.of({"A": v}), id="env-value"),
        pytest.param(lambda v: Copy((v,), v, chown="$LIVES_UID:$LIVES_GID"), id="copy-path"),
        pytest.param(lambda v: Workdir(v), id="workdir"),
        pytest.param(lambda v: Entrypoint(("node", v)), id="entrypoint"),
    ],
)
def test_no_value_makes_a_second_line(make, value: str) -> None:
    line = render_instruction(make(value))
    assert "\n" not in line and "\r" not in line
    assert not line.rstrip().endswith("\\")


@pytest.mark.parametrize("value", ["$(echo HACKED!)", "`echo HACKED!`", '"; echo HACKED!; "'])
def test_shell_arguments_never_substitute(value: str) -> None:
    line = render_instruction(Run.of("apt-get install -y", value))
    # Every $, backtick and quote inside the argument is escaped, so the shell sees one literal word.
    inner = line.removeprefix('RUN apt-get install -y "').removesuffix('"')
    assert all(inner[i - 1] == "\\" for i, ch in enumerate(inner) if ch in '$`"')


def test_run_with_percent_in_verbatim_command() -> None:
    assert render_instruction(Run((Cmd("date +%%s"),))) == "RUN date +%s"
