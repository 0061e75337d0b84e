"""Single-file container images built here and imported with `ctr`; nothing is pulled.

The pod sandbox ("pause") image is Debian's static catatonit; the CoreDNS image is the static binary
e2e/tools.sh builds. Each is one layer holding one executable, in `docker save` format.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

CATATONIT = Path("/usr/bin/catatonit")


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def single_file_archive(tag: str, name: str, data: bytes, entrypoint: list[str], created_by: str) -> bytes:
    """A `docker save`-format archive of one layer holding the executable `/<name>`."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        _add(t, name, data, 0o755)
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": entrypoint},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": created_by}],
        },
        sort_keys=True,
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [tag], "Layers": ["layer/layer.tar"]}]
    ).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        _add(t, config_name, config)
        _add(t, "layer/layer.tar", layer_bytes)
        _add(t, "manifest.json", manifest)
    return out.getvalue()


def docker_archive(tag: str) -> bytes:
    """The pause image: /pause is catatonit, whose `-P` is its pause mode."""
    return single_file_archive(
        tag,
        "pause",
        CATATONIT.read_bytes(),
        ["/pause", "-P"],
        "e2e/localcluster/pause.py from /usr/bin/catatonit",
    )
