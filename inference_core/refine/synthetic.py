"""A synthetic face tile whose true albedo and illumination are known: for tests, benchmarks, evaluation.

The face is an ellipsoid-like normal field over the face tile (u -> azimuth, v -> elevation; mirror
symmetric in u like the ICT tile), with an albedo that has low frequencies (skin, chromatic cheeks),
sharp edges (lips, brows) and high-frequency detail (freckles), lit by a global SH light and a local
soft shadow that a global SH cannot express. The "prior stage" is simulated as the method's first
module would: region colours as the parametric albedo, the photo divided by the global shading where
seen, mirrored where only the other side was seen.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from inference_core.render import sh
from inference_core.values import PriorAlbedo, UVTexture

SKIN = (0.60, 0.42, 0.33)
LIPS = (0.55, 0.25, 0.25)
BROWS = (0.25, 0.17, 0.12)


@dataclass(frozen=True)
class SyntheticFace:
    """Inputs of the refinement stage and the truth they were made from (face tile maps, (R, R, ...))."""

    uv: UVTexture
    prior: PriorAlbedo
    albedo: np.ndarray  # (R, R, 3) true albedo of the face tile
    sh_map: np.ndarray  # (R, R, 9, 3) true per-texel SH radiance
    shadow: np.ndarray  # (R, R) in [0, 1], strength of the local shadow
    freckles: np.ndarray  # (R, R) in [0, 1], where the high-frequency detail is
    seen: np.ndarray  # (R, R) bool, texels seen in the "photo"


def texel_uv(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) of the texel centres of one tile, (R, R) each, row 0 at v = 1 (values.py)."""
    centres = (np.arange(resolution) + 0.5) / resolution
    return np.meshgrid(centres, 1 - centres)


def synthetic_normals(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(R, R, 3) camera-space unit normals of a head facing the camera (azimuth +-75, elevation +-52 deg)."""
    azimuth, elevation = (u - 0.5) * 2.6, (v - 0.5) * 1.8
    model = np.stack([np.sin(azimuth) * np.cos(elevation), np.sin(elevation),
                      np.cos(azimuth) * np.cos(elevation)], -1)
    return (model * np.array([1.0, -1.0, -1.0])).astype(np.float32)  # model (Y up, +Z) -> OpenCV camera


def synthetic_albedo(u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(albedo (R, R, 3), region id (R, R) 0 skin 1 lips 2 brows, freckle strength (R, R))."""
    cheeks = np.exp(-(((np.abs(u - 0.5) - 0.2) / 0.08) ** 2 + ((v - 0.42) / 0.08) ** 2))
    albedo = np.array(SKIN) * (1 + cheeks[..., None] * np.array([0.15, -0.05, -0.05]))
    region = np.zeros(u.shape, np.int64)
    region[(np.abs(u - 0.5) < 0.12) & (np.abs(v - 0.25) < 0.04)] = 1
    region[(np.abs(np.abs(u - 0.5) - 0.17) < 0.09) & (np.abs(v - 0.68) < 0.02)] = 2
    albedo[region == 1] = LIPS
    albedo[region == 2] = BROWS
    centres = rng.uniform(0.25, 0.75, size=(40, 2))[:, None, None, :]  # (40, 1, 1, 2) in (v, u)
    offsets = np.stack([v, u], -1)[None] - centres
    freckles = np.exp(-(offsets ** 2).sum(-1) / (2 * 0.006 ** 2)).max(0)
    albedo = albedo * (1 - 0.35 * freckles[..., None])
    return albedo.astype(np.float32), region, freckles


def synthetic_lighting(u: np.ndarray, v: np.ndarray, shadow_depth: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(global SH (9, 3), per-texel SH (R, R, 9, 3), shadow (R, R)): a warm key light from the front left
    and above, darkened by up to `shadow_depth` in a soft shadow on one cheek."""
    sh_global = np.zeros((9, 3), np.float32)
    sh_global[0], sh_global[1], sh_global[2], sh_global[3] = 3.0, -0.3, -0.8, 0.6
    sh_global *= np.array([1.0, 0.95, 0.9], np.float32)
    shadow = np.exp(-((u - 0.3) ** 2 + (v - 0.45) ** 2) / (2 * 0.08 ** 2))
    local = sh_global[None, None] * (1 - shadow_depth * shadow)[..., None, None]
    return sh_global, local.astype(np.float32), shadow


def synthetic_face(resolution: int = 128, *, shadow_depth: float = 0.45, seed: int = 0) -> SyntheticFace:
    """A face tile (plus a copy as tile 1002) with known albedo and detailed illumination."""
    u, v = texel_uv(resolution)
    coverage = ((u - 0.5) / 0.46) ** 2 + ((v - 0.5) / 0.48) ** 2 < 1
    normals = synthetic_normals(u, v) * coverage[..., None]
    albedo, region, freckles = synthetic_albedo(u, v, np.random.default_rng(seed))
    sh_global, local, shadow = synthetic_lighting(u, v, shadow_depth)
    normals_t = torch.from_numpy(normals)
    shading_true = sh.shading(normals_t, torch.from_numpy(local)).numpy()
    shading_global = sh.shading(normals_t, torch.from_numpy(sh_global)).numpy()
    # Seen: facing the camera, and the head turned so that the far cheek (u > 0.85) is hidden.
    visibility = np.clip((-normals[..., 2] - 0.15) / 0.3, 0, 1) * coverage * (u < 0.5 + 0.9 / 2.6)
    seen = visibility > 0
    colour = albedo * shading_true * seen[..., None]

    parametric = np.zeros_like(albedo)
    for r in range(3):
        members = coverage & (region == r) & (freckles < 0.1)
        members = members if members.any() else region == r  # tiny resolutions: freckles cover a region
        parametric[region == r] = albedo[members].mean(0)
    delit = np.where(seen[..., None], colour / np.maximum(shading_global, 1e-3), 0)
    mirrored = seen[:, ::-1]
    completed = np.where(seen[..., None], delit, np.where(mirrored[..., None], delit[:, ::-1], parametric))
    completed = np.clip(completed * coverage[..., None], 0, 1)
    source = np.where(seen, 1, np.where(mirrored, 2, 0))

    def tiles(face: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        return np.stack([face, face]).astype(dtype)

    uv = UVTexture(colour=tiles(colour), visibility=tiles(visibility), normals_camera=tiles(normals),
                   coverage=tiles(coverage, bool))
    prior = PriorAlbedo(parametric=tiles(parametric * coverage[..., None]), completed=tiles(completed),
                        source=tiles(source, np.uint8), sh_camera=sh_global, kind="regions",
                        coefficients=np.array([SKIN, LIPS, BROWS], np.float32))
    return SyntheticFace(uv=uv, prior=prior, albedo=albedo, sh_map=local, shadow=shadow, freckles=freckles,
                         seen=seen)
