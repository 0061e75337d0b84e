"""A seeded mutator of Blubber configs, for the fuzz test: real configs in, slightly broken configs out.

Seeds are the example services' configs, the test resources and a few configs below that reach every
section (apt sources and proxies, builder mounts and caches, builders, python, php). Each mutant applies
1-4 edits (mostly one), on the data (replace a value, drop or add a key, move a subtree, point a name at
another variant, put a variable in a path) or on the text (a YAML tag, a stray character, a line
duplicated or re-indented). Most edits keep the value's type, so that many mutants reach the renderer.
Same seed, same configs: a failure names its seed and index so it can be replayed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

EXTRA_SEEDS = [
    """\
version: v4
base: 127.0.0.1:5000/base/bookworm:12
arguments: {MAKE_TARGET: all, CACHE_DIR: /var/cache/make}
apt:
  packages: {default: [make, gcc], bookworm-backports: [golang-go]}
  sources:
    - {url: "http://deb.example/debian", distribution: bookworm, components: [main, contrib]}
    - {url: "https://apt.example/repo", distribution: stable, signed-by: "-----BEGIN PGP-----\\nabc\\n"}
  proxies:
    - http://proxy.example:3142
    - {url: "http://proxy.example:3142", source: "https://apt.example/repo"}
runs: {environment: {LOG_LEVEL: info, GOCACHE: /var/cache/go}, uid: 1000, gid: 1000, as: app-user}
lives: {in: /srv/app, as: owner, uid: 2000, gid: 2000}
variants:
  assets:
    builder:
      command: [make, -C, assets, "$MAKE_TARGET"]
      requirements: [Makefile, {from: local, source: assets/, destination: assets/}]
      caches: ["${CACHE_DIR}", {destination: .npm, id: npm, access: locked}]
  build:
    builder:
      script: |
        #!/bin/sh
        set -e
        make "$MAKE_TARGET"
      mounts: [assets, {from: local, source: vendor, destination: /vendor}]
    copies: [{from: local}, {from: assets, source: /srv/app/dist, destination: dist/}]
  production:
    copies: [{from: build}, {from: "127.0.0.1:5000/base/tools:1", source: /usr/bin/tini, destination: /tini}]
    entrypoint: [/tini, --, ./server]
    runs: {insecurely: false}
""",
    """\
version: v4
base: 127.0.0.1:5000/base/python3:12
variants:
  build:
    builders:
      - python: {version: python3, requirements: [requirements.txt], poetry: {version: "==1.5.1"}}
      - custom: {command: "make build", requirements: [Makefile]}
      - node: {requirements: [package.json], env: production, use-npm-ci: true}
      - php: {requirements: [composer.json], production: true}
    copies: [{from: local, exclude: ["*.md", tests]}]
  test:
    includes: [build]
    builders: [{python: {no-deps: true, use-system-site-packages: true}}]
    entrypoint: [python3, -m, pytest]
  production:
    copies: [build]
    runs: {in: /srv/run, as: runner}
    entrypoint: [python3, app.py]
""",
]

NASTY = [
    "\n", "\r", '"', "'", "$", "`", "\\", "$(id)", "${X}", "%s", "%%", ",", " ", "#", "\t", "\x00", "é",
    "/", ";", "&&", "{", "}", "<<EOF", "]", "[", ":", "*", "..", "~", "\u2028", "\x7f",
]  # fmt: skip
WORDS = [
    "local", "build", "test", "production", "assets", "x", "runuser", "root", "/srv/app", "/", "", "v4",
    "$FOO", "${MAKE_TARGET}", "RUNS_UID", "LIVES_UID", "HOME", "127.0.0.1:5000/base/bookworm:12",
    "debian:bookworm", "http://proxy:3142", "bookworm", "main", "python3", "==1.0", "package.json",
]  # fmt: skip
KEYS = [
    "base", "arguments", "apt", "packages", "sources", "proxies", "url", "distribution", "components",
    "signed-by", "source", "lives", "runs", "in", "as", "uid", "gid", "insecurely", "environment",
    "entrypoint", "node", "requirements", "env", "use-npm-ci", "allow-dedupe-failure", "php", "production",
    "python", "version", "use-system-site-packages", "no-deps", "poetry", "devel", "only", "without", "venv",
    "pip-version", "tox-version", "builder", "builders", "custom", "command", "script", "mounts", "caches",
    "destination", "id", "access", "from", "exclude", "copies", "includes", "variants", "default",
]  # fmt: skip
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
TAGS = ["!!timestamp", "!!bool", "!!int", "!!float", "!!str", "!!null", "!!binary", "!!set", "!!omap", "!foo"]


def seeds() -> list[str]:
    files = [
        *sorted(ROOT.glob("examples/*/.pipeline/blubber.yaml")),
        *sorted(ROOT.glob("tests/resources/blubber/*.yaml")),
    ]
    return [f.read_text(encoding="utf-8") for f in files] + EXTRA_SEEDS


def mutants(count: int, seed: int) -> Iterator[str]:
    """`count` mutated configs, deterministic for `seed`."""
    rng = random.Random(seed)
    texts = seeds()
    docs = [yaml.load(t, Loader=_LOADER) for t in texts]
    for _ in range(count):
        i = rng.randrange(len(texts))
        if rng.random() < 0.25:
            text = texts[i]
            for _ in range(rng.choice((1, 1, 2, 3))):
                text = _text_edit(rng, text)
        else:
            doc = _copy(docs[i])
            for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
                doc = _data_edit(rng, doc, docs)
            text = yaml.dump(doc, Dumper=_DUMPER, allow_unicode=True, sort_keys=False)
            if rng.random() < 0.2:
                text = _text_edit(rng, text)
        yield text


def _copy(value: object) -> object:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _nodes(value: object, path: tuple = ()) -> Iterator[tuple[tuple, object]]:
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _nodes(v, (*path, i))


def _string(rng: random.Random) -> str:
    parts = rng.choices([*WORDS, *NASTY, "a", "b", "1", "-", "."], k=rng.randint(0, 5))
    return "".join(parts)


def _scalar(rng: random.Random) -> object:
    return rng.choice(
        [None, True, False, 0, 900, -1, 70000, 1.5, _string(rng), rng.choice(WORDS), rng.choice(KEYS)]
    )


def _value(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if depth < 2 and roll < 0.15:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 2 and roll < 0.3:
        return {rng.choice(KEYS): _value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return _scalar(rng)


def _set(doc: object, path: tuple, value: object) -> object:
    if not path:
        return value
    parent = doc
    for part in path[:-1]:
        parent = parent[part]  # type: ignore[index]
    parent[path[-1]] = value  # type: ignore[index]
    return doc


_OP_NODES = {1: str, 2: dict, 3: dict, 4: list, 8: int | None}  # bool is an int


def _data_edit(rng: random.Random, doc: object, docs: list[object]) -> object:
    # Weighted towards edits that keep the document valid-looking (nasty text in a string), which reach
    # the renderer; type changes and grafts mostly test the schema's error messages.
    op = rng.choices(range(9), weights=(2, 6, 1, 1, 2, 1, 2, 2, 1))[0]
    nodes = list(_nodes(doc))
    wanted = _OP_NODES.get(op, object)
    path, node = rng.choice([(p, n) for p, n in nodes if isinstance(n, wanted)] or nodes)
    if op == 0:  # replace any value
        return _set(doc, path, _value(rng))
    if op == 1 and isinstance(node, str):  # a string gains nasty characters
        at = rng.randint(0, len(node))
        return _set(doc, path, node[:at] + _string(rng) + node[at:])
    if op == 2 and isinstance(node, dict) and node:  # drop a key
        node.pop(rng.choice(list(node)))
        return doc
    if op == 3 and isinstance(node, dict):  # add a key (known or variable-like)
        name = rng.choice([*KEYS, "RUNS_UID", "FOO", "x y", "HOME"])
        node[name] = _value(rng)
        return doc
    if op == 4 and isinstance(node, list):  # grow or duplicate a list
        node.append(_copy(rng.choice(node)) if node and rng.random() < 0.5 else _value(rng))
        return doc
    if op == 5:  # graft a subtree from another seed
        _, other = rng.choice(list(_nodes(rng.choice(docs))))
        return _set(doc, path, _copy(other))
    if op == 6 and isinstance(doc, dict) and isinstance(doc.get("variants"), dict) and doc["variants"]:
        names = [*doc["variants"], "local", "nope", "127.0.0.1:5000/base/x:1"]
        variant = doc["variants"][rng.choice(list(doc["variants"]))]
        if isinstance(variant, dict):
            key = rng.choice(["includes", "copies"])
            variant[key] = rng.sample(names, k=rng.randint(1, 2))
        return doc
    if op == 7 and isinstance(doc, dict):  # a variable in a path, defined with a nasty value
        doc.setdefault("arguments", {})
        if isinstance(doc["arguments"], dict):
            doc["arguments"]["FOO"] = _string(rng)
        where = rng.choice(["mounts", "caches"])
        doc["builder"] = {"command": ["make"], where: [rng.choice(["$FOO", "${FOO}/x", "a/$FOO"])]}
        return doc
    if op == 8 and isinstance(node, int | bool | None):  # a scalar of another type
        return _set(doc, path, rng.choice([str(node), [node], {"x": node}, "0", "yes"]))
    return _set(doc, path, _scalar(rng))


def _text_edit(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    i = rng.randrange(len(lines))
    op = rng.randrange(6)
    if op == 0:  # a YAML tag before a value
        line = lines[i]
        colon = line.find(": ")
        tag = rng.choice(TAGS)
        lines[i] = f"{line[: colon + 2]}{tag} {line[colon + 2 :]}" if colon >= 0 else f"{tag} {line}"
    elif op == 1:  # a stray character
        at = rng.randint(0, len(lines[i]))
        stray = rng.choice(["-", ":", "[", "{", "&a", "*a", "'", '"', "|", ">", "?", "\t"])
        lines[i] = lines[i][:at] + stray + lines[i][at:]
    elif op == 2:  # a duplicated line (duplicate keys, repeated items)
        lines.insert(i, lines[i])
    elif op == 3:  # re-indented
        indent = rng.choice(["  ", " ", ""])
        lines[i] = indent + lines[i].lstrip(" ") if rng.random() < 0.5 else "  " + lines[i]
    elif op == 4:  # an anchor here, an alias elsewhere
        colon = lines[i].find(": ")
        j = rng.randrange(len(lines))
        colon_j = lines[j].find(": ")
        if colon >= 0 and colon_j >= 0:
            lines[i] = lines[i][: colon + 2] + "&a " + lines[i][colon + 2 :]
            lines[j] = lines[j][: colon_j + 2] + "*a"
    else:  # a line dropped
        del lines[i]
    return "\n".join(lines)
