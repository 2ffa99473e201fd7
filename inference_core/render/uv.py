"""Rasterisation in the texel grid of one UDIM tile: which triangle, and where on it, each texel sees.

Texel (i, j) of an R x R tile has its centre at u = (tile - 1001) + (j + 0.5) / R, v = 1 - (i + 0.5) / R
(row 0 is the top, v = 1). A texel is covered when its centre lies in a UV triangle (edges included).
Unwrapping and baking then read per-texel model-space positions or normals with `texel_attributes`.
"""
from __future__ import annotations

import torch

from inference_core.render.interpolate import interpolate
from inference_core.render.rasterize import Fragments, rasterize


def uv_to_texel(uvs: torch.Tensor, tile: int, resolution: int) -> torch.Tensor:
    """(U, 2) UDIM uv -> (U, 2) texel coordinates (x = column, y = row) of `tile`, texel centres at integers."""
    column = (uvs[:, 0] - (tile - 1001)) * resolution - 0.5
    row = (1.0 - uvs[:, 1]) * resolution - 0.5
    return torch.stack([column, row], dim=1)


def rasterize_uv(uvs: torch.Tensor, triangle_uvs: torch.Tensor, tile: int, resolution: int) -> Fragments:
    """Fragments over the R x R texel grid of one UDIM tile; triangle_id indexes `triangle_uvs`.

    uvs: (U, 2) float UDIM coordinates; triangle_uvs: (F, 3) int64 indices into uvs (other tiles' triangles
    simply fall outside the grid). Depth is 1 everywhere; where UV triangles overlap, the lower id wins.
    Barycentrics are affine in uv (no perspective).
    """
    uvs = torch.as_tensor(uvs)
    texel = uv_to_texel(uvs.to(torch.float64 if uvs.dtype == torch.float64 else torch.float32), tile, resolution)
    verts = torch.cat([texel, torch.ones_like(texel[:, :1])], dim=1)
    return rasterize(verts, torch.as_tensor(triangle_uvs, dtype=torch.int64), (resolution, resolution))


def texel_attributes(attributes: torch.Tensor, triangles: torch.Tensor, fragments: Fragments) -> torch.Tensor:
    """(R, R, C) vertex attributes (V, C) (e.g. model-space positions, normals) at each texel centre.

    triangles: (F, 3) vertex ids in the same order as the triangle_uvs that were rasterised
    (FaceModel.triangles with FaceModel.triangle_uvs); uncovered texels get 0 (see fragments.mask).
    """
    return interpolate(attributes, triangles, fragments)
