"""The lighting files: SH in the world frame, lighting.json, environment.hdr, illumination.npz.

The fit's SH describe incoming radiance with directions in camera space; the result files use the world
frame (head.obj's, Y up). With d_cam = R d_world, L_world(d) = L_cam(R d), which is `render.sh.rotate_sh`.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

from inference_core.export.camera import OBJ_TO_BLENDER
from inference_core.render import sh as sh_module
from inference_core.render.sh import fibonacci_sphere

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


def lighting_json(sh_world: np.ndarray, environment: dict | None = None) -> dict:
    """The lighting.json document: the global SH, a short summary of the light, and `environment`: how
    faithfully environment.hdr reproduces the SH's irradiance (see `environment_image`)."""
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
        "environment": environment or {},
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


def equirect_solid_angles(width: int, height: int) -> np.ndarray:
    """(H,) solid angle (sr) of one pixel in each row of an equirectangular image (row 0 = top)."""
    elevation = (0.5 - (np.arange(height) + 0.5) / height) * math.pi
    return np.cos(elevation) * (2 * math.pi / width) * (math.pi / height)


QUADRATURE_SIZE = (64, 32)
"""(width, height) the environment is area-averaged to before integrating irradiance (smooth in n)."""


def environment_irradiance(image: np.ndarray, normals_world: np.ndarray) -> np.ndarray:
    """(N, 3) irradiance at world normals (N, 3) of an environment image (H, W, 3) made by this module.

    Integrated over the image area-averaged to QUADRATURE_SIZE (irradiance is a cosine-smoothed
    quantity, so this changes it by well under 1%).
    """
    if image.shape[1] > QUADRATURE_SIZE[0]:
        image = cv2.resize(np.asarray(image, np.float32), QUADRATURE_SIZE, interpolation=cv2.INTER_AREA)
    height, width = image.shape[:2]
    directions = blender_equirect_directions(width, height) @ OBJ_TO_BLENDER  # (H, W, 3) world
    weights = np.broadcast_to(equirect_solid_angles(width, height)[:, None], (height, width))
    cosine = np.clip(normals_world @ directions.reshape(-1, 3).T, 0.0, None)  # (N, H*W)
    return cosine @ (weights.reshape(-1, 1) * image.reshape(-1, 3).astype(np.float64))


FIT_GRID = (24, 12)
"""(width, height) of the non-negative environment fitted when the SH radiance has negative lobes."""
BACK_WEIGHT = 0.05
"""Weight of normals facing away from the camera in that fit: the photo says little about them."""


SMOOTHNESS = 1.0
"""Weight of the neighbour-difference penalty in that fit: spreads a light over a few pixels (lower render
noise in Cycles) at almost no cost in irradiance error."""


def _neighbour_differences(width: int, height: int) -> np.ndarray:
    """(E, width*height) rows e_a - e_b for horizontal (wrapping) and vertical pixel neighbours."""
    index = np.arange(width * height).reshape(height, width)
    pairs = np.concatenate([np.stack([index.reshape(-1), np.roll(index, -1, axis=1).reshape(-1)], -1),
                            np.stack([index[:-1].reshape(-1), index[1:].reshape(-1)], -1)])
    matrix = np.zeros((len(pairs), width * height))
    matrix[np.arange(len(pairs)), pairs[:, 0]] = 1.0
    matrix[np.arange(len(pairs)), pairs[:, 1]] = -1.0
    return matrix


def _fit_nonnegative_environment(sh_world: np.ndarray, toward_camera: np.ndarray) -> np.ndarray:
    """(h, w, 3) coarse radiance >= 0 whose irradiance best matches the SH's (weighted, smoothed NNLS).

    Needed when fitted SH radiance dips below zero (no light can do that, and such SH may even give negative
    irradiance behind the head): normals facing the camera, which the photo constrains, count fully.
    """
    from scipy.optimize import nnls

    width, height = FIT_GRID
    directions = (blender_equirect_directions(width, height) @ OBJ_TO_BLENDER).reshape(-1, 3)
    solid_angle = np.broadcast_to(equirect_solid_angles(width, height)[:, None], (height, width)).reshape(-1)
    normals = fibonacci_sphere(400)
    weight = np.sqrt(np.where(normals @ toward_camera >= 0.0, 1.0, BACK_WEIGHT))
    kernel = np.clip(normals @ directions.T, 0.0, None) * solid_angle  # (N, P): irradiance per unit radiance
    target = np.clip(irradiance(sh_world, normals), 0.0, None)  # (N, 3)
    smooth = _neighbour_differences(width, height) * SMOOTHNESS * kernel.max()
    matrix = np.concatenate([kernel * weight[:, None], smooth])
    channels = [nnls(matrix, np.concatenate([target[:, c] * weight, np.zeros(len(smooth))]), maxiter=20 * len(directions))[0]
                for c in range(3)]
    return np.stack(channels, -1).reshape(height, width, 3)


def environment_image(sh_world: np.ndarray, toward_camera: np.ndarray,
                      size: tuple[int, int] = ENVIRONMENT_SIZE) -> tuple[np.ndarray, dict]:
    """(H, W, 3) float32 equirectangular radiance for Blender's World, and how faithful it is.

    Pixels are Blender world directions, taken back to head.obj's frame (Blender = OBJ_TO_BLENDER @ OBJ).
    Where the SH radiance is non-negative everywhere the map is exactly it (so its irradiance is exactly
    lighting.json's); otherwise a non-negative map fitted to the irradiance of the normals facing the
    camera (`toward_camera`, world unit vector) is used. The report gives the relative irradiance errors.
    """
    directions_world = blender_equirect_directions(*size) @ OBJ_TO_BLENDER  # row-vector form of C.T @ d
    image = radiance(sh_world, directions_world)
    exact = bool(image.min() >= 0.0)
    if not exact:
        image = cv2.resize(_fit_nonnegative_environment(sh_world, toward_camera), size, interpolation=cv2.INTER_LINEAR)
    image = np.clip(image, 0.0, None).astype(np.float32)
    normals = fibonacci_sphere(400)
    expected, got = irradiance(sh_world, normals), environment_irradiance(image, normals)
    front = normals @ toward_camera >= 0.0
    scale = np.abs(expected[front]).mean()
    report = {"exact": exact,
              "irradiance_error_front": float(np.abs(got - expected)[front].mean() / scale),
              "irradiance_error_sphere": float(np.abs(got - expected).mean() / scale),
              "negative_irradiance_fraction": float((expected.min(-1) < 0).mean())}
    return image, report


MAX_LIGHT_DETAIL = 4.0
"""Largest brightening the light-detail map may apply (a texel lit 4x the global light is already rare)."""


def light_detail(normals_camera: np.ndarray, covered: np.ndarray, sh_map_camera: np.ndarray,
                 sh_global_camera: np.ndarray) -> np.ndarray:
    """(R, R, 3) float32: the detailed illumination's shading over the global light's, per texel and channel.

    What the per-texel SH adds to the global light (the cast shadows, occlusion and local light the
    refinement moved out of the albedo), as a factor a renderer can multiply the albedo by under the
    photo's light; 1 where the map adds nothing, off the mesh, or where the global light is too dark.
    """
    normals = torch.from_numpy(np.asarray(normals_camera, np.float32).reshape(-1, 3))
    detailed = sh_module.shading(normals, torch.from_numpy(np.asarray(sh_map_camera, np.float32).reshape(-1, 9, 3)))
    global_light = sh_module.shading(normals, torch.from_numpy(np.asarray(sh_global_camera, np.float32)))
    lit = global_light.numpy() > 1e-3 * max(float(global_light.max()), 1e-9)
    ratio = np.where(lit, detailed.numpy() / np.maximum(global_light.numpy(), 1e-12), 1.0)
    ratio = np.where(np.asarray(covered).reshape(-1, 1), ratio, 1.0)
    return np.clip(ratio, 0.0, MAX_LIGHT_DETAIL).reshape(*np.shape(covered), 3).astype(np.float32)


def write_illumination(path: Path, sh_map_world: np.ndarray, sh_global_world: np.ndarray) -> None:
    """illumination.npz: `sh_map_1001` (H, W, 9, 3) float16 and `sh_global` (9, 3) float32, world frame.

    float16 halves the file (57 MB at 1024^2) at a relative precision of 5e-4, far below what lighting needs.
    """
    with open(path, "wb") as file:
        np.savez(file, sh_map_1001=np.asarray(sh_map_world, np.float16),
                 sh_global=np.asarray(sh_global_world, np.float32))
