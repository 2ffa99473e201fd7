"""The pinhole camera in PyTorch: rigid transform, projection, rotation parameterisation.

Conventions (values.Camera): model space in cm (Y up, face towards +Z); camera space OpenCV (x right,
y down, z forward); pixels (x right, y down), pixel centres at integers.
"""
from __future__ import annotations

import math

import numpy as np
import torch

MODEL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])
"""Rotation that turns a model-space head looking at +Z into a frontal view in OpenCV camera space."""


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) rotation vectors -> (..., 3, 3) rotation matrices (Rodrigues), smooth at zero."""
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    theta = torch.sqrt(theta2 + 1e-16)
    # sin(t)/t and (1-cos(t))/t^2 with their Taylor series near 0 for stable gradients
    small = theta2 < 1e-8
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / (theta2 + 1e-16))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*axis_angle.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def matrix_to_axis_angle(rotation: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix -> (3,) rotation vector (numpy; for initialisation and export)."""
    cos = np.clip((np.trace(rotation) - 1) / 2, -1.0, 1.0)
    angle = math.acos(cos)
    if angle < 1e-8:
        return np.zeros(3)
    if math.pi - angle < 1e-4:  # near 180 degrees: axis from the symmetric part
        w, v = np.linalg.eigh((rotation + rotation.T) / 2)
        return v[:, np.argmax(w)] * angle
    axis = np.array([rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0],
                     rotation[1, 0] - rotation[0, 1]]) / (2 * math.sin(angle))
    return axis * angle


def to_camera(verts_model: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """(..., V, 3) model-space points -> camera space: R p + t."""
    return verts_model @ rotation.transpose(-1, -2) + translation[..., None, :]


def project(points_camera: torch.Tensor, fx: torch.Tensor | float, fy: torch.Tensor | float,
            cx: torch.Tensor | float, cy: torch.Tensor | float) -> torch.Tensor:
    """(..., V, 3) camera-space points -> (..., V, 2) pixel coordinates (perspective division)."""
    z = points_camera[..., 2:3].clamp_min(1e-6)
    xy = points_camera[..., :2] / z
    return torch.cat([xy[..., :1] * fx + cx, xy[..., 1:] * fy + cy], dim=-1)


def euler_angles_xyz(rotation: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in radians of R = Rz(roll) Ry(yaw) Rx(pitch), the AFLW2000 `Pose_Para` order."""
    yaw = math.asin(-np.clip(rotation[2, 0], -1.0, 1.0))
    pitch = math.atan2(rotation[2, 1], rotation[2, 2])
    roll = math.atan2(rotation[1, 0], rotation[0, 0])
    return pitch, yaw, roll
