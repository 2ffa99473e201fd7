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
    v = verts_screen.index_select(0, corners.reshape(-1)).reshape(-1, 3, 3)  # (N, corner, xyz)
    dx = v[..., 0] - px[:, None]  # (N, 3) corner minus pixel centre
    dy = v[..., 1] - py[:, None]
    # Twice the signed area of (pixel, corner k+1, corner k+2): proportional to barycentric k.
    dx_next, dy_next = dx.roll(-1, 1), dy.roll(-1, 1)
    sub_areas = dx_next * dy.roll(-2, 1) - dy_next * dx.roll(-2, 1)
    screen = sub_areas / sub_areas.sum(1, keepdim=True)
    weighted = screen / v[..., 2]
    return weighted / weighted.sum(1, keepdim=True)


def barycentrics(verts_screen: torch.Tensor, triangles: torch.Tensor, fragments: Fragments, *,
                 packed: bool = False) -> torch.Tensor:
    """Perspective-correct barycentrics of the pixel centres, differentiable w.r.t. verts_screen.

    verts_screen: (V, 3) [pixel x, pixel y, camera z], the same that were rasterised; triangles: (F, 3).
    Returns (H, W, 3) with 0 on background, or (N, 3) rows for fragments.covered_pixels if `packed`.
    """
    width = fragments.image_size[0]
    corners = triangles.index_select(0, fragments.covered_triangles)
    bary = barycentrics_at_pixels(verts_screen, corners, fragments.covered_pixels, width)
    return bary if packed else fragments.unpack(bary)


def interpolate(attributes: torch.Tensor, triangles: torch.Tensor, fragments: Fragments,
                bary: torch.Tensor | None = None, *, packed: bool = False) -> torch.Tensor:
    """Vertex attributes (V, C) blended by barycentrics at each pixel, differentiable.

    bary: from `barycentrics` (for gradients to vertex positions), in the same layout as the result
    ((H, W, 3) image, or (N, 3) rows if `packed`), or None for the detached fragments' barycentrics.
    Returns (H, W, C) with 0 on background, or (N, C) rows for fragments.covered_pixels if `packed`.
    Interpolate several attributes in one call by concatenating them along C: the gathers cost most.
    """
    if bary is None:
        bary = fragments.packed_bary
    elif not packed:
        bary = fragments.pack(bary)
    corners = triangles.index_select(0, fragments.covered_triangles)  # (N, 3)
    corner_values = attributes.index_select(0, corners.reshape(-1)).reshape(len(corners), 3, -1)
    values = (corner_values * bary[..., None]).sum(1)  # (N, C)
    return values if packed else fragments.unpack(values)
