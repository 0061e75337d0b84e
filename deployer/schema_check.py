"""JSON Schema checks of deployer's own files (deploy.yaml, ops deploy policies, deployer.yaml).

The compiled validator (jsonschema-rs) answers "valid?"; only a document it refuses imports jsonschema,
whose errors carry the paths and messages the file:line errors are made of. Importing jsonschema costs
more than a ship's whole config check (~0.1-0.3 s of CPU per process here), and a valid file is the
common case.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jsonschema

__all__ = ["errors"]


@cache
def _schema(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


@cache
def _compiled(path: Path) -> Any:
    import jsonschema_rs

    # formats as annotations only, as jsonschema checks them by default
    return jsonschema_rs.validator_for(_schema(path), validate_formats=False)


@cache
def _full(path: Path) -> jsonschema.protocols.Validator:
    import jsonschema

    schema = _schema(path)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def errors(schema_file: Path, data: object) -> list[jsonschema.ValidationError]:
    """Every error of `data` against the schema in `schema_file`; [] when it is valid."""
    try:
        if _compiled(schema_file).is_valid(data):
            return []
    except (TypeError, ValueError):
        pass  # a YAML value JSON has no type for (a date, say): the full validator judges it
    return list(_full(schema_file).iter_errors(data))
