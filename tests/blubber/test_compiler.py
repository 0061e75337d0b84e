"""The spec's acceptance scenarios (§7.3) and worked examples, asserted on the Dockerfile."""

from __future__ import annotations

from pathlib import Path

import pytest

from blubber.compiler import VERSION, render
from tests.blubber.helpers import config, dockerfile, stage_lines

RESOURCES = Path(__file__).parent.parent / "resources" / "blubber"
CHOWN = "--chown=$LIVES_UID:$LIVES_GID"
HELLO = "hello: {base: debian:bullseye, copies: [local], entrypoint: [./hello.sh]}"


def lines(variants: str, variant: str, top: str = "") -> list[str]:
    return stage_lines(f"{top}\nvariants:\n  {variants}", variant)


def test_readme_example_matches_upstream_byte_for_byte() -> None:
    cfg = config((RESOURCES / "readme-example.yaml").read_text())
    expected = (RESOURCES / "readme-example.production.Dockerfile").read_text()
    assert render(cfg, "production") == expected


def test_output_is_deterministic_and_labelled() -> None:
    text = dockerfile("base: debian:bookworm\nvariants:\n  aaa: {}\n  bbb: {copies: [aaa]}", "bbb")
    assert text == dockerfile("base: debian:bookworm\nvariants:\n  aaa: {}\n  bbb: {copies: [aaa]}", "bbb")
    assert text.endswith(f'\n\nLABEL blubber.variant="bbb" blubber.version="{VERSION}"\n')
    assert text.count("LABEL") == 1 and "\n\nFROM debian:bookworm AS bbb\n" in text


# 01 basic usage
def test_01_1_copy_a_script_and_run_it() -> None:
    out = lines(HELLO, "hello")
    assert out[-4:] == [f'COPY {CHOWN} [".", "."]', "USER $RUNS_UID", 'ENV HOME="/home/$RUNS_AS"',
                        'ENTRYPOINT ["./hello.sh"]']  # fmt: skip


def test_01_3_exclude_patterns() -> None:
    text = 'variants:\n  hello: {base: debian:bullseye, copies: [{from: local, exclude: ["*.md"]}]}'
    assert f'COPY {CHOWN} --exclude=*.md [".", "."]' in stage_lines(text, "hello")
    # --exclude needs a newer Dockerfile frontend than old engines have built in.
    assert dockerfile(text, "hello").startswith(
        "# syntax=docker/dockerfile:1.19\nFROM debian:bullseye AS hello\n"
    )  # noqa: E501
    assert dockerfile(HELLO.join(["variants:\n  ", ""]), "hello").startswith("FROM ")


def test_01_4_variants_include_one_another() -> None:
    out = lines("hello: {base: debian:bullseye, copies: [local]}\n  hey: {includes: [hello]}", "hey")
    assert out[0] == "FROM debian:bullseye AS hey" and f'COPY {CHOWN} [".", "."]' in out


# 02 defining the environment
def test_02_5_defaults() -> None:
    out = lines(HELLO, "hello")
    assert {'ARG LIVES_AS="somebody"', "ARG LIVES_UID=65533", "ARG LIVES_GID=65533", 'ARG RUNS_AS="runuser"',
            "ARG RUNS_UID=900", "ARG RUNS_GID=900", 'WORKDIR "/srv/app"'} <= set(out)  # fmt: skip


def test_02_6_application_location_and_owner() -> None:
    out = lines(HELLO, "hello", "lives: {in: /usr/local/app, as: appowner, uid: 1234, gid: 1235}")
    assert {'ARG LIVES_AS="appowner"', "ARG LIVES_UID=1234", "ARG LIVES_GID=1235", 'WORKDIR "/usr/local/app"',
            'ENV HOME="/home/appowner"'} <= set(out)  # fmt: skip
    assert 'mkdir -p "/usr/local/app" && chown "$LIVES_UID":"$LIVES_GID" "/usr/local/app"' in out[6]


def test_02_7_runtime_owner() -> None:
    out = lines(HELLO, "hello", "runs: {as: apprunner, uid: 4321, gid: 4320}")
    assert {'ARG RUNS_AS="apprunner"', "ARG RUNS_UID=4321", "ARG RUNS_GID=4320"} <= set(out)
    assert out[-3] == "USER $RUNS_UID"


def test_02_8_insecurely() -> None:
    out = lines(HELLO, "hello", "lives: {uid: 1234}\nruns: {insecurely: true, uid: 4321}")
    assert "USER $RUNS_UID" not in out and out[-5] == "USER $LIVES_UID"


def test_02_9_environment() -> None:
    out = lines(HELLO, "hello", "runs: {environment: {FOO: bar, BAZ: qux}}")
    assert out[out.index('WORKDIR "/srv/app"') + 1] == 'ENV BAZ="qux" FOO="bar"'


def test_02_10_runtime_directory() -> None:
    out = lines(HELLO, "hello", "runs: {in: /some/other/directory}")
    assert [x for x in out if x.startswith("WORKDIR")][-1] == 'WORKDIR "/some/other/directory"'


# 03 installing packages
def test_03_11_packages() -> None:
    out = lines("build: {base: debian:bullseye, apt: {packages: [gcc, libc6-dev]}}", "build")
    assert out[3:5] == ['ENV DEBIAN_FRONTEND="noninteractive"',
                        'RUN apt-get update && apt-get install -y "gcc" "libc6-dev" && rm -rf /var/lib/apt/lists/*']  # fmt: skip  # noqa: E501


def test_03_12_additional_sources() -> None:
    out = lines("""build:
    base: docker-registry.wikimedia.org/golang1.21:1.21-1-20240609
    apt:
      sources: [{url: https://apt.wikimedia.org/wikimedia, distribution: bullseye-wikimedia,
                 components: [thirdparty/amd-rocm54]}]
      packages: {bullseye-wikimedia: [fake-libgcc-7-dev]}""", "build")  # fmt: skip
    assert out[4] == (
        'RUN apt-get update && apt-get install -y "ca-certificates" && echo "deb https://apt.wikimedia.org/wikimedia '  # noqa: E501
        'bullseye-wikimedia thirdparty/amd-rocm54" >> /etc/apt/sources.list.d/99blubber.list && apt-get update && '  # noqa: E501
        'apt-get install -y -t "bullseye-wikimedia" "fake-libgcc-7-dev" && rm -rf /var/lib/apt/lists/* && '
        'rm -f "/etc/apt/sources.list.d/99blubber.list"'
    )


def test_03_13_signed_source() -> None:
    key = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQENBFYxWIwBCADAKoZhZlJxGNGWzqV+1OG1xiQeoowKhssGAKvd\n-----END PGP PUBLIC KEY BLOCK-----"  # noqa: E501
    text = (f"base: docker-registry.wikimedia.org/bookworm:20250601\nvariants:\n  build:\n    apt:\n      sources:\n"  # noqa: E501
            f"        - url: https://packages.microsoft.com/debian/12/prod\n          distribution: bookworm\n"  # noqa: E501
            f"          components: [main]\n          signed-by: {key!r}\n      packages: [dotnet-sdk-8.0]\n"
            f"    entrypoint: [dotnet, --version]")  # fmt: skip
    run = stage_lines(text.replace("'", '"').replace("\n\n", "\\n\\n"), "build")[4]
    assert "printf '%b' \"-----BEGIN PGP PUBLIC KEY BLOCK-----\\\\n\\\\nmQENBF" in run
    assert (
        "deb [signed-by=/etc/apt/keyrings/" in run
        and ".asc] https://packages.microsoft.com/debian/12/prod" in run
    )


# 04 builders
def test_04_14_compile_from_source() -> None:
    out = lines('build: {base: debian:bullseye, apt: {packages: [gcc, libc6-dev]}, builder: {requirements: [main.c], '  # noqa: E501
                'command: "gcc -o hello main.c"}, entrypoint: [./hello]}', "build")  # fmt: skip
    i = out.index(f'COPY {CHOWN} ["main.c", "./"]')
    assert out[i + 1] == "RUN gcc -o hello main.c"


def test_04_16_inline_script_and_scratch_copy() -> None:
    out = lines("""build:
    base: golang:1.18
    runs: {environment: {CGO_ENABLED: "0"}}
    builders:
      - custom: {requirements: [go.mod, go.sum], command: "go mod download"}
      - custom: {requirements: [main.go], script: "#!/bin/bash\\ngo build $(go list)\\n"}
  application:
    copies: [{from: build, source: ./hello-world-go, destination: /hello}]
    entrypoint: [/hello]""", "application")  # fmt: skip
    assert out == ["FROM scratch AS application", 'COPY --from=build ["/srv/app/hello-world-go", "/hello"]',
                   'ENTRYPOINT ["/hello"]']  # fmt: skip


def test_04_17_exclude_in_requirements() -> None:
    out = lines('build: {base: debian:bullseye, builder: {requirements: [{from: local, exclude: ["*.md"]}], '
                'command: "gcc -o hello main.c"}}', "build")  # fmt: skip
    assert f'COPY {CHOWN} --exclude=*.md ["./", "./"]' in out


def test_04_18_caches() -> None:
    out = lines("""build:
    base: golang:1.18
    runs: {environment: {GOCACHE: /var/cache/go}}
    builders:
      - custom: {requirements: [go.mod, go.sum], command: "go mod download", caches: ["${GOPATH}/pkg"]}
      - custom: {requirements: [main.go], command: "go build .", caches: ["${GOCACHE}"]}""", "build")  # fmt: skip  # noqa: E501
    assert ("RUN --mount=type=cache,id=${GOPATH}/pkg,target=${GOPATH}/pkg,sharing=shared,uid=65533,gid=65533 "
            "go mod download") in out  # fmt: skip
    assert ("RUN --mount=type=cache,id=/var/cache/go,target=/var/cache/go,sharing=shared,uid=65533,gid=65533 "
            "go build .") in out  # fmt: skip


def test_04_19_mount_from_another_variant() -> None:
    text = (RESOURCES / "web-app.yaml").read_text()
    cfg = config(text)
    out = render(cfg, "webserver")
    assert [x.split()[-1] for x in out.splitlines() if x.startswith("FROM")] == [
        "assets",
        "build",
        "webserver",
    ]
    assert ("RUN --mount=type=bind,from=assets,source=/src/dist,target=/srv/app/dist,rw "
            "--mount=type=cache,id=/var/cache/go,target=/var/cache/go,sharing=shared,uid=65533,gid=65533 go build"  # noqa: E501
            ) in out  # fmt: skip
    assert 'COPY --from=build ["/srv/app/web-app", "/usr/bin/web-app"]' in out
    assert f'COPY {CHOWN} ["src/", "src/"]' in out


# 05 copying from other variants
def test_05_20_copies_from() -> None:
    text = """build:
    base: golang:1.18
    lives: {in: /src}
    builders:
      - custom: {requirements: [go.mod, go.sum], command: "go mod download"}
      - custom: {requirements: [main.go], command: "go build ."}
  production:
    base: ~
    copies: [{from: build, source: /src/hello-world-go, destination: /hello-world}]
    entrypoint: [/hello-world]"""
    assert lines(text, "production") == ["FROM scratch AS production",
                                         'COPY --from=build ["/src/hello-world-go", "/hello-world"]',
                                         'ENTRYPOINT ["/hello-world"]']  # fmt: skip
    assert 'WORKDIR "/src"' in stage_lines("variants:\n  " + text, "production", "build")


# 06 python builder
@pytest.mark.parametrize(
    ("python", "expected"),
    [
        ("{version: python3, requirements: [requirements.txt]}",
         ['RUN python3 "-m" "pip" "install" "-r" "requirements.txt"']),
        ("{version: python3, requirements: [alt-requirements.txt], use-system-site-packages: true}",
         ['RUN python3 "-m" "venv" "/opt/lib/venv" "--system-site-packages"']),
        ("{version: python3, requirements: [requirements.txt], pip-version: '~=26.0', setuptools-version: '~=81.0',"  # noqa: E501
         " tox-version: '4.49.1', wheel-version: '~=0.46.3'}",
         ['RUN python3 "-m" "pip" "install" "-U" "setuptools~=81.0" && python3 "-m" "pip" "install" "-U" '
          '"wheel~=0.46.3" "tox==4.49.1" "pip~=26.0"']),
        ("{version: python3, poetry: {version: ==1.5.1}, requirements: [pyproject.toml, poetry.lock]}",
         [f'COPY {CHOWN} ["pyproject.toml", "poetry.lock", "./"]', 'RUN poetry "install" "--no-root" "--no-dev"']),  # noqa: E501
        ("{version: python3, poetry: {version: ==2.0.1, only: main}, requirements: [pyproject.toml, poetry.lock]}",  # noqa: E501
         ['RUN python3 "-m" "pip" "install" "-U" "poetry==2.0.1"', 'RUN poetry "install" "--no-root" "--only" "main"']),  # noqa: E501
        ("{version: python3, poetry: {version: ==2.0.1, without: dev}, requirements: [pyproject.toml, poetry.lock]}",  # noqa: E501
         ['RUN poetry "install" "--no-root" "--without" "dev"']),
    ],
)  # fmt: skip
def test_06_python(python: str, expected: list[str]) -> None:
    out = lines(f"hello: {{base: python:3.10-bullseye, builders: [{{python: {python}}}], copies: [local], "
                f"entrypoint: [python3, hello.py]}}", "hello")  # fmt: skip
    assert set(expected) <= set(out)
    assert out.index(expected[-1]) < out.index(f'COPY {CHOWN} [".", "."]')


# 07 node builder
def test_07_node() -> None:
    out = lines("hello: {base: node:20-bullseye, builders: [{node: {requirements: [package.json, package-lock.json]}}],"  # noqa: E501
                " copies: [local], entrypoint: [node, hello.js]}", "hello")  # fmt: skip
    i = out.index(f'COPY {CHOWN} ["package.json", "package-lock.json", "./"]')
    assert out[i + 1 : i + 3] == ["RUN npm install", f'COPY {CHOWN} [".", "."]']


# 08 build arguments
def test_08_arguments() -> None:
    out = lines('make: {base: debian:stable, arguments: {MAKE_TARGET: foo}, apt: {packages: [make]}, '
                'builders: [{custom: {requirements: [Makefile], command: "make ${MAKE_TARGET}"}}]}', "make")  # fmt: skip  # noqa: E501
    assert out[3] == 'ARG MAKE_TARGET="foo"' and out[-3] == "RUN make ${MAKE_TARGET}"


# 99 minutiae
def test_99_labels_on_scratch() -> None:
    assert dockerfile("variants:\n  hello: {}", "hello") == (
        f'FROM scratch AS hello\n\nLABEL blubber.variant="hello" blubber.version="{VERSION}"\n'
    )


def test_stages_share_a_carried_builder_s_instructions_but_not_one_that_depends_on_the_stage() -> None:
    from blubber.compiler import stages

    cfg = config(
        """
        base: debian:bookworm
        builders:
          - {custom: {command: [make], requirements: [Makefile]}}
          - {custom: {command: [make, x], mounts: [{destination: $DIR}]}}
        variants:
          build: {runs: {environment: {DIR: /one}}}
          app: {copies: [build], runs: {environment: {DIR: /two}}}
        """
    )
    (_, first), (_, second) = stages(cfg, "app")
    copies = [i for i in first if type(i).__name__ == "Copy"][:1] + [
        i for i in second if type(i).__name__ == "Copy"
    ][:1]
    assert copies[0] is copies[1]  # the Makefile COPY: one object in both stages (rendered once)
    runs = [[i for i in s if type(i).__name__ == "Run" and i.mounts] for s in (first, second)]
    assert runs[0][0].mounts[0].target == "/one" and runs[1][0].mounts[0].target == "/two"
    text = render(cfg, "app")
    assert text.count('COPY --chown=$LIVES_UID:$LIVES_GID ["Makefile", "./"]') == 2
