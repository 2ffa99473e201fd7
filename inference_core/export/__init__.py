"""The result folder (DESIGN.md, "Result folder" and "File formats"): `write_result()` writes one atomically.

Modules: folder (atomic temp folder + rename), mesh (exported parts and materials), obj, gltf, images
(sRGB PNG, HDR), camera (camera.json), lighting (lighting.json, environment.hdr, illumination.npz),
manifest (manifest.json and its schema), result (write_result).

`write_result` is imported on first use, so that `export.folder` and `export.manifest` load without
PyTorch (the command line checks its output folder before the heavy imports).
"""
from __future__ import annotations

from typing import Any

__all__ = ["write_result"]


def __getattr__(name: str) -> Any:
    if name == "write_result":
        from inference_core.export.result import write_result

        return write_result
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
