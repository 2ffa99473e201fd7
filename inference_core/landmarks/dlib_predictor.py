"""The offline landmark detector: dlib's 68-point shape predictor from `face_recognition_models`.

The .dat file is found by path (`importlib.util.find_spec`), without importing the package, whose
`__init__` needs `pkg_resources` (gone from setuptools 81).
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.landmarks.faces import FaceBox

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
MODELS_PACKAGE = "face_recognition_models"


def predictor_path() -> Path | None:
    """The 68-point predictor shipped in the `face-recognition-models` package, or None if absent."""
    spec = importlib.util.find_spec(MODELS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "models" / PREDICTOR_FILE
        if candidate.is_file():
            return candidate
    return None


def dlib_available() -> bool:
    """Whether dlib imports and its 68-point predictor file is installed."""
    return importlib.util.find_spec("dlib") is not None and predictor_path() is not None


@functools.lru_cache(maxsize=1)
def shape_predictor():
    """dlib's 68-point shape predictor, loaded once per process (~0.5 s, 100 MB file)."""
    path = predictor_path()
    if path is None or importlib.util.find_spec("dlib") is None:
        raise FaceAlbedoError(
            ErrorCode.ASSETS_MISSING,
            f"dlib's landmark model ({MODELS_PACKAGE}/models/{PREDICTOR_FILE}) is not installed; "
            "run `pip install dlib-bin face-recognition-models` (or reinstall the project)",
        )
    import dlib

    return dlib.shape_predictor(str(path))


def dlib_landmarks(face: FaceBox) -> np.ndarray:
    """(68, 2) float32 iBUG points of `face`, predicted in the view it was found in, in processing pixels."""
    import dlib

    shape = shape_predictor()(face.view.grey, dlib.rectangle(*face.view_rect))
    points = np.array([[part.x, part.y] for part in shape.parts()], np.float64)
    return face.view.to_processing(points).astype(np.float32)
