"""camera.json: the view that reproduces the photo, for OpenCV-style tools and for Blender.

World = head.obj's frame (metres, Y up). A vertex p lands on pixel (fx*x/z + cx, fy*y/z + cy) with
(x, y, z) = world_to_camera . (p, 1) (DESIGN.md, "File formats"), in the pixels of the original photo.

Blender: the OBJ importer's default axes (forward -Z, up Y) turn an OBJ point p into b = OBJ_TO_BLENDER p.
A Blender camera looks down its local -Z with local +Y up, i.e. its frame is OpenCV's with y and z flipped.
The sensor is fitted horizontally (sensor_fit HORIZONTAL), so lens_mm = fx * sensor_width / W and both
shifts are in units of the image width (Blender measures shift in the fitted dimension).
"""
from __future__ import annotations

import numpy as np

from inference_core.render.camera import euler_angles_xyz
from inference_core.values import Camera

FORMAT = "facealbedo.camera/1"
CM_TO_M = 0.01
SENSOR_WIDTH_MM = 36.0
"""Full-frame width; any value works as long as lens_mm is given for it."""
OBJ_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""OBJ (Y up) -> Blender (Z up) as done by Blender's OBJ/glTF importers with their default axes."""
OPENCV_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0])
"""OpenCV camera axes (x right, y down, z forward) -> Blender camera axes (x right, y up, z backward)."""


def world_to_camera_matrix(camera: Camera) -> np.ndarray:
    """(4, 4) float64: head.obj (metres) -> OpenCV camera space (metres)."""
    matrix = np.eye(4)
    matrix[:3, :3] = camera.rotation
    matrix[:3, 3] = np.asarray(camera.translation_cm, np.float64) * CM_TO_M
    return matrix


def blender_camera(camera: Camera) -> dict:
    """Blender camera settings (object transform and lens) that reproduce `camera`'s view."""
    width, height = camera.image_size
    # Camera-to-world in Blender's frame: b = C R^T F c_blender - C R^T t.
    rotation = OBJ_TO_BLENDER @ camera.rotation.T @ OPENCV_TO_BLENDER_CAMERA
    location = -OBJ_TO_BLENDER @ camera.rotation.T @ (np.asarray(camera.translation_cm) * CM_TO_M)
    pitch, yaw, roll = euler_angles_xyz(rotation)  # R = Rz(roll) Ry(yaw) Rx(pitch): Blender's 'XYZ'
    return {
        "location": [float(v) for v in location],
        "rotation_euler_xyz": [float(pitch), float(yaw), float(roll)],
        "lens_mm": float(camera.fx * SENSOR_WIDTH_MM / width),
        "sensor_width_mm": SENSOR_WIDTH_MM,
        "sensor_fit": "HORIZONTAL",
        "shift_x": float((width / 2 - (camera.cx + 0.5)) / width),
        # Blender scales the view plane's y by pixel_aspect_y / pixel_aspect_x = fx / fy.
        "shift_y": float(((camera.cy + 0.5) - height / 2) * (camera.fx / camera.fy) / width),
        "resolution": [int(width), int(height)],
        "pixel_aspect": [1.0, float(camera.fx / camera.fy)],  # render.pixel_aspect_x, _y (1, 1 when fx == fy)
    }


def camera_json(camera: Camera) -> dict:
    """The camera.json document for `camera` (already in the pixels of the original photo)."""
    return {
        "format": FORMAT,
        "image_size": [int(camera.image_size[0]), int(camera.image_size[1])],
        "intrinsics": {"fx": float(camera.fx), "fy": float(camera.fy),
                       "cx": float(camera.cx), "cy": float(camera.cy)},
        "world_to_camera": world_to_camera_matrix(camera).tolist(),
        "blender": blender_camera(camera),
    }


def project_world_points(document: dict, points_m: np.ndarray) -> np.ndarray:
    """(N, 3) head.obj points -> (N, 2) pixels by camera.json's formula (for tests and tools)."""
    matrix = np.asarray(document["world_to_camera"], np.float64)
    cam = points_m @ matrix[:3, :3].T + matrix[:3, 3]
    k = document["intrinsics"]
    return np.stack([k["fx"] * cam[:, 0] / cam[:, 2] + k["cx"], k["fy"] * cam[:, 1] / cam[:, 2] + k["cy"]], -1)
