"""Fuzz tests: random and mutated configs never crash the compiler, and every rejection is located.

Only UserError may escape, and each one (each problem of a ConfigErrors) names file, line and YAML path;
whatever compiles is one instruction per line (no injected instructions).

Budget in `make test`: the hypothesis tests (2,500 documents) plus FUZZ_CONFIGS mutated configs (default
2,000): about 35 s of CPU (more wall time on a busy machine). The longer run (README, "Fuzzing the compiler"):
    FUZZ_CONFIGS=20000 .venv/bin/pytest -q tests/blubber/test_fuzz.py -k mutated
FUZZ_SEED picks another set of mutants; a failure prints the seed and index to replay it.
"""

from __future__ import annotations

import os
import string
import time
import traceback

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blubber import api, compiler
from blubber.config.reader import read_text
from blubber.errors import UserError
from blubber.policy import Policy
from blubber.policy import load as load_policy
from tests.blubber.helpers import OPS_POLICY
from tests.blubber.mutate import mutants

INSTRUCTIONS = ("FROM ", "USER ", "ENV ", "ARG ", "WORKDIR ", "RUN ", "COPY ", "ENTRYPOINT ", "LABEL ")
KEYS = [
    "base", "arguments", "apt", "packages", "sources", "proxies", "url", "distribution", "components", "signed-by",  # noqa: E501
    "source", "lives", "runs", "in", "as", "uid", "gid", "insecurely", "environment", "entrypoint", "node",
    "requirements", "env", "use-npm-ci", "allow-dedupe-failure", "php", "production", "python", "version",
    "use-system-site-packages", "no-deps", "poetry", "devel", "only", "without", "venv", "pip-version",
    "tox-version", "builder", "builders", "custom", "command", "script", "mounts", "caches", "destination", "id",  # noqa: E501
    "access", "from", "exclude", "copies", "includes", "variants", "default", "local",
]  # fmt: skip
NAMES = ["build", "test", "production", "local", "aaa", "debian:bookworm", "127.0.0.1:5000/base/bookworm:12"]
NASTY = [
    "\n",
    "\r",
    '"',
    "'",
    "$",
    "`",
    "\\",
    "$(id)",
    "${X}",
    "%s",
    "%%",
    ",",
    " ",
    "#",
    "\t",
    "\x00",
    "é",
    "/",
]

# Strings built from plain characters and the pieces that break quoting (newline, quotes, $(…), %s …).
text = st.lists(
    st.sampled_from(list(string.ascii_letters + string.digits + "-_./:") + NASTY), max_size=8
).map("".join)
scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 70000), text, st.sampled_from(NAMES), st.sampled_from(KEYS)
)
key = st.one_of(st.sampled_from(KEYS), st.sampled_from(NAMES), text)
node = st.recursive(
    scalar,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(key, children, max_size=5)),
    max_leaves=25,
)
variant_names = st.sampled_from(["build", "test", "production", "aaa", "bbb-1", "x"])
document = st.fixed_dictionaries(
    {"version": st.one_of(st.just("v4"), scalar)},
    optional={
        "variants": st.dictionaries(variant_names, st.dictionaries(st.sampled_from(KEYS), node, max_size=4),
                                    max_size=4),
        **{k: node for k in ("base", "apt", "lives", "runs", "node", "python", "builder", "builders", "entrypoint")},  # noqa: E501
    },
)  # fmt: skip

POLICY = load_policy(OPS_POLICY)


def assert_located(error: UserError) -> None:
    """A rejection names the file, a line and a YAML path (every problem of a ConfigErrors too)."""
    for problem in getattr(error, "problems", None) or [error]:
        assert problem.file == "fuzz.yaml", str(problem)
        assert isinstance(problem.line, int) and problem.line >= 1, str(problem)
        assert problem.path, str(problem)


def compile_all(source: str, policy: Policy | None = POLICY) -> bool:
    """Compile every variant; True when at least one compiled. Raises on an internal error."""
    try:
        config = read_text(source, "fuzz.yaml", defaults=policy and policy.defaults, policy=policy)
    except UserError as e:
        assert_located(e)
        return False
    compiled = False
    for name in config.variants:
        try:
            text = compiler.render(config, name)
            api.runtime(config, name)
            api.check_policy(config, name)
        except UserError as e:
            assert_located(e)
            continue
        compiled = True
        # Docker splits instructions on \n only (str.splitlines would also split on \x1e, \u2028 …).
        text = text.removeprefix(compiler.EXCLUDE_SYNTAX)
        for line in text.split("\n"):
            assert line == "" or line.startswith(INSTRUCTIONS), line
    return compiled


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document)
def test_random_config_structures(doc: dict) -> None:
    compile_all(yaml.safe_dump(doc, allow_unicode=True))


YAML_CHARS = st.text(
    alphabet=st.sampled_from(list("version: v4\n -[]{},&*!|>'\"#%@`?abcdefgpqrs0123\t")), max_size=80
)
# Half the documents start like a real config, so the noise reaches the variant level too.
PREFIX = "version: v4\nbase: 127.0.0.1:5000/base/bookworm:12\nvariants:\n  build:\n    "


@settings(max_examples=1500, deadline=None)
@given(st.one_of(YAML_CHARS, YAML_CHARS.map(lambda t: PREFIX + t)))
def test_random_yaml_text(source: str) -> None:
    compile_all(source)


FIELDS = {
    "base": lambda v: {"base": v},
    "lives.in": lambda v: {"lives": {"in": v}},
    "runs.environment": lambda v: {"runs": {"environment": {"FOO": v}}},
    "runs.environment key": lambda v: {"runs": {"environment": {v: "x"}}},
    "entrypoint": lambda v: {"entrypoint": [v, v]},
    "copies.source": lambda v: {"copies": [{"from": "local", "source": v, "destination": v}]},
    "copies.exclude": lambda v: {"copies": [{"from": "local", "exclude": [v]}]},
    "apt.packages": lambda v: {"apt": {"packages": [v]}},
    "builder.command list": lambda v: {"builder": {"command": ["make", v]}},
    "builder.command first": lambda v: {"builder": {"command": [v, "x"]}},
    "builder.command string": lambda v: {"builder": {"command": v}},
    "builder.script": lambda v: {"builder": {"script": v}},
    "builder.caches": lambda v: {"builder": {"caches": [v]}},
    "node.requirements": lambda v: {"node": {"requirements": [v]}},
    "python.requirements": lambda v: {"python": {"version": "python3", "requirements": [v]}},
    "arguments": lambda v: {"arguments": {"ARG1": v}},
}


@settings(max_examples=400, deadline=None)
@given(value=text | st.text(max_size=10), field=st.sampled_from(sorted(FIELDS)))
def test_any_string_in_any_field(value: str, field: str) -> None:
    variant = {"base": "127.0.0.1:5000/base/bookworm:12", **FIELDS[field](value)}
    compile_all(yaml.safe_dump({"version": "v4", "variants": {"build": variant}}, allow_unicode=True))


def test_mutated_configs() -> None:
    """FUZZ_CONFIGS mutants of the examples and test configs (tests/blubber/mutate.py): no internal error."""
    count = int(os.environ.get("FUZZ_CONFIGS", "2000"))
    seed = int(os.environ.get("FUZZ_SEED", "13"))
    failures: list[str] = []
    compiled = 0
    start = time.monotonic()
    for index, text in enumerate(mutants(count, seed)):
        try:
            # Every other one without the policy, so the seeds with other bases reach the renderer too.
            compiled += compile_all(text, POLICY if index % 2 else None)
        except Exception:  # an internal error or an unlocated rejection: collect, report them all
            failures.append(f"FUZZ_SEED={seed} mutant #{index}:\n{text}\n{traceback.format_exc(limit=-3)}")
    elapsed = time.monotonic() - start
    print(f"fuzz: {count} configs (seed {seed}) in {elapsed:.1f} s:", end=" ")
    print(f"{compiled} compiled, {len(failures)} failed")
    assert not failures, f"{len(failures)} of {count} configs failed; first ones:\n" + "\n".join(failures[:3])
    # A mutator that only produced YAML errors would test little: a share of the mutants must compile.
    assert compiled >= count // 20, f"only {compiled} of {count} mutants compiled"
