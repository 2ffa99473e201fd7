"""Closed-form start of the fit: head pose from the 2D landmarks and the mean head's landmark vertices."""
from __future__ import annotations

import cv2
import numpy as np

from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.facemodel import LANDMARK_VERTICES, FaceModel
from inference_core.render.camera import MODEL_TO_OPENCV

POSE_LANDMARKS = np.array([8, *range(17, 68)], dtype=np.int64)
"""Landmarks whose model vertex does not depend on pose: the chin and the inner face (no jaw contour)."""
TYPICAL_FACE_HEIGHT_CM = 12.0
"""Brow-to-chin height of the mean head, for the first guess of the depth."""


def prior_focal_px(image_size: tuple[int, int], factor: float) -> float:
    """The focal length prior in pixels: `factor` x the long side of the image."""
    return factor * float(max(image_size))


def initial_pose(points_px: np.ndarray, model: FaceModel, image_size: tuple[int, int],
                 focal_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (3, 3) and translation (3,) cm of the mean head that best reproject the landmarks.

    `points_px` (68, 2) are the 2D landmarks; the principal point is the image centre. Perspective-n-point
    (OpenCV's iterative Levenberg-Marquardt from a frontal guess at the depth the face size implies).
    """
    width, height = image_size
    camera_matrix = np.array([[focal_px, 0, (width - 1) / 2], [0, focal_px, (height - 1) / 2], [0, 0, 1]])
    object_points = model.neutral_cm[LANDMARK_VERTICES[POSE_LANDMARKS]].astype(np.float64)
    image_points = points_px[POSE_LANDMARKS].astype(np.float64)
    face_height_px = np.ptp(points_px[:, 1])
    depth_cm = focal_px * TYPICAL_FACE_HEIGHT_CM / max(face_height_px, 1.0)
    centre = (image_points.mean(0) - camera_matrix[:2, 2]) * depth_cm / focal_px
    rvec = cv2.Rodrigues(MODEL_TO_OPENCV)[0]
    tvec = np.array([[centre[0]], [centre[1]], [depth_cm]])
    ok, rvec, tvec = cv2.solvePnP(object_points, image_points, camera_matrix, None, rvec, tvec,
                                  useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok or not np.all(np.isfinite(tvec)) or tvec[2, 0] <= 0:
        raise FaceAlbedoError(ErrorCode.FIT_FAILED,
                              "the landmarks do not match a head seen by a camera; check the face detection")
    return cv2.Rodrigues(rvec)[0], tvec[:, 0]
