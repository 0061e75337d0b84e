from __future__ import annotations

import hashlib

import pytest

from blubber.config.apt import Apt, Proxy, Source
from blubber.dockerfile.phases import Phase
from blubber.errors import ConfigError
from tests.blubber.helpers import config, phase_lines


def test_list_is_shorthand_for_default_release() -> None:
    assert config("apt: {packages: [curl, git]}").common.apt.packages == {"default": ("curl", "git")}


def test_merge_appends_per_release_and_lists() -> None:
    a = Apt({"default": ("libfoo", "libbar"), "baz-backports": ("libbaz",)}, (Source("http://a", "x"),))
    b = Apt({"baz-backports": ("libqux",), "default": ("libfoo",)}, (), (Proxy("http://p"),))
    merged = a.merge(b)
    # Duplicates are kept (quirk 11, replicated: apt does not mind).
    assert merged.packages == {
        "default": ("libfoo", "libbar", "libfoo"),
        "baz-backports": ("libbaz", "libqux"),
    }
    assert merged.sources == (Source("http://a", "x"),)
    assert merged.proxies == (Proxy("http://p"),)


@pytest.mark.parametrize(
    ("proxy", "line"),
    [
        (Proxy("http://proxy.example:8080"), 'Acquire::http::Proxy "http://proxy.example:8080";'),
        (Proxy("https://proxy.example:8080"), 'Acquire::https::Proxy "https://proxy.example:8080";'),
        (
            Proxy("https://proxy.example:8080", "http://security.example.org"),
            'Acquire::http::Proxy::security.example.org "https://proxy.example:8080";',
        ),
        (
            Proxy("http://proxy.example:8080", "https://security.example.org"),
            'Acquire::https::Proxy::security.example.org "http://proxy.example:8080";',
        ),
    ],
)
def test_proxy_lines(proxy: Proxy, line: str) -> None:
    assert proxy.line() == line


def test_source_lines_and_keyring() -> None:
    digest = hashlib.sha256(b"foo").hexdigest()
    assert digest.startswith("2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae")
    plain = Source("http://apt.wikimedia.org", "buster-wikimedia", ("components/pygments",))
    signed = Source("https://packages.microsoft.com", "buster", ("main",), "foo")
    assert plain.line() == "deb http://apt.wikimedia.org buster-wikimedia components/pygments"
    assert signed.keyring == f"/etc/apt/keyrings/{digest}.asc"
    assert (
        signed.line()
        == f"deb [signed-by=/etc/apt/keyrings/{digest}.asc] https://packages.microsoft.com buster main"
    )


def test_install_run_writes_proxies_before_the_first_fetch() -> None:
    # Upstream writes the proxies after `apt-get update && apt-get install ca-certificates`, so that first
    # fetch bypasses them (and fails where only the proxy reaches the mirrors). Otherwise upstream's RUN.
    apt = config(
        """
        apt:
          sources:
            - url: http://apt.wikimedia.org/wikimedia
              distribution: bullseye-wikimedia
              components: [thirdparty/amd-rocm54]
          proxies:
            - {url: "http://proxy.example:8080", source: "http://security.example.org"}
            - https://proxy.example:8081
          packages:
            default: [libfoo, libbar, libfoo-dev]
            bullseye-backports: [libbaz-dev]
        """
    ).common.apt
    assert phase_lines(apt, Phase.PRIVILEGED) == [
        'ENV DEBIAN_FRONTEND="noninteractive"',
        'RUN echo "Acquire::http::Proxy::security.example.org \\"http://proxy.example:8080\\";" >> '
        "/etc/apt/apt.conf.d/99blubber-proxies && "
        'echo "Acquire::https::Proxy \\"https://proxy.example:8081\\";" >> /etc/apt/apt.conf.d/99blubber-proxies && '  # noqa: E501
        'apt-get update && apt-get install -y "ca-certificates" && '
        'echo "deb http://apt.wikimedia.org/wikimedia bullseye-wikimedia thirdparty/amd-rocm54" >> '
        "/etc/apt/sources.list.d/99blubber.list && "
        'apt-get update && apt-get install -y -t "bullseye-backports" "libbaz-dev" && '
        'apt-get install -y "libfoo" "libbar" "libfoo-dev" && rm -rf /var/lib/apt/lists/* && '
        'rm -f "/etc/apt/apt.conf.d/99blubber-proxies" && rm -f "/etc/apt/sources.list.d/99blubber.list"',
    ]


def test_signed_by_writes_the_key_in_the_same_run() -> None:
    apt = Apt(
        {"default": ("dotnet-sdk-8.0",)}, (Source("https://p.example/deb", "bookworm", ("main",), "K1\nK2"),)
    )
    run = phase_lines(apt, Phase.PRIVILEGED)[1]
    keyring = apt.sources[0].keyring
    assert f'mkdir -p "/etc/apt/keyrings" && printf \'%b\' "K1\\\\nK2" > "{keyring}"' in run
    assert f'echo "deb [signed-by={keyring}] https://p.example/deb bookworm main"' in run


def test_nothing_without_packages() -> None:
    assert Apt(sources=(Source("http://a", "b"),)).instructions(Phase.PRIVILEGED, None) == []
    assert Apt({"default": ("x1",)}).instructions(Phase.PRE_INSTALL, None) == []


def test_package_name_errors() -> None:
    with pytest.raises(ConfigError) as e:
        config('apt: {packages: [f1, "foo fighter", bar_baz, "bar=0.1*bad version", "bar/0bad_release"]}')
    lines = str(e.value).splitlines()
    assert lines == [
        'blubber.yaml:2: apt.packages[1]: "foo fighter" is not a valid Debian package name',
        'blubber.yaml:2: apt.packages[2]: "bar_baz" is not a valid Debian package name',
        'blubber.yaml:2: apt.packages[3]: "bar=0.1*bad version" is not a valid Debian package name',
        'blubber.yaml:2: apt.packages[4]: "bar/0bad_release" is not a valid Debian package name',
    ]


def test_package_error_path_in_map_form() -> None:
    with pytest.raises(ConfigError) as e:
        config("apt:\n  packages:\n    bullseye-backports: [ok1, Bad_Name]")
    assert (e.value.path, e.value.line) == ("apt.packages.bullseye-backports[1]", 4)


def test_valid_package_names() -> None:
    names = [
        "f1",
        "foo-fighter",
        "bar+b.az",
        "bar+b.az=0:0.1~foo1-1",
        "bar+b.az/stable",
        "bar+b.az/jessie-wikimedia",
    ]
    assert config(f"apt: {{packages: {names}}}").common.apt.packages["default"] == tuple(names)


@pytest.mark.parametrize(
    ("yaml", "message", "path"),
    [
        ("apt: {proxies: [{source: 'http://x'}]}", '"url" is required', "apt.proxies[0].url"),
        ("apt: {proxies: [bad://proxy.example]}", '"bad://proxy.example" is not a valid HTTP/HTTPS URL',
         "apt.proxies[0]"),
        ("apt: {proxies: [{url: 'http://p', source: 'bad://security.example.org/'}]}",
         '"bad://security.example.org/" is not a valid HTTP/HTTPS URL', "apt.proxies[0].source"),
        ("apt: {sources: [{url: 'http://a'}]}", '"distribution" is required', "apt.sources[0].distribution"),
        ("apt: {sources: [{url: 'http://a', distribution: b, components: ['--']}]}",
         '"--" is not a valid Debian component name', "apt.sources[0].components[0]"),
    ],
)  # fmt: skip
def test_source_and_proxy_errors(yaml: str, message: str, path: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(yaml)
    assert (e.value.message, e.value.path) == (message, path)


@pytest.mark.parametrize(
    ("yaml", "path"),
    [
        # Became `Acquire::http::Proxy "http://p:3142/";DPkg::Pre-Invoke{…};//";`: a command apt runs as root.
        ("apt: {packages: [curl], proxies: ['http://p:3142/\";DPkg::Pre-Invoke{\"touch${IFS}/INJECTED\";};//']}",
         "apt.proxies[0].url"),
        ("apt: {packages: [curl], proxies: [{url: 'http://p:3142/', source: 'http://s/\";x'}]}",
         "apt.proxies[0].source"),
        ("apt: {packages: [curl], sources: [{url: 'http://a/ [trusted=yes]', distribution: b}]}",
         "apt.sources[0].url"),
        # Unanchored patterns let a value add options or words to the sources.list line.
        ("apt: {packages: [curl], sources: [{url: 'http://a', distribution: 'bookworm [trusted=yes] evil'}]}",
         "apt.sources[0].distribution"),
        ("apt: {packages: [curl], sources: [{url: 'http://a', distribution: b, components: ['main [trusted=yes]']}]}",  # noqa: E501
         "apt.sources[0].components[0]"),
    ],
)  # fmt: skip
def test_values_that_would_add_apt_directives_are_refused(yaml: str, path: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(yaml)
    problems = getattr(e.value, "problems", [e.value])
    assert [p.path for p in problems] == [path]
    assert problems[0].line == 2
