"""The lighting files: SH in the world frame, lighting.json, environment.hdr, illumination.npz.

The fit's SH describe incoming radiance with directions in camera space; the result files use the world
frame (head.obj's, Y up). With d_cam = R d_world, L_world(d) = L_cam(R d), which is `render.sh.rotate_sh`.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from inference_core.export.camera import OBJ_TO_BLENDER
from inference_core.render import sh as sh_module

FORMAT = "facealbedo.lighting/1"
ENVIRONMENT_SIZE = (256, 128)
"""(width, height) of environment.hdr: SH bands 0-2 vary slowly, so this is plenty."""


def sh_rotation_matrix(rotation_model_to_camera: np.ndarray) -> np.ndarray:
    """(9, 9) float64 M with sh_world = M @ sh_camera (SH rotation is linear in the coefficients)."""
    rotation = torch.as_tensor(rotation_model_to_camera, dtype=torch.float64)
    return sh_module.rotate_sh(torch.eye(9, dtype=torch.float64), rotation).numpy()


def sh_to_world(sh_camera: np.ndarray, rotation_model_to_camera: np.ndarray) -> np.ndarray:
    """(..., 9, 3) camera-space SH -> world (head.obj) frame, float32."""
    matrix = sh_rotation_matrix(rotation_model_to_camera).astype(np.float32)
    sh_camera = np.asarray(sh_camera, np.float32)
    rotated = np.tensordot(matrix, sh_camera, axes=([1], [sh_camera.ndim - 2]))  # (9, ..., 3), BLAS
    return np.ascontiguousarray(np.moveaxis(rotated, 0, -2))


def radiance(sh: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """(..., 3) unit directions -> (..., 3) linear RGB radiance L(d) = sum_k c_k Y_k(d)."""
    basis = sh_module.sh_basis(torch.as_tensor(directions, dtype=torch.float64)).numpy()
    return basis @ np.asarray(sh, np.float64)


def irradiance(sh: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(..., 3) unit normals -> (..., 3) irradiance E(n) of lighting.json (= pi x `render.sh.shading`)."""
    normals_t = torch.as_tensor(normals, dtype=torch.float64)
    return math.pi * sh_module.shading(normals_t, torch.as_tensor(sh, dtype=torch.float64)).numpy()


def lighting_json(sh_world: np.ndarray) -> dict:
    """The lighting.json document: the global SH and a short summary of the light."""
    sh_world = np.asarray(sh_world, np.float64)
    ambient = sh_world[0] * 0.282095  # mean radiance over the sphere, RGB
    dominant = sh_world[[3, 1, 2]].mean(axis=1)  # band-1 vector (x, y, z) of the luminance-ish mean
    norm = float(np.linalg.norm(dominant))
    return {
        "format": FORMAT,
        "frame": "world",
        "sh_radiance": sh_world.tolist(),
        "order": list(sh_module.ORDER),
        "basis": sh_module.BASIS_DESCRIPTION,
        "irradiance": sh_module.IRRADIANCE_DESCRIPTION,
        "summary": {
            "mean_radiance_rgb": ambient.tolist(),
            "colour_rgb": (ambient / max(float(ambient.max()), 1e-12)).tolist(),
            "dominant_direction": (dominant / norm).tolist() if norm > 1e-12 else [0.0, 0.0, 0.0],
            "directionality": norm * 0.488603 / max(float(ambient.mean()), 1e-12),
        },
    }


def blender_equirect_directions(width: int, height: int) -> np.ndarray:
    """(H, W, 3) unit directions in Blender's world frame (Z up) of an equirectangular image's pixels.

    Cycles (kernel `direction_to_equirectangular`) maps direction d to u = 0.5 - atan2(d.y, d.x) / (2 pi),
    v = 0.5 + asin(d.z) / pi, with v = 0 at the bottom row; row 0 of the file is the top (v = 1). The
    image centre (u = 0.5) looks along +X, u = 0.25 along +Y. Checked by a Cycles render of a Lambertian
    sphere lit by the map (tests/blender_checks.py); u = atan2(d.y, -d.x) / (2 pi) + 0.5 is off by 180 deg.
    """
    u = (np.arange(width) + 0.5) / width
    v = 1.0 - (np.arange(height) + 0.5) / height
    azimuth = (0.5 - u) * 2 * math.pi  # = atan2(d.y, d.x)
    elevation = (v - 0.5) * math.pi  # = asin(d.z)
    az, el = np.meshgrid(azimuth, elevation)  # (H, W)
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)


def environment_image(sh_world: np.ndarray, size: tuple[int, int] = ENVIRONMENT_SIZE) -> np.ndarray:
    """(H, W, 3) float32 equirectangular radiance for Blender's World, negative lobes clipped to 0.

    Pixels are Blender world directions, taken back to head.obj's frame (Blender = OBJ_TO_BLENDER @ OBJ)
    to evaluate the world-frame SH.
    """
    directions_blender = blender_equirect_directions(*size)
    directions_world = directions_blender @ OBJ_TO_BLENDER  # row-vector form of OBJ_TO_BLENDER.T @ d
    return np.clip(radiance(sh_world, directions_world), 0.0, None).astype(np.float32)


def write_illumination(path: Path, sh_map_world: np.ndarray, sh_global_world: np.ndarray) -> None:
    """illumination.npz: `sh_map_1001` (H, W, 9, 3) float16 and `sh_global` (9, 3) float32, world frame.

    float16 halves the file (57 MB at 1024^2) at a relative precision of 5e-4, far below what lighting needs.
    """
    with open(path, "wb") as file:
        np.savez(file, sh_map_1001=np.asarray(sh_map_world, np.float16),
                 sh_global=np.asarray(sh_global_world, np.float32))
