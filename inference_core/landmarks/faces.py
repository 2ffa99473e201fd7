"""Finding faces: dlib's HOG detector over a few views of the photo, boxes in processing pixels.

The HOG detector looks for faces of about 80 pixels and misses faces that touch the image border, so it
runs on views of the photo (`DetectionView`): rescaled to DETECTION_LONG_SIDE and padded with grey, which
finds tight crops such as 168 x 192 Yale faces; histogram-equalised, then locally equalised (CLAHE), for
faces half in shadow; unpadded at the photo's own size, for crops the padding hides; and, when all of
those find nothing, enlarged to SMALL_FACE_LONG_SIDE so that faces too small to use are found and
reported as such. The first view that finds a face wins; all of its faces are returned, largest first.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from inference_core.photo import LUMINANCE, linear_to_srgb
from inference_core.values import Photo

DETECTION_LONG_SIDE = 1024
"""Long side (pixels) of the main detection view, before padding: faces of ~7 % of it or more are found."""
SMALL_FACE_LONG_SIDE = 2048
"""Long side of the last-resort view that looks for small faces (about half the size)."""
DETECTION_PAD_FRACTION = 0.2
"""Grey border added on every side, as a fraction of the view's long side, so border faces are whole."""
HOG_THRESHOLD = 0.0
"""dlib's detection score threshold; below 0 the HOG detector starts finding faces in textures."""


@dataclass(frozen=True)
class DetectionView:
    """A rescaled, padded copy of the photo's processing image, and the way back to its pixels."""

    grey: np.ndarray  # (H, W) uint8 sRGB luminance, what the detector sees
    scale_xy: tuple[float, float]  # view pixels per processing pixel, along x and y (rounding differs)
    pad: int  # grey border, view pixels, on every side

    def to_processing(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) view pixel coordinates -> processing pixels (pixel centres at integers in both)."""
        return (np.asarray(points, np.float64) - self.pad + 0.5) / np.asarray(self.scale_xy) - 0.5


@dataclass(frozen=True)
class FaceBox:
    """One detected face: its box in processing pixels, the detector's score and the view it came from."""

    box: tuple[float, float, float, float]  # (x0, y0, x1, y1) pixel edges, processing pixels
    score: float
    view: DetectionView
    view_rect: tuple[int, int, int, int]  # dlib's rectangle (left, top, right, bottom) in view pixels

    @property
    def side(self) -> float:
        """Geometric mean of the box's width and height, processing pixels."""
        x0, y0, x1, y1 = self.box
        return float(np.sqrt(max(x1 - x0, 0.0) * max(y1 - y0, 0.0)))


def find_faces(photo: Photo) -> list[FaceBox]:
    """All faces of the first view that shows any, largest first; [] when no view shows a face."""
    grey = srgb_grey(photo.image_linear)
    long_side = max(grey.shape)
    views = (
        lambda: make_view(grey, DETECTION_LONG_SIDE / long_side, DETECTION_PAD_FRACTION),
        lambda: make_view(cv2.equalizeHist(grey), DETECTION_LONG_SIDE / long_side, DETECTION_PAD_FRACTION),
        lambda: make_view(local_contrast(grey), DETECTION_LONG_SIDE / long_side, DETECTION_PAD_FRACTION),
        lambda: make_view(grey, min(1.0, DETECTION_LONG_SIDE / long_side), 0.0),
        lambda: make_view(grey, SMALL_FACE_LONG_SIDE / long_side, DETECTION_PAD_FRACTION / 4),
    )
    for build_view in views:
        faces = detect_in_view(build_view())
        if faces:
            return faces
    return []


def local_contrast(grey: np.ndarray) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation on a 4 x 4 grid: lifts a face's shadowed half."""
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(grey)


def srgb_grey(image_linear: np.ndarray) -> np.ndarray:
    """(H, W) uint8: Rec. 709 luminance of a linear-RGB image, sRGB-encoded (what detectors are trained on)."""
    luminance = image_linear @ np.array(LUMINANCE, np.float32)
    return (linear_to_srgb(luminance) * 255.0 + 0.5).astype(np.uint8)


def srgb_rgb8(image_linear: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 sRGB of a linear-RGB image."""
    return (linear_to_srgb(image_linear) * 255.0 + 0.5).astype(np.uint8)


def make_view(grey: np.ndarray, scale: float, pad_fraction: float) -> DetectionView:
    """Rescale `grey` by `scale` (area filter down, bilinear up) and pad it with mid-grey."""
    height, width = grey.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    view = cv2.resize(grey, size, interpolation=interpolation) if size != (width, height) else grey
    pad = int(round(pad_fraction * max(size)))
    if pad:
        view = cv2.copyMakeBorder(view, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=128)
    scale_xy = (size[0] / width, size[1] / height)  # what the rounding to whole pixels actually gave
    return DetectionView(grey=np.ascontiguousarray(view), scale_xy=scale_xy, pad=pad)


def detect_in_view(view: DetectionView) -> list[FaceBox]:
    """dlib HOG faces of one view, mapped to processing pixels, largest first."""
    rectangles, scores, _ = hog_detector().run(view.grey, 0, HOG_THRESHOLD)
    faces = []
    for rect, score in zip(rectangles, scores):
        # dlib's right/bottom are inclusive pixel indices: the box's far edges are one pixel further.
        corners = view.to_processing([[rect.left() - 0.5, rect.top() - 0.5],
                                      [rect.right() + 0.5, rect.bottom() + 0.5]])
        faces.append(FaceBox(box=tuple(float(v) for v in corners.ravel()), score=float(score), view=view,
                             view_rect=(rect.left(), rect.top(), rect.right(), rect.bottom())))
    return sorted(faces, key=lambda face: face.side, reverse=True)


@functools.lru_cache(maxsize=1)
def hog_detector():
    """dlib's frontal face detector (HOG + linear SVM; weights are built into dlib), made once per process."""
    import dlib

    return dlib.get_frontal_face_detector()
