"""manifest.json: what a result folder holds, how it was made, how long it took, how well it fitted.

The document follows manifest.schema.json (JSON Schema 2020-12, shipped with the package); `validate()`
checks a manifest against it.
"""
from __future__ import annotations

import datetime
import functools
import hashlib
import json
from importlib import metadata
from pathlib import Path

FORMAT = "facealbedo.result"
FORMAT_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")

FILES: dict[str, str | dict[str, str]] = {
    "head_obj": "head.obj",
    "head_mtl": "head.mtl",
    "head_glb": "head.glb",
    "albedo": {"1001": "albedo.1001.png", "1002": "albedo.1002.png"},
    "illumination": "illumination.npz",
    "lighting": "lighting.json",
    "environment": "environment.hdr",
    "light_detail": {"1001": "light_detail.1001.hdr", "1002": "light_detail.1002.hdr"},
    "camera": "camera.json",
    "unwrapped": "unwrapped.1001.png",
    "visibility": "visibility.1001.png",
    "prior_albedo": "prior_albedo.1001.png",
    "render": "render.png",
}
"""Manifest key -> file name(s) in the result folder (DESIGN.md, "Result folder"); the manifest is last."""


def software_version() -> str:
    try:
        return metadata.version("facealbedo")
    except metadata.PackageNotFoundError:
        return "unknown"


def file_sha256(path: Path | None) -> str | None:
    """Hex SHA-256 of a file's bytes (None when there is no file)."""
    if path is None or not Path(path).is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def now_utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate(document: dict) -> None:
    """Raise jsonschema.ValidationError when `document` is not a valid manifest."""
    import jsonschema

    jsonschema.validate(document, schema())


def result_paths(folder: Path) -> dict[str, Path]:
    """Flat name -> path of every contract file of a result folder (albedo tiles as albedo_1001, ...)."""
    paths = {"manifest": folder / "manifest.json"}
    for key, value in FILES.items():
        if isinstance(value, dict):
            paths.update({f"{key}_{tile}": folder / name for tile, name in value.items()})
        else:
            paths[key] = folder / value
    return paths
