"""face-alignment's FAN (2DFAN-4): more accurate landmarks, used only when its weights are on disk.

face-alignment downloads its weights on first use; here it must never try, because a machine without
network makes its constructor fail and a machine with one should not download silently in the middle of a
reconstruction. So `fan_available()` checks the torch hub cache for the file first. Faces come from our
own HOG detector (face-alignment's "folder" detector, which loads nothing), so FAN needs only the 2DFAN-4
file, and both detectors agree on which face is which. `torch.compile` stays off: on CPU it costs ~1 min.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.landmarks.faces import FaceBox, srgb_rgb8
from inference_core.values import Photo

FAN_WEIGHTS_FILE = "2DFAN4-11f355bf06.pth.tar"
"""The 2D landmark network's weights, as face-alignment 1.5 names them in the torch hub cache."""
FAN_WEIGHTS_MIN_BYTES = 10_000_000
"""The real file is about 95 MB: anything much smaller is a failed download, not weights."""
FAN_BOX_GROWTH = 1.2
"""dlib's HOG boxes span brows to chin; FAN was trained on larger S3FD boxes that include the forehead."""
FAN_BOX_LIFT = 0.1
"""Upward shift of the grown box, as a fraction of its height (towards the forehead)."""


def torch_hub_checkpoints() -> Path:
    """Where torch (and face-alignment) keep downloaded weights: $TORCH_HOME/hub/checkpoints."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch")
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def fan_weights_path() -> Path:
    return torch_hub_checkpoints() / FAN_WEIGHTS_FILE


def fan_available() -> bool:
    """Whether FAN can run without network: its weights file is in the hub cache (and not a stub)."""
    path = fan_weights_path()
    return path.is_file() and path.stat().st_size >= FAN_WEIGHTS_MIN_BYTES


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def require_fan() -> None:
    """ASSETS_MISSING, saying where the weights belong, unless FAN can run without network."""
    if not fan_available():
        raise FaceAlbedoError(
            ErrorCode.ASSETS_MISSING,
            f"face-alignment's FAN weights are not in {torch_hub_checkpoints()} ({FAN_WEIGHTS_FILE}); "
            "use --detector dlib, or download them once on a machine with network "
            "(any face_alignment.FaceAlignment(...) call does) and copy them there",
        )


@functools.lru_cache(maxsize=1)
def fan_model():
    """face-alignment's 2D FAN, constructed once per process with compile off and no detector weights."""
    require_fan()
    import face_alignment

    try:
        return face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D, device=_device(), flip_input=False,
            face_detector="folder", compile=False,
        )
    except (OSError, RuntimeError, EOFError, ValueError) as exc:  # torch.load of a damaged file
        raise FaceAlbedoError(
            ErrorCode.ASSETS_CORRUPT,
            f"FAN weights {fan_weights_path()} cannot be loaded ({exc}); delete the file to fall back to "
            "dlib, or use --detector dlib",
        ) from exc


def fan_box(face: FaceBox) -> np.ndarray:
    """(5,) [x0, y0, x1, y1, score]: the HOG box grown and lifted towards the boxes FAN was trained on."""
    x0, y0, x1, y1 = face.box
    half_w, half_h = (x1 - x0) * FAN_BOX_GROWTH / 2, (y1 - y0) * FAN_BOX_GROWTH / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - FAN_BOX_LIFT * 2 * half_h
    return np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h, face.score], np.float32)


def fan_landmarks(photo: Photo, face: FaceBox) -> tuple[np.ndarray, float]:
    """(68, 2) float32 iBUG points in processing pixels and FAN's mean heatmap peak (0-1, higher is surer)."""
    points, scores, _ = fan_model().get_landmarks_from_image(
        srgb_rgb8(photo.image_linear), detected_faces=[fan_box(face)], return_landmark_score=True)
    if not points:
        raise FaceAlbedoError(ErrorCode.NO_FACE, "FAN found no landmarks in the detected face; try --detector dlib")
    return np.asarray(points[0][:, :2], np.float32), float(np.mean(scores[0]))
