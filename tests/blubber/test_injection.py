"""Injection test: a hostile string in any string field of a config never changes what the image is.

Every field gets every payload (newlines, `\\`, quotes, `$(…)`, backticks, `;`, `&&`, `#`, braces, a heredoc
start), alone and after a valid value. Either the config is refused with file, line and YAML path, or the
Dockerfile it compiles to, compared with the same config holding a harmless value:
* has one instruction per line and the same instructions in the same order (nothing new, nothing lost);
* keeps every value that Docker reads as JSON (COPY, ENTRYPOINT, ENV, LABEL, ARG) valid JSON;
* has RUN commands that `dash -n` parses, with the same shell operators, no command substitution, the
  payload's marker never outside quotes (nor inside a parameter expansion, except in builder command
  arguments, where `$NAME` expands by design), and no `<<` (BuildKit would read the next lines as a heredoc);
* runs as the same user: the last `USER` and every `COPY --chown` resolve (through ARG and ENV, as Docker
  resolves them) to the same ids, and `blubber.runtime()` reports that uid.
A string builder `command` (and a list command's first item) is shell by design: for those only the
Dockerfile-level checks apply.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from blubber import api, compiler
from blubber.config.reader import read_text
from blubber.errors import UserError
from blubber.policy import load as load_policy
from tests.blubber.helpers import OPS_POLICY
from tests.blubber.shell_scan import scan, syntax_errors, unquoted_occurrence

BASE = "127.0.0.1:5000/base/bookworm:12"
IMAGE = "127.0.0.1:5000/base/tools:1"
MARKER = "PWNED"
PAYLOADS = [
    f"\nRUN touch /{MARKER}",
    "\r\nUSER 0",
    "x\\\nUSER 0",
    f"{MARKER}\\",
    f'";touch {MARKER};"',
    f"';touch {MARKER};'",
    f"$(touch {MARKER})",
    f"`touch {MARKER}`",
    f"; touch {MARKER}",
    f" && touch {MARKER}",
    f" # {MARKER}",
    f"${{{MARKER}:-x}}",
    f"{{{MARKER}}}",
    f"<<{MARKER}",
    f"{MARKER}\u2028USER 0",
    f'0" {MARKER}="1',
    f'\\"; touch {MARKER} #',
    f"$({MARKER}",
]
# Names the compiler's own instructions read (`USER $RUNS_UID`, `--chown=$LIVES_UID:…`), tried as names.
RESERVED = ["RUNS_UID", "RUNS_GID", "RUNS_AS", "LIVES_UID", "LIVES_GID", "LIVES_AS", "HOME"]
NAME_FIELDS = {"runs.environment (name)", "arguments (name)"}
INSTRUCTION = re.compile(r"^(FROM|USER|ENV|ARG|WORKDIR|RUN|COPY|ENTRYPOINT|LABEL) ")
VERBATIM = {"builder.command (string)", "builder.command[0]"}
EXPANDS = {"builder.command[1]"}


def _python(**extra: object) -> dict:
    return {"python": {"version": "python3", "requirements": ["requirements.txt"], **extra}}


def _apt(**extra: object) -> dict:
    return {"apt": {"packages": ["curl"], **extra}}


def _make(**extra: object) -> dict:
    return {"builder": {"command": ["make"], **extra}}


# field → (variant keys for a value, a harmless value). Each reaches the Dockerfile somewhere.
FIELDS: dict[str, tuple] = {
    "runs.environment (name)": (lambda v: {"runs": {"environment": {v: "x"}}}, "SAFE_NAME"),
    "runs.environment (value)": (lambda v: {"runs": {"environment": {"FOO": v}}}, "safe"),
    "arguments (name)": (lambda v: {"arguments": {v: "x"}}, "SAFE_ARG"),
    "arguments (value)": (lambda v: {"arguments": {"FOO": v}}, "safe"),
    "builder.command (string)": (lambda v: {"builder": {"command": v}}, "make"),
    "builder.command[0]": (lambda v: {"builder": {"command": [v, "x"]}}, "make"),
    "builder.command[1]": (lambda v: {"builder": {"command": ["make", v]}}, "safe"),
    "builder.script": (lambda v: {"builder": {"script": v}}, "make all"),
    "builder.requirements": (lambda v: _make(requirements=[v]), "Makefile"),
    "builder.mounts.from": (lambda v: _make(mounts=[{"from": v}]), IMAGE),
    "builder.mounts.source": (lambda v: _make(mounts=[{"from": "local", "source": v}]), "src"),
    "builder.mounts.destination": (lambda v: _make(mounts=[{"from": "local", "destination": v}]), "/m"),
    "builder.caches (destination)": (lambda v: _make(caches=[v]), "/cache"),
    "builder.caches.id": (lambda v: _make(caches=[{"destination": "/c", "id": v}]), "cid"),
    "copies.from": (lambda v: {"copies": [{"from": v}]}, IMAGE),
    "copies.source": (lambda v: {"copies": [{"from": "local", "source": v, "destination": "d"}]}, "src"),
    "copies.destination": (lambda v: {"copies": [{"from": "local", "source": "s", "destination": v}]}, "dst"),
    "copies.exclude": (lambda v: {"copies": [{"from": "local", "exclude": [v]}]}, "*.md"),
    "lives.as": (lambda v: {"lives": {"as": v}}, "owner"),
    "lives.in": (lambda v: {"lives": {"in": v}}, "/srv/app2"),
    "runs.as": (lambda v: {"runs": {"as": v}}, "runner"),
    "runs.in": (lambda v: {"runs": {"in": v}}, "/srv/run"),
    "entrypoint": (lambda v: {"entrypoint": [v, v]}, "./run"),
    "base": (lambda v: {"base": v}, BASE),
    "apt.packages": (lambda v: _apt(packages=[v]), "curl"),
    "apt.packages (release)": (lambda v: _apt(packages={v: ["curl"]}), "bookworm-backports"),
    "apt.sources.url": (lambda v: _apt(sources=[{"url": v, "distribution": "bookworm"}]), "http://deb.example/d"),
    "apt.sources.distribution": (lambda v: _apt(sources=[{"url": "http://d.example", "distribution": v}]), "bookworm"),  # noqa: E501
    "apt.sources.components": (
        lambda v: _apt(sources=[{"url": "http://d.example", "distribution": "bookworm", "components": [v]}]),
        "main",
    ),
    "apt.sources.signed-by": (
        lambda v: _apt(sources=[{"url": "http://d.example", "distribution": "bookworm", "signed-by": v}]),
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\nabc\n",
    ),
    "apt.proxies (url)": (lambda v: _apt(proxies=[v]), "http://proxy.example:3142"),
    "apt.proxies.source": (lambda v: _apt(proxies=[{"url": "http://p.example", "source": v}]), "http://d.example"),
    "node.requirements": (lambda v: {"node": {"requirements": [v]}}, "package.json"),
    "node.env": (lambda v: {"node": {"requirements": ["package.json"], "env": v}}, "production"),
    "python.version": (lambda v: {"python": {"version": v, "requirements": ["requirements.txt"]}}, "python3"),
    "python.requirements": (lambda v: {"python": {"version": "python3", "requirements": [v]}}, "reqs.txt"),
    "python.venv": (lambda v: _python(venv=v), "/opt/lib/venv2"),
    "python.pip-version": (lambda v: _python(**{"pip-version": v}), "==23.0"),
    "python.setuptools-version": (lambda v: _python(**{"setuptools-version": v}), "==68.0"),
    "python.wheel-version": (lambda v: _python(**{"wheel-version": v}), "==0.41"),
    "python.tox-version": (lambda v: _python(**{"tox-version": v}), "==4.0"),
    "python.poetry.version": (lambda v: _python(poetry={"version": v}), "==1.5.1"),
    "python.poetry.only": (lambda v: _python(poetry={"version": "==1.5.1", "only": v}), "main"),
    "python.poetry.without": (lambda v: _python(poetry={"version": "==1.5.1", "without": v}), "dev"),
    "php.requirements": (lambda v: {"php": {"requirements": [v]}}, "composer.json"),
}  # fmt: skip
# Values an ops policy's `defaults` put under every config: they reach the same instructions.
POLICY_FIELDS: dict[str, tuple] = {
    "policy defaults.runs.environment": (lambda v: {"runs": {"environment": {"FOO": v}}}, "safe"),
    "policy defaults.lives.in": (lambda v: {"lives": {"in": v}}, "/srv/app2"),
    "policy defaults.apt.packages": (lambda v: {"apt": {"packages": [v]}}, "curl"),
    "policy defaults.arguments": (lambda v: {"arguments": {"FOO": v}}, "safe"),
}

# Free-text fields: some payloads compile (quoted, or written into a file) and are checked above. Every
# other field has a pattern (names, versions, URLs, image references) that refuses all of them.
FREE_TEXT = {
    "apt.sources.signed-by", "arguments (value)", "builder.caches (destination)", "builder.caches.id",
    "builder.command (string)", "builder.command[0]", "builder.command[1]", "builder.mounts.destination",
    "builder.mounts.source", "builder.requirements", "builder.script", "copies.destination", "copies.exclude",
    "copies.source", "entrypoint", "lives.in", "node.requirements", "php.requirements", "python.poetry.only",
    "python.poetry.without", "python.requirements", "python.venv", "runs.environment (value)", "runs.in",
    "policy defaults.runs.environment", "policy defaults.lives.in", "policy defaults.arguments",
}  # fmt: skip

DEFAULT_POLICY = load_policy(OPS_POLICY)


def document(variant: dict, name: str = "app") -> str:
    body = {"base": BASE, **variant}
    return yaml.safe_dump({"version": "v4", "variants": {name: body}}, allow_unicode=True)


def compile_app(text: str, policy, name: str = "app") -> tuple[str, object] | UserError:
    """The Dockerfile and runtime of `name`, or the located UserError that refused the config."""
    try:
        config = read_text(text, "blubber.yaml", defaults=policy.defaults, policy=policy)
        api.check_policy(config, name)
        return compiler.render(config, name), api.runtime(config, name)
    except UserError as e:
        for p in getattr(e, "problems", None) or [e]:
            assert (p.file, bool(p.line), bool(p.path)) == ("blubber.yaml", True, True), str(e)
        return e


def policy_with(defaults: dict, tmp_path) -> object:
    path = tmp_path / "policy.yaml"
    runs = {"as": "runuser", "uid": 900, "gid": 900}
    path.write_text(yaml.safe_dump({"defaults": {"runs": runs, **defaults}}))
    try:
        return load_policy(path)
    except UserError as e:
        assert (e.file, bool(e.line), bool(e.path)) == (str(path), True, True), str(e)
        return None


def run_bodies(dockerfile: str) -> list[str]:
    """The shell command of every RUN, without its --mount flags."""
    bodies = []
    for line in dockerfile.split("\n"):
        if line.startswith("RUN "):
            body = line[4:]
            while body.startswith("--mount="):
                body = body.split(" ", 1)[1]
            bodies.append(body)
    return bodies


def instructions(dockerfile: str) -> list[str]:
    lines = dockerfile.removeprefix(compiler.EXCLUDE_SYNTAX).split("\n")
    for line in lines:
        assert line == "" or INSTRUCTION.match(line), f"not one instruction: {line!r}"
    return [line.split(" ", 1)[0] for line in lines if line]


_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_.]*)=("(?:[^"\\]|\\.)*"|[0-9]+)(?: |$)')


def check_json_values(dockerfile: str) -> None:
    for line in dockerfile.split("\n"):
        keyword, _, rest = line.partition(" ")
        if keyword in ("COPY", "ENTRYPOINT"):
            argv = json.loads(rest[rest.index("[") :])
            assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), line
        elif keyword in ("ENV", "LABEL", "ARG"):
            pos = 0
            while pos < len(rest):
                m = _PAIR.match(rest, pos)
                assert m, f"not NAME=<JSON string> pairs: {line!r}"
                json.loads(m.group(2))
                pos = m.end()


def effective_ids(dockerfile: str) -> tuple[str, list[str]]:
    """The final stage's last USER and its COPY --chown values, resolved through ARG and ENV (ENV wins)."""
    final = dockerfile.split("\n\n")[-2]  # the last stage; the label block comes after it
    args: dict[str, str] = {}
    env: dict[str, str] = {}
    user, chowns = "", []

    def resolve(text: str) -> str:
        def value(m: re.Match) -> str:
            name = m.group(1) or m.group(2)
            return env.get(name, args.get(name, ""))

        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", value, text)

    for line in final.split("\n"):
        keyword, _, rest = line.partition(" ")
        if keyword in ("ARG", "ENV"):
            for m in _PAIR.finditer(rest):
                (args if keyword == "ARG" else env)[m.group(1)] = str(json.loads(m.group(2)))
        elif keyword == "USER":
            user = resolve(rest)
        elif keyword == "COPY" and rest.startswith("--chown="):
            chowns.append(resolve(rest.split(" ", 1)[0].removeprefix("--chown=")))
    return user, chowns


def check_shell(field: str, bodies: list[str], baseline: list[str]) -> None:
    assert len(bodies) == len(baseline)
    if field in VERBATIM:  # the user's own shell: it may not parse, but it must not reach other lines
        for body in bodies:
            assert "<<" not in scan(body).operators, f"{field}: a heredoc would take the next lines: {body}"
        return
    errors = syntax_errors(bodies)
    assert not errors, f"{field}: dash -n: {errors}\n" + "\n".join(bodies)
    for body, base in zip(bodies, baseline, strict=True):
        s, b = scan(body), scan(base)
        assert s.operators == b.operators, f"{field}: shell operators changed: {body}"
        assert s.comment == b.comment, f"{field}: a comment starts: {body}"
        assert not s.substitutions, f"{field}: command substitution {s.substitutions}: {body}"
        assert not unquoted_occurrence(body, s, MARKER), f"{field}: payload outside quotes: {body}"
        if field not in EXPANDS:
            assert not [p for p in s.parameters if MARKER in p], f"{field}: expansion {s.parameters}: {body}"


def check_field(field: str, make, benign: str, policy_of) -> int:
    """Every payload in `field`; returns how many compiled (the rest were refused, located)."""
    base_policy = policy_of(benign)
    assert base_policy is not None, f"{field}: the harmless value {benign!r} is refused by the policy loader"
    baseline = compile_app(document(make(benign) if policy_of is _default else {}), base_policy)
    assert not isinstance(baseline, UserError), f"{field}: the harmless value is refused: {baseline}"
    base_text, base_runtime = baseline
    base_user, base_chowns = effective_ids(base_text)
    assert base_user == str(base_runtime.uid), base_text
    compiled = 0
    values = [v for payload in PAYLOADS for v in (payload, benign + payload)]
    if field in NAME_FIELDS:
        values += RESERVED
    for value in values:
        policy = policy_of(value)
        if policy is None:  # the policy file itself was refused, located
            continue
        result = compile_app(document(make(value) if policy_of is _default else {}), policy)
        if isinstance(result, UserError):
            continue
        compiled += 1
        text, runtime = result
        assert instructions(text) == instructions(base_text), f"{field} = {value!r}:\n{text}"
        check_json_values(text)
        check_shell(field, run_bodies(text), run_bodies(base_text))
        user, chowns = effective_ids(text)
        assert (user, chowns) == (base_user, base_chowns), f"{field} = {value!r}, other user:\n{text}"
        assert str(runtime.uid) == user
    return compiled


def _default(_value: str):
    return DEFAULT_POLICY


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_config_field(field: str) -> None:
    make, benign = FIELDS[field]
    compiled = check_field(field, make, benign, _default)
    assert (compiled > 0) == (field in FREE_TEXT), f"{field}: {compiled} of the payloads compiled"


@pytest.mark.parametrize("field", sorted(POLICY_FIELDS))
def test_policy_default(field: str, tmp_path) -> None:
    make, benign = POLICY_FIELDS[field]
    compiled = check_field(field, make, benign, lambda value: policy_with(make(value), tmp_path))
    assert (compiled > 0) == (field in FREE_TEXT), f"{field}: {compiled} of the payloads compiled"


def test_variant_name() -> None:
    # A variant name reaches FROM … AS <name>, LABEL blubber.variant and COPY --from.
    baseline = compile_app(document({}, "app2"), DEFAULT_POLICY, "app2")
    assert not isinstance(baseline, UserError)
    for payload in PAYLOADS:
        for name in (payload, "app" + payload):
            result = compile_app(document({}, name), DEFAULT_POLICY, name)
            if isinstance(result, UserError):
                continue
            text, _ = result
            assert instructions(text) == instructions(baseline[0])
            check_json_values(text)


def test_the_checks_catch_what_they_are_for() -> None:
    """The scanner and the resolver see a breakout, a heredoc and a changed user when there is one."""
    s = scan(f'echo "a" ; touch {MARKER} && echo "$(id)" `id` $X "${{Y}}" # c')
    assert s.operators == [";", "&&"] and s.substitutions == ["$(id)", "`id`"]
    assert s.parameters == ["$X", "${Y}"] and s.comment == "# c"
    assert unquoted_occurrence(f"echo ; touch {MARKER}", scan(f"echo ; touch {MARKER}"), MARKER)
    assert not unquoted_occurrence(f'echo "; touch {MARKER}"', scan(f'echo "; touch {MARKER}"'), MARKER)
    assert "<<" in scan("cat <<EOF").operators and "<<" not in scan('echo "<<EOF"').operators
    assert syntax_errors(['echo "unterminated']) and not syntax_errors(['echo "fine" && true'])
    leaked = 'FROM b AS app\nARG RUNS_UID=900\nENV RUNS_UID="0"\nUSER $RUNS_UID\n\nLABEL x="y"\n'
    assert effective_ids(leaked) == ("0", [])
