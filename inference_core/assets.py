"""Where model files live and how to find them.

Resolution order: the folder named by FACEALBEDO_ASSETS, then the user cache folder (platformdirs), else
an ASSETS_MISSING error that names the command which fetches them (`facealbedo assets fetch`).
The layout inside either folder is that of the shared assets: `ict_facekit/ict_facekit_light_model.npz`.
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from inference_core.errors import ErrorCode, FaceAlbedoError

ASSETS_ENV = "FACEALBEDO_ASSETS"
FACE_MODEL_RELPATH = Path("ict_facekit") / "ict_facekit_light_model.npz"


def user_cache_dir() -> Path:
    """The per-user folder where `facealbedo assets fetch` puts what it downloads."""
    return Path(platformdirs.user_cache_dir("facealbedo", appauthor=False))


def asset_roots() -> list[Path]:
    """The folders searched for assets, in order of preference."""
    roots = []
    if os.environ.get(ASSETS_ENV):
        roots.append(Path(os.environ[ASSETS_ENV]).expanduser())
    roots.append(user_cache_dir())
    return roots


def find_asset(relpath: Path | str) -> Path:
    """The first existing `root/relpath` over `asset_roots()`, else ASSETS_MISSING."""
    for root in asset_roots():
        candidate = root / relpath
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(r) for r in asset_roots())
    raise FaceAlbedoError(
        ErrorCode.ASSETS_MISSING,
        f"model file {relpath} not found (searched: {searched}); run `facealbedo assets fetch` "
        f"or set {ASSETS_ENV} to a folder that holds it",
    )


def face_model_path() -> Path:
    """The packed ICT-FaceKit light model."""
    return find_asset(FACE_MODEL_RELPATH)
