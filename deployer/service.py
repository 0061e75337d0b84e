"""Which service a command is about: `<service>` is a path to a directory that holds
`.pipeline/blubber.yaml`, or the name of one of the bundled examples (examples/<name>).

A missing directory or config is a `ConfigError` (exit 10) that says what was looked for and lists
the examples, so a typo is easy to fix.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from deployer.errors import ConfigError

__all__ = ["CONFIG_PATH", "EXAMPLES_DIR", "Service", "examples", "resolve"]

CONFIG_PATH = Path(".pipeline") / "blubber.yaml"
"""Where a service keeps its Blubber config, relative to its directory."""

EXAMPLES_DIR = Path(os.environ.get("DEPLOYER_EXAMPLES", Path(__file__).resolve().parent.parent / "examples"))

# Docker repository path components: lowercase alphanumerics separated by single . _ or -.
_INVALID = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class Service:
    """A service directory and the names derived from it."""

    name: str  # the image repository name component, e.g. "node-hello"
    directory: Path  # absolute; the docker build context
    config: Path  # directory / .pipeline/blubber.yaml

    @property
    def deploy_config(self) -> Path:
        return self.directory / ".pipeline" / "deploy.yaml"


def repository_name(directory_name: str) -> str:
    """A valid docker repository component for a directory name ("My_App" → "my_app")."""
    name = _INVALID.sub("-", directory_name.lower()).strip("._-")
    name = re.sub(r"[._-]{2,}", "-", name)
    return name or "service"


def examples(root: Path = EXAMPLES_DIR) -> list[str]:
    """Names of the bundled examples that have a Blubber config."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_PATH).is_file())


def resolve(spec: str | os.PathLike[str], *, examples_root: Path = EXAMPLES_DIR) -> Service:
    """The service `spec` names: an existing directory, else an example's name. Raises `ConfigError`."""
    text = os.fspath(spec)
    candidate = Path(text).expanduser()
    if not candidate.exists() and os.sep not in text and (examples_root / text).is_dir():
        candidate = examples_root / text
    if not candidate.exists():
        known = ", ".join(examples(examples_root)) or "none"
        raise ConfigError(
            f"service directory not found: {text}",
            hint=f"give a directory that has {CONFIG_PATH}, or an example name ({known})",
        )
    if not candidate.is_dir():
        raise ConfigError(
            f"not a directory: {text}", hint=f"give the service's directory (the one that has {CONFIG_PATH})"
        )
    directory = candidate.resolve()
    config = directory / CONFIG_PATH
    if not config.is_file():
        raise ConfigError(
            f"no Blubber config in {directory}",
            file=str(config),
            hint=f"a service directory needs {CONFIG_PATH} (see examples/node-hello)",
        )
    return Service(name=repository_name(directory.name), directory=directory, config=config)
