"""Read deployer.yaml into `Environments`: schema-checked, with file:line:path errors, secrets refused.

The file is read with blubber's line-keeping YAML loader (`blubber.source`) like blubber.yaml and
deploy.yaml, and checked against `deployer.schema.json` beside this module; each environment's `deploy:`
defaults are checked against deploy.yaml's own schema. Relative paths are relative to the file's
directory. The built-in `local` environment is always there unless the file defines one of that name.

Reads files only: no process, no network, and never the credentials an environment points to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blubber.errors import UserError
from blubber.source import Source, YamlPath, parse, read_file
from deployer import schema_check
from deployer.errors import ExitCode

from . import model as m
from .builtin import LOCAL, LOCAL_NAME

if TYPE_CHECKING:
    import jsonschema

__all__ = ["CONFIG_FILE", "Environments", "UnknownEnvironment", "find", "load"]

CONFIG_FILE = "deployer.yaml"
_SCHEMA = Path(__file__).with_name("deployer.schema.json")
_DEPLOY_SCHEMA = Path(__file__).resolve().parents[1] / "schema" / "deploy.schema.json"

# Keys that would hold a secret. deployer.yaml says where credentials come from, never what they are.
_SECRET_KEYS = frozenset({"password", "passwd", "token", "secret", "auth", "auths", "apikey", "api_key"})
_SECRETS_HINT = (
    "name where the secret comes from instead: credentials: {env: {user: VAR, password: VAR}}, "
    "{dockerConfig: {path: …}} or {file: {path: …}}"
)


class UnknownEnvironment(UserError):
    """`--env NAME` names no environment; the message lists the known ones."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class Environments:
    """Every environment a project knows, by name, and the one used when none is named."""

    by_name: Mapping[str, m.Environment]
    default: str
    file: str | None = None
    source: Source | None = field(default=None, repr=False, compare=False)

    def names(self) -> list[str]:
        return sorted(self.by_name)

    def get(self, name: str | None = None) -> m.Environment:
        """The environment `name` (None: the default one); an unknown name is an UnknownEnvironment."""
        name = name or self.default
        env = self.by_name.get(name)
        if env is None:
            where = f" in {self.file}" if self.file else " (no deployer.yaml found)"
            raise UnknownEnvironment(
                f"unknown environment {name!r}; known{where}: {', '.join(self.names())}",
                hint=f"pick one of those, or define {name!r} under `environments:` in {CONFIG_FILE}",
            )
        return env


def find(start: Path) -> Path | None:
    """The nearest deployer.yaml in `start` or one of its parents (the repository root usually), if any."""
    start = start.resolve()
    for directory in (start, *start.parents):
        candidate = directory / CONFIG_FILE
        if candidate.is_file():
            return candidate
    return None


def load(path: Path | None) -> Environments:
    """The environments of deployer.yaml at `path` (None: only the built-in `local` one).

    Raises ConfigError (exit 10, file:line, YAML path, hint) for an unreadable or invalid file.
    """
    if path is None:
        return Environments({LOCAL_NAME: LOCAL}, LOCAL_NAME)
    source = parse(read_file(path), str(path))
    data = source.data
    if not isinstance(data, dict):
        raise source.error((), f"{CONFIG_FILE} must be a mapping with `environments:`")
    _refuse_secrets(source, data, ())
    _check(source, data, _SCHEMA, ())
    base = Path(path).resolve().parent
    by_name = {LOCAL_NAME: LOCAL}
    for name, spec in data["environments"].items():
        by_name[name] = _environment(source, base, name, spec)
    default = data.get("default", LOCAL_NAME)
    if default not in by_name:
        raise source.error(
            ("default",),
            f"default environment {default!r} is not defined",
            hint=f"known: {', '.join(sorted(by_name))}",
        )
    return Environments(by_name, default, str(path), source)


def _environment(source: Source, base: Path, name: str, spec: Mapping[str, Any]) -> m.Environment:
    at: YamlPath = ("environments", name)
    reg = spec["registry"]
    host = reg["host"]
    namespace = reg.get("namespace", name)
    deploy = spec.get("deploy") or {}
    _check(source, deploy, _DEPLOY_SCHEMA, (*at, "deploy"))
    for key in ("release", "namespace"):
        if key in deploy:
            raise source.error(
                (*at, "deploy", key),
                f"{key} cannot have an environment default",
                hint="set it per service in deploy.yaml, or use cluster.namespace for the namespace rule",
            )
    cluster = spec.get("cluster") or {}
    policies = spec.get("policies") or {}
    return m.Environment(
        name=name,
        registry=m.Registry(
            host=host,
            namespace=namespace,
            charts=reg.get("charts", f"oci://{host}/{namespace}/charts"),
            tls=_tls(reg.get("tls", "system"), base),
            credentials=_credentials(reg.get("credentials", {"none": True}), base),
            pull_credentials=_credentials(reg["pullCredentials"], base) if "pullCredentials" in reg else None,
        ),
        cluster=m.Cluster(
            kubeconfig=_path(cluster.get("kubeconfig"), base),
            context=cluster.get("context"),
            namespace=m.NamespaceRule(
                cluster.get("namespace", "{release}"), cluster.get("serviceMayChooseNamespace", True)
            ),
        ),
        policies=m.Policies(_path(policies.get("blubber"), base), _path(policies.get("deploy"), base)),
        deploy_defaults=deploy,
        file=source.file,
        line=source.line(at),
        deploy_lines=_lines(source, (*at, "deploy"), deploy),
    )


def _lines(source: Source, at: YamlPath, data: Any) -> dict[tuple[str, ...], int]:
    """The line of every key below `at` (paths relative to it)."""
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(data, Mapping):
        for key, value in data.items():
            line = source.line((*at, str(key)))
            if line:
                lines[(str(key),)] = line
            for sub, sub_line in _lines(source, (*at, str(key)), value).items():
                lines[(str(key), *sub)] = sub_line
    return lines


def _path(value: str | None, base: Path) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _tls(value: str | Mapping[str, str], base: Path) -> m.Tls:
    if isinstance(value, Mapping):
        return m.Tls(m.TlsMode.CA_FILE, _path(value["caFile"], base))
    return m.Tls(m.TlsMode(value))


def _credentials(value: Mapping[str, Any], base: Path) -> m.CredentialsSource:
    (kind, spec), *_ = value.items()
    if kind == "env":
        return m.CredentialsSource(
            m.CredentialsKind.ENV, user_var=spec["user"], password_var=spec["password"]
        )
    if kind == "dockerConfig":
        return m.CredentialsSource(m.CredentialsKind.DOCKER_CONFIG, path=_path(spec.get("path"), base))
    if kind == "file":
        return m.CredentialsSource(
            m.CredentialsKind.FILE,
            path=_path(spec["path"], base),
            user_key=spec.get("userKey", "REGISTRY_USER"),
            password_key=spec.get("passwordKey", "REGISTRY_PASSWORD"),
        )
    return m.CredentialsSource(m.CredentialsKind.NONE)


def _refuse_secrets(source: Source, node: object, path: YamlPath) -> None:
    """A key that would hold a secret is an error, wherever it is, except the variable names of
    `credentials.env` (the schema makes those upper-case names, which a generated secret is not)."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            _refuse_secrets(source, item, (*path, index))
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        here = (*path, str(key))
        names = path[-2:] in (("credentials", "env"), ("pullCredentials", "env"))
        if names or (len(path) >= 2 and path[2:3] == ("deploy",)):
            continue  # env var names; deploy defaults have their own schema (secretEnv holds names too)
        if str(key).lower() in _SECRET_KEYS:
            raise source.error(here, f"a secret does not belong in {CONFIG_FILE}", hint=_SECRETS_HINT)
        _refuse_secrets(source, value, here)


def _located(error: jsonschema.ValidationError, prefix: YamlPath) -> YamlPath:
    path: YamlPath = (*prefix, *error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        if unknown:  # point at the unknown key, not at its mapping
            path = (*path, str(unknown[0]))
    elif "propertyNames" in error.schema_path and isinstance(error.instance, str):
        path = (*path, error.instance)
    return path


def _check(source: Source, data: object, schema_file: Path, prefix: YamlPath) -> None:
    """The first schema error in document order (the deepest one on a line) as a ConfigError."""
    errors = schema_check.errors(schema_file, data)
    if not errors:
        return
    first = min(errors, key=lambda e: (source.line(_located(e, prefix)) or 0, -len(_located(e, prefix))))
    path = _located(first, prefix)
    raise source.error(path, _message(first, path), hint=_hint(first))


_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "a string", "boolean": "true or false"}


def _message(error: jsonschema.ValidationError, path: YamlPath) -> str:
    if error.validator == "additionalProperties":
        return f"unknown key {str(path[-1])!r}"
    if "credentials" in path or "pullCredentials" in path:
        # Never echo a value under credentials: a mistake there may be a pasted secret.
        if error.validator == "type":
            from blubber.schema import type_name  # only on this error path: it loads the compiler's schema

            return f"must be {_TYPE_WORDS.get(str(error.validator_value), error.validator_value)}, not " + (
                f"{type_name(error.instance)} (the value is not shown: it may be a secret)"
            )
        return f"invalid value ({error.validator}: {error.validator_value!r})"
    if error.validator == "pattern":
        return f"{error.instance!r} is not valid here"
    return error.message


def _hint(error: jsonschema.ValidationError) -> str | None:
    if error.validator == "additionalProperties":
        return f"allowed keys here: {', '.join(sorted(error.schema.get('properties', {})))}"
    if isinstance(error.schema, dict) and error.schema.get("description"):
        return str(error.schema["description"])
    parent = error.parent.schema if error.parent is not None else None
    return parent.get("description") if isinstance(parent, dict) else None
