"""Head pose angles of a fitted camera rotation, in the convention of AFLW2000-3D's `Pose_Para`.

AFLW2000-3D (Zhu et al., 3DDFA) poses a model whose frame is ours (Y up, face towards +Z) with
R_3ddfa = Rx(pitch)^T Ry(yaw)^T Rz(roll)^T (its MATLAB `RotationMatrix` writes the transposed elementary
rotations) and views it with y up and z towards the viewer, i.e. OpenCV's camera flipped by
MODEL_TO_OPENCV = diag(1, -1, -1). So R_3ddfa = MODEL_TO_OPENCV R_ours, and
R_3ddfa^T = R_ours^T MODEL_TO_OPENCV = Rz(roll) Ry(yaw) Rx(pitch), whose angles `euler_angles_xyz` reads.
Checked on the AFLW2000 samples in ../shared (fitted angles within a few degrees of `Pose_Para`).
"""
from __future__ import annotations

import numpy as np

from inference_core.render.camera import MODEL_TO_OPENCV, euler_angles_xyz


def aflw_pose_angles(rotation: np.ndarray) -> np.ndarray:
    """(3,) (pitch, yaw, roll) radians, AFLW2000-3D convention, of a model-to-camera rotation (3, 3)."""
    return np.array(euler_angles_xyz(np.asarray(rotation, np.float64).T @ MODEL_TO_OPENCV))


def pose_error_deg(rotation: np.ndarray, pose_para: np.ndarray) -> float:
    """Mean absolute difference, degrees, of (pitch, yaw, roll) from AFLW2000's `Pose_Para[:3]` (radians)."""
    difference = aflw_pose_angles(rotation) - np.asarray(pose_para, np.float64)[:3]
    wrapped = (difference + np.pi) % (2 * np.pi) - np.pi
    return float(np.degrees(np.abs(wrapped)).mean())
