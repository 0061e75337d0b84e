"""Property tests: random documents and config-shaped structures never crash the compiler.

Only UserError may escape; and whatever compiles is one instruction per line (no injected instructions).
"""

from __future__ import annotations

import string

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blubber import api, compiler
from blubber.config.reader import read_text
from blubber.errors import UserError
from blubber.policy import load as load_policy

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

POLICY = load_policy(api.DEFAULT_POLICY)


def compile_all(source: str) -> None:
    try:
        config = read_text(source, "fuzz.yaml", defaults=POLICY.defaults, policy=POLICY)
    except UserError:
        return
    for name in config.variants:
        try:
            text = compiler.render(config, name)
            api.runtime(config, name)
            api.check_policy(config, name)
        except UserError:
            continue
        # Docker splits instructions on \n only (str.splitlines would also split on \x1e, \u2028 …).
        text = text.removeprefix(compiler.EXCLUDE_SYNTAX)
        for line in text.split("\n"):
            assert line == "" or line.startswith(INSTRUCTIONS), line


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
