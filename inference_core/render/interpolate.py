"""Differentiable shading inputs from Fragments: barycentrics, attribute interpolation, soft silhouettes.

Rasterisation picks which triangle each pixel sees (a discrete choice, no gradient); everything here is
recomputed from the pixel centres and the vertex positions, so gradients reach vertex positions and
attributes through ordinary autograd.
"""
from __future__ import annotations

import torch

from inference_core.render.rasterize import Fragments


def barycentrics_at_pixels(verts_screen: torch.Tensor, corners: torch.Tensor, pixels: torch.Tensor,
                           width: int) -> torch.Tensor:
    """(N, 3) perspective-correct barycentrics of pixel centres on triangles (differentiable).

    verts_screen: (V, 3) [pixel x, pixel y, camera z]; corners: (N, 3) vertex ids of each pixel's
    triangle; pixels: (N,) flat pixel indices y * width + x. Screen-space barycentrics l_i (ratios of
    edge functions) become perspective-correct b_i = (l_i / z_i) / sum_j (l_j / z_j).
    """
    px = (pixels % width).to(verts_screen.dtype)
    py = torch.div(pixels, width, rounding_mode="floor").to(verts_screen.dtype)
    v = verts_screen[corners]  # (N, 3 corners, 3)
    dx = v[..., 0] - px[:, None]  # (N, 3) corner minus pixel centre
    dy = v[..., 1] - py[:, None]
    # Twice the signed area of (pixel, corner k+1, corner k+2): proportional to barycentric k.
    nxt, nxt2 = [1, 2, 0], [2, 0, 1]
    sub_areas = dx[:, nxt] * dy[:, nxt2] - dy[:, nxt] * dx[:, nxt2]
    screen = sub_areas / sub_areas.sum(1, keepdim=True)
    weighted = screen / v[..., 2]
    return weighted / weighted.sum(1, keepdim=True)


def barycentrics(verts_screen: torch.Tensor, triangles: torch.Tensor, fragments: Fragments) -> torch.Tensor:
    """(H, W, 3) perspective-correct barycentrics of each pixel centre, differentiable w.r.t. verts_screen.

    verts_screen: (V, 3) [pixel x, pixel y, camera z], the same that were rasterised; background pixels get 0.
    """
    width, height = fragments.image_size
    pixels = fragments.covered_pixels
    corners = triangles[fragments.triangle_id.reshape(-1)[pixels]]
    bary = barycentrics_at_pixels(verts_screen, corners, pixels, width)
    return _scatter_pixels(bary, pixels, height * width).reshape(height, width, 3)


def interpolate(attributes: torch.Tensor, triangles: torch.Tensor, fragments: Fragments,
                bary: torch.Tensor | None = None) -> torch.Tensor:
    """(H, W, C) vertex attributes (V, C) blended by barycentrics at each pixel; 0 on background.

    bary: (H, W, 3) from `barycentrics` (for gradients to vertex positions) or None for fragments.bary.
    Differentiable w.r.t. attributes and bary. Interpolate several attributes in one call by
    concatenating them along C: the gathers are the costly part.
    """
    width, height = fragments.image_size
    bary = fragments.bary if bary is None else bary
    pixels = fragments.covered_pixels
    corners = triangles[fragments.triangle_id.reshape(-1)[pixels]]  # (N, 3)
    pixel_bary = bary.reshape(-1, 3)[pixels]  # (N, 3)
    values = (attributes[corners] * pixel_bary[..., None]).sum(1)  # (N, C)
    return _scatter_pixels(values, pixels, height * width).reshape(height, width, -1)


def _scatter_pixels(values: torch.Tensor, pixels: torch.Tensor, n_pixels: int) -> torch.Tensor:
    """(n_pixels, C) zeros with `values` (N, C) written at `pixels` (N,), differentiable."""
    out = values.new_zeros(n_pixels, values.shape[1])
    return out.index_copy(0, pixels, values)
