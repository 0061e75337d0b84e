"""`python`: a virtualenv with the application's dependencies (pip or Poetry).

Active only when `version` (the interpreter, e.g. python3) is set and `requirements` is present (an empty list
counts: venv and tooling only). Pre-install phase: requirement COPYs; `RUN <py> -m venv <venv>`;
`ENV PATH=<venv>/bin:$PATH VIRTUAL_ENV=<venv>`; upgrade setuptools, wheel, tox, pip (versions pinnable);
then either Poetry (`POETRY_VIRTUALENVS_PATH`, install poetry, `poetry install --no-root …`) or
`pip install [--no-deps] -r <file> …`. Post-install phase: `pip check` when `no-deps` without Poetry.
Merge: `requirements` replaced when the key is present; strings replaced when non-empty; flags when set;
`poetry` field by field.
"""

from __future__ import annotations

import re

from blubber.checks import CHECKS
from blubber.config import artifacts
from blubber.config._base import SHARED_LIB, Checker, StageContext, pick
from blubber.config.artifacts import Artifact
from blubber.dockerfile.instructions import Cmd, Env, Instruction, Run
from blubber.dockerfile.phases import Phase
from blubber.source import YamlPath
from blubber.values import field, frozen

DEFAULT_VENV = f"{SHARED_LIB}/venv"
POETRY_VENVS = f"{SHARED_LIB}/poetry"
_INTERPRETER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_BARE_VERSION = re.compile(r"^[0-9][A-Za-z0-9.+!*-]*$")


@frozen
class Poetry:
    version: str | None = None
    devel: bool | None = None
    only: str | None = None
    without: str | None = None

    def merge(self, other: Poetry) -> Poetry:
        return Poetry(
            other.version or self.version,
            pick(self.devel, other.devel),
            other.only or self.only,
            other.without or self.without,
        )


@frozen
class Python:
    version: str | None = None
    requirements: tuple[Artifact, ...] | None = None
    use_system_site_packages: bool | None = None
    no_deps: bool | None = None
    poetry: Poetry = field(default_factory=Poetry)
    venv: str | None = None
    pip_version: str | None = None
    setuptools_version: str | None = None
    wheel_version: str | None = None
    tox_version: str | None = None

    @classmethod
    def parse(cls, raw: dict | None) -> Python:
        raw = raw or {}
        p = raw.get("poetry") or {}
        return cls(
            raw.get("version"),
            artifacts.parse_requirements(raw.get("requirements")),
            raw.get("use-system-site-packages"),
            raw.get("no-deps"),
            Poetry(p.get("version"), p.get("devel"), p.get("only"), p.get("without")),
            raw.get("venv"),
            raw.get("pip-version"),
            raw.get("setuptools-version"),
            raw.get("wheel-version"),
            raw.get("tox-version"),
        )

    def merge(self, other: Python) -> Python:
        return Python(
            other.version or self.version,
            pick(self.requirements, other.requirements),
            pick(self.use_system_site_packages, other.use_system_site_packages),
            pick(self.no_deps, other.no_deps),
            self.poetry.merge(other.poetry),
            other.venv or self.venv,
            other.pip_version or self.pip_version,
            other.setuptools_version or self.setuptools_version,
            other.wheel_version or self.wheel_version,
            other.tox_version or self.tox_version,
        )

    @property
    def is_declared(self) -> bool:
        return self != Python()

    @property
    def is_active(self) -> bool:
        return bool(self.version) and self.requirements is not None

    def check(self, c: Checker, at: YamlPath) -> None:
        artifacts.check(c, self.requirements, (*at, "requirements"), dedupe_field="requirements")
        if self.version and not _INTERPRETER.match(self.version):
            c.add(
                (*at, "version"),
                f'"{self.version}" is not a valid Python executable',
                "e.g. python3 or python3.11",
            )
        if self.poetry.version:
            c.rule("pypkgver", self.poetry.version, (*at, "poetry", "version"), "e.g. ==1.5.1 or >=1.0,<2.0")
        for name in ("pip", "setuptools", "wheel", "tox"):
            value = getattr(self, f"{name}_version")
            if value and not (_BARE_VERSION.match(value) or CHECKS["pypkgver"].test(value)):
                c.add((*at, f"{name}-version"), f'"{value}" is not a valid version or version specifier')
        for key in ("only", "without"):
            value = getattr(self.poetry, key)
            if value:
                c.text(value, (*at, "poetry", key), "group list")
        if self.venv is not None:
            c.rule("abspath", self.venv, (*at, "venv"))

    def dependencies(self, variants: frozenset[str]) -> list[str]:
        return artifacts.dependencies(self.requirements, variants)

    def _pip(self, *args: str) -> Cmd:
        return Cmd(self.version, ("-m", "pip", *args))

    def instructions(self, phase: Phase, ctx: StageContext) -> list[Instruction]:
        if not self.is_active:
            return []
        if phase == Phase.POST_INSTALL:
            return [Run((self._pip("check"),))] if self.no_deps and not self.poetry.version else []
        if phase != Phase.PRE_INSTALL:
            return []
        venv = self.venv or DEFAULT_VENV
        venv_args = ("-m", "venv", venv) + (
            ("--system-site-packages",) if self.use_system_site_packages else ()
        )
        result: list[Instruction] = [
            *artifacts.requirement_copies(self.requirements, ctx),
            Run((Cmd(self.version, venv_args),)),
            Env.of({"PATH": f"{venv}/bin:$PATH", "VIRTUAL_ENV": venv}),
            Run(
                (
                    self._pip("install", "-U", "setuptools" + _spec(self.setuptools_version, "!=60.9.0")),
                    self._pip(
                        "install",
                        "-U",
                        "wheel" + _spec(self.wheel_version),
                        "tox" + _spec(self.tox_version),
                        self._pip_package(),
                    ),
                )
            ),  # fmt: skip
        ]
        if self.poetry.version:
            result += [
                Env.of({"POETRY_VIRTUALENVS_PATH": POETRY_VENVS}),
                Run((self._pip("install", "-U", "poetry" + self.poetry.version),)),
                Run.of("mkdir -p %s", POETRY_VENVS),
                Run.of("poetry", "install", "--no-root", *self._poetry_groups()),
            ]
        elif self.requirements:
            deps = ("--no-deps",) if self.no_deps else ()
            files = [x for r in self.requirements for x in ("-r", artifacts.effective_destination(r))]
            result.append(Run((self._pip("install", *deps, *files),)))
        return result

    def _pip_package(self) -> str:
        if self.pip_version:
            return "pip" + _spec(self.pip_version)
        # pip 21 dropped Python 2; upstream sliced the first 7 characters and crashed on short ones (quirk 3).
        return "pip<21" if self.version.startswith("python2") else "pip"

    def _poetry_groups(self) -> tuple[str, ...]:
        groups: tuple[str, ...] = ()
        if self.poetry.only:
            groups += ("--only", self.poetry.only)
        if self.poetry.without:
            groups += ("--without", self.poetry.without)
        if not groups and not self.poetry.devel:
            groups = ("--no-dev",)
        return groups


def _spec(version: str | None, default: str = "") -> str:
    """`1.2.3` → `==1.2.3`; a specifier (`~=26.0`) is used verbatim; None → the default."""
    if not version:
        return default
    return f"=={version}" if _BARE_VERSION.match(version) else version
