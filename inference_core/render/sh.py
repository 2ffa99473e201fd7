"""Real spherical harmonics, bands 0-2, and Lambertian shading under SH lighting.

Coefficients describe incoming radiance L(w) = sum_k c_k Y_k(w). A Lambertian surface with normal n
receives irradiance E(n) = sum_k A_l(k) c_k Y_k(n) (Ramamoorthi & Hanrahan 2001), and with albedo a it
sends out radiance a * E(n) / pi. `shading()` returns E(n) / pi, so that pixel = albedo * shading.
This is the one place where the basis and the convolution constants are written (lighting.json quotes it).
"""
from __future__ import annotations

import math

import numpy as np
import torch

BASIS_DESCRIPTION = (
    "Y00=0.282095; Y1m=0.488603*(y, z, x); Y2-2=1.092548*x*y; Y2-1=1.092548*y*z; "
    "Y20=0.315392*(3z^2-1); Y21=1.092548*x*z; Y22=0.546274*(x^2-y^2)"
)
IRRADIANCE_DESCRIPTION = (
    "E(n) = sum_k A_l(k) * c_k * Y_k(n), A0=pi, A1=2pi/3, A2=pi/4; outgoing Lambertian radiance = albedo * E(n) / pi"
)
ORDER = ("(0,0)", "(1,-1)", "(1,0)", "(1,1)", "(2,-2)", "(2,-1)", "(2,0)", "(2,1)", "(2,2)")

LAMBERT_BAND_FACTORS = (math.pi, 2 * math.pi / 3, math.pi / 4)
"""A_l: the clamped-cosine kernel's SH convolution constants for bands 0, 1, 2."""
BAND_OF_COEFFICIENT = (0, 1, 1, 1, 2, 2, 2, 2, 2)

AMBIENT_WHITE = 1.0 / (0.282095)
"""c_0 of a uniform white environment whose shading E/pi is exactly 1 (c0 * pi * Y00 / pi = 1)."""


def sh_basis(directions: torch.Tensor) -> torch.Tensor:
    """(..., 3) unit vectors -> (..., 9) real SH basis values in ORDER."""
    x, y, z = directions.unbind(-1)
    return torch.stack([
        torch.full_like(x, 0.282095),
        0.488603 * y,
        0.488603 * z,
        0.488603 * x,
        1.092548 * x * y,
        1.092548 * y * z,
        0.315392 * (3 * z * z - 1),
        1.092548 * x * z,
        0.546274 * (x * x - y * y),
    ], dim=-1)


def lambert_factors(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """(9,) A_l(k) / pi for each coefficient: the factors that turn radiance SH into shading E/pi."""
    return torch.tensor([LAMBERT_BAND_FACTORS[b] / math.pi for b in BAND_OF_COEFFICIENT], dtype=dtype, device=device)


def shading(normals: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """Lambertian shading E(n)/pi: normals (..., 3) unit, sh (9, 3) or (..., 9, 3) -> (..., 3) RGB."""
    basis = sh_basis(normals) * lambert_factors(normals.dtype, normals.device)  # (..., 9)
    if sh.dim() == 2:
        return basis @ sh
    return (basis[..., :, None] * sh).sum(-2)


def fibonacci_sphere(count: int) -> np.ndarray:
    """(count, 3) float64 unit vectors spread evenly over the sphere (Fibonacci spiral), z from +1 to -1."""
    i = np.arange(count) + 0.5
    z = 1 - 2 * i / count
    r = np.sqrt(1 - z * z)
    angle = math.pi * (3 - math.sqrt(5)) * i
    return np.stack([r * np.cos(angle), r * np.sin(angle), z], axis=-1)


def rotate_sh(sh: torch.Tensor, rotation: torch.Tensor, samples: int = 256) -> torch.Tensor:
    """SH coefficients (9, 3) of radiance L expressed in a frame rotated by `rotation`.

    Returns c' with L'(d) = L(rotation @ d): exact for bands 0-2, which rotations keep closed, found by
    least squares on a fixed spherical design of directions.
    """
    dirs = torch.from_numpy(fibonacci_sphere(samples))
    rotated = dirs @ rotation.to(torch.float64).T
    target = sh_basis(rotated) @ sh.to(torch.float64)
    solution = torch.linalg.lstsq(sh_basis(dirs), target).solution
    return solution.to(sh.dtype)
