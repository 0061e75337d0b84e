"""deployer.schema_check: the compiled check and jsonschema agree; jsonschema is imported only for errors."""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path

import pytest

from deployer import schema_check

SCHEMAS = Path(schema_check.__file__).parent / "schema"
DEPLOY = SCHEMAS / "deploy.schema.json"


@pytest.mark.parametrize(
    ("data", "valid"),
    [
        ({"port": 8080, "replicas": 2}, True),
        ({"port": "8080"}, False),
        ({"replicas": -1}, False),
        ({"probes": {"readiness": {"path": "/healthz"}}}, True),
        ({"no such key": 1}, False),
        ({"port": datetime.date(2026, 12, 3)}, False),  # YAML's dates: no JSON type, the full check judges
    ],
)
def test_the_compiled_check_and_jsonschema_agree(data: dict, valid: bool) -> None:
    import jsonschema

    assert (schema_check.errors(DEPLOY, data) == []) is valid
    full = list(jsonschema.Draft202012Validator(schema_check._schema(DEPLOY)).iter_errors(data))
    assert [e.message for e in schema_check.errors(DEPLOY, data)] == [e.message for e in full]


def test_a_valid_file_does_not_import_jsonschema() -> None:
    code = (
        "import sys; from deployer import schema_check as s; "
        f"assert s.errors(s.Path({str(DEPLOY)!r}), {{'port': 8080}}) == []; "
        "assert 'jsonschema' not in sys.modules, 'jsonschema imported'; "
        f"assert s.errors(s.Path({str(DEPLOY)!r}), {{'port': 'x'}}); "
        "assert 'jsonschema' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
