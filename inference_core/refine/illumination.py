"""The detailed illumination map: global SH plus a smooth per-texel residual from a coarse grid.

The residual lives on a coarse (g, g) grid of SH coefficients that is upsampled bilinearly to the
texels, so the illumination map is smooth by construction and cheap to optimise. Grid values are
relative: one unit is the global lighting's mean band-0 coefficient, so that the same regulariser
weights fit a dim and a bright photo.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def residual_scale(sh_global: torch.Tensor) -> torch.Tensor:
    """(B, 9, 3) global SH -> (B,) radiance of one grid unit: the mean band-0 coefficient (>= 1e-3)."""
    return sh_global[:, 0, :].abs().mean(-1).clamp_min(1e-3)


def upsample_grid(grid: torch.Tensor, resolution: int) -> torch.Tensor:
    """(B, g, g, 9, 3) -> (B, resolution, resolution, 9, 3), bilinear between cell centres."""
    b, g = grid.shape[0], grid.shape[1]
    channels_first = grid.reshape(b, g, g, 27).permute(0, 3, 1, 2)
    up = F.interpolate(channels_first, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return up.permute(0, 2, 3, 1).reshape(b, resolution, resolution, 9, 3)


def resize_grid(grid: torch.Tensor, cells: int) -> torch.Tensor:
    """(B, g, g, 9, 3) residual grid resampled to (B, cells, cells, 9, 3) (e.g. a network's to the settings')."""
    return grid if grid.shape[1] == cells else upsample_grid(grid, cells)


def sh_map(sh_global: torch.Tensor, grid: torch.Tensor, resolution: int) -> torch.Tensor:
    """Per-texel SH radiance (B, R, R, 9, 3): global (B, 9, 3) + upsampled relative residual grid."""
    scale = residual_scale(sh_global)[:, None, None, None, None]
    return sh_global[:, None, None] + upsample_grid(grid, resolution) * scale


def texel_shading(shading_basis: torch.Tensor, sh_global: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Shading E/pi (B, R, R, 3) under the detailed illumination map.

    shading_basis: (B, R, R, 9) SH basis x Lambert factors of the texel normals (`RefineInputs.shading_basis`).
    """
    global_part = torch.einsum("bhwk,bkc->bhwc", shading_basis, sh_global)
    residual = upsample_grid(grid, shading_basis.shape[1])
    scale = residual_scale(sh_global)[:, None, None, None]
    return global_part + scale * (shading_basis[..., None] * residual).sum(-2)


def zero_grid(batch: int, cells: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """A residual grid of zeros (the global lighting alone)."""
    return torch.zeros(batch, cells, cells, 9, 3, device=device)
