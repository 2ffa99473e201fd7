"""FaceAlbedo's inference core: photo -> landmarks -> 3DMM fit -> UV albedo + lighting -> result folder.

Pure Python and PyTorch; never imports bpy. The public entry point is `reconstruct()`.
"""
from __future__ import annotations

from typing import Any

from inference_core.errors import ErrorCode, FaceAlbedoError

__all__ = ["ErrorCode", "FaceAlbedoError", "reconstruct"]


def reconstruct(*args: Any, **kwargs: Any) -> Any:
    """Reconstruct a relightable head from one photo; see `inference_core.pipeline.reconstruct`."""
    from inference_core.pipeline import reconstruct as _reconstruct  # torch loads only when needed

    return _reconstruct(*args, **kwargs)
