from __future__ import annotations

import pytest

from blubber.config.artifacts import Artifact
from blubber.config.python import Poetry, Python
from blubber.dockerfile.phases import Phase
from blubber.errors import ConfigError
from tests.blubber.helpers import config, phase_lines

REQ = (Artifact("local", "requirements.txt"),)
COPY = 'COPY --chown=$LIVES_UID:$LIVES_GID ["requirements.txt", "./"]'
VENV = 'RUN python3 "-m" "venv" "/opt/lib/venv"'
PATH = 'ENV PATH="/opt/lib/venv/bin:$PATH" VIRTUAL_ENV="/opt/lib/venv"'
TOOLS = (
    'RUN python3 "-m" "pip" "install" "-U" "setuptools!=60.9.0" && '
    'python3 "-m" "pip" "install" "-U" "wheel" "tox" "pip"'
)


def test_parse_all_keys() -> None:
    py = config(
        """
        python:
          version: python3
          requirements: [requirements.txt]
          use-system-site-packages: true
          no-deps: true
          venv: /some/other/venv
          pip-version: "~=26.0"
          setuptools-version: "~=81.0"
          wheel-version: "~=0.46.3"
          tox-version: "4.49.1"
          poetry: {version: ==2.0.1, devel: true, only: main, without: dev}
        """
    ).common.python
    assert py == Python(
        "python3", REQ, True, True, Poetry("==2.0.1", True, "main", "dev"), "/some/other/venv",
        "~=26.0", "~=81.0", "~=0.46.3", "4.49.1",
    )  # fmt: skip


def test_pip_requirements() -> None:
    py = Python("python3", REQ)
    assert phase_lines(py, Phase.PRE_INSTALL) == [
        COPY, VENV, PATH, TOOLS, 'RUN python3 "-m" "pip" "install" "-r" "requirements.txt"'
    ]  # fmt: skip
    assert phase_lines(py, Phase.POST_INSTALL) == []


def test_inactive_without_version_or_requirements() -> None:
    assert phase_lines(Python("python3"), Phase.PRE_INSTALL) == []
    assert phase_lines(Python(requirements=REQ), Phase.PRE_INSTALL) == []


def test_empty_requirements_gives_venv_and_tools_only() -> None:
    # Quirk 4: 0.23 emitted a bare `pip install`; we follow HEAD (no install line).
    assert phase_lines(Python("python3", ()), Phase.PRE_INSTALL) == [VENV, PATH, TOOLS]


def test_several_requirement_files_use_effective_destinations() -> None:
    reqs = tuple(
        Artifact("local", f) for f in ["requirements.txt", "test-requirements.txt", "docs/requirements.txt"]
    )
    lines = phase_lines(Python("python3", reqs), Phase.PRE_INSTALL)
    assert lines[:2] == [
        'COPY --chown=$LIVES_UID:$LIVES_GID ["requirements.txt", "test-requirements.txt", "./"]',
        'COPY --chown=$LIVES_UID:$LIVES_GID ["docs/requirements.txt", "docs/"]',
    ]
    assert lines[-1] == (
        'RUN python3 "-m" "pip" "install" "-r" "requirements.txt" "-r" "test-requirements.txt" '
        '"-r" "docs/requirements.txt"'
    )


def test_no_deps_and_pip_check() -> None:
    py = Python("python3", REQ, no_deps=True)
    assert (
        phase_lines(py, Phase.PRE_INSTALL)[-1]
        == 'RUN python3 "-m" "pip" "install" "--no-deps" "-r" "requirements.txt"'
    )
    assert phase_lines(py, Phase.POST_INSTALL) == ['RUN python3 "-m" "pip" "check"']


def test_system_site_packages_and_custom_venv() -> None:
    lines = phase_lines(
        Python("python3", (), use_system_site_packages=True, venv="/some/other/venv"), Phase.PRE_INSTALL
    )
    assert lines[:2] == [
        'RUN python3 "-m" "venv" "/some/other/venv" "--system-site-packages"',
        'ENV PATH="/some/other/venv/bin:$PATH" VIRTUAL_ENV="/some/other/venv"',
    ]


def test_python2_pins_old_pip_and_versions_are_passed_through() -> None:
    assert phase_lines(Python("python2.7", ()), Phase.PRE_INSTALL)[-1].endswith('"wheel" "tox" "pip<21"')
    # A short interpreter name works (quirk 3: upstream crashed on names shorter than 7 characters).
    assert phase_lines(Python("python", ()), Phase.PRE_INSTALL)[-1].endswith('"wheel" "tox" "pip"')
    py = Python("python3", (), pip_version="~=26.0", setuptools_version="~=81.0", wheel_version="~=0.46.3",
                tox_version="4.49.1")  # fmt: skip
    assert phase_lines(py, Phase.PRE_INSTALL)[-1] == (
        'RUN python3 "-m" "pip" "install" "-U" "setuptools~=81.0" && '
        'python3 "-m" "pip" "install" "-U" "wheel~=0.46.3" "tox==4.49.1" "pip~=26.0"'
    )


@pytest.mark.parametrize(
    ("poetry", "install"),
    [
        (Poetry("==1.5.1"), 'RUN poetry "install" "--no-root" "--no-dev"'),
        (Poetry("==1.5.1", devel=True), 'RUN poetry "install" "--no-root"'),
        (Poetry("==2.0.1", only="main"), 'RUN poetry "install" "--no-root" "--only" "main"'),
        (Poetry("==2.0.1", without="dev,test"), 'RUN poetry "install" "--no-root" "--without" "dev,test"'),
    ],
)
def test_poetry(poetry: Poetry, install: str) -> None:
    reqs = (Artifact("local", "pyproject.toml"), Artifact("local", "poetry.lock"))
    lines = phase_lines(Python("python3", reqs, no_deps=True, poetry=poetry), Phase.PRE_INSTALL)
    assert lines[4:] == [
        'ENV POETRY_VIRTUALENVS_PATH="/opt/lib/poetry"',
        f'RUN python3 "-m" "pip" "install" "-U" "poetry{poetry.version}"',
        'RUN mkdir -p "/opt/lib/poetry"',
        install,
    ]
    # With Poetry there is no pip check, even with no-deps.
    assert phase_lines(Python("python3", reqs, no_deps=True, poetry=poetry), Phase.POST_INSTALL) == []


def test_merge() -> None:
    a = Python("python3", REQ, True, None, Poetry("==1.5.1", True), "/v", "1")
    b = Python(None, (), False, True, Poetry(None, False, "main"), None, "2")
    assert a.merge(b) == Python("python3", (), False, True, Poetry("==1.5.1", False, "main"), "/v", "2")
    assert a.merge(Python()) == a


@pytest.mark.parametrize(
    ("yaml", "path", "message"),
    [
        ("python: {poetry: {version: '1.5.1'}}", "python.poetry.version",
         '"1.5.1" is not a valid Python package version specification'),
        ("python: {version: 'python3; rm -rf /'}", "python.version", '"python3; rm -rf /" is not a valid Python executable'),  # noqa: E501
        ("python: {pip-version: 'latest please'}", "python.pip-version",
         '"latest please" is not a valid version or version specifier'),
        ("python: {venv: relative}", "python.venv", '"relative" is not a valid absolute non-root path'),
    ],
)  # fmt: skip
def test_errors(yaml: str, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(yaml)
    assert (e.value.path, e.value.message) == (path, message)


@pytest.mark.parametrize("spec", ["==1.5.1", ">=1.0,!=1.0.3,<2.0", "~=2.0"])
def test_valid_poetry_specifiers(spec: str) -> None:
    assert config(f"python: {{poetry: {{version: '{spec}'}}}}").common.python.poetry.version == spec
