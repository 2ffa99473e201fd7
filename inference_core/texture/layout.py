"""The UV layout of the skin tiles: which triangle and where on it each texel lies, vertex UVs, texel maths.

Everything here depends only on the model's topology and UVs and on the resolution, so it is computed
once per (model, resolution) and cached. Texel conventions follow values.py and render/uv.py: texel
(i, j) of tile t has its centre at u = (t - 1001) + (j + 0.5) / R, v = 1 - (i + 0.5) / R (row 0 on top).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from inference_core.facemodel import SKIN_PARTS, FaceModel
from inference_core.values import UV_TILES


@dataclass(frozen=True)
class TexelLayout:
    """The covered texels of the skin tiles, flattened, with the surface point each one shows.

    `texel_index` indexes the flattened (T, R, R) grid; `triangle` indexes `model.triangles`.
    """

    resolution: int
    tiles: tuple[int, ...]
    texel_index: np.ndarray  # (N,) int64 flat index into (T, R, R)
    triangle: np.ndarray  # (N,) int64 triangle id in model.triangles
    corners: np.ndarray  # (N, 3) int64 vertex ids of that triangle
    bary: np.ndarray  # (N, 3) float32 barycentrics of the texel centre on that triangle (affine in UV)
    coverage: np.ndarray  # (T, R, R) bool, texels the skin mesh covers

    @property
    def shape(self) -> tuple[int, int, int]:
        """(T, R, R): the stacked tile grid."""
        return len(self.tiles), self.resolution, self.resolution

    def scatter(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """(N, ...) per-texel values -> (T, R, R, ...) maps, `fill` off the mesh."""
        out = np.full((int(np.prod(self.shape)), *values.shape[1:]), fill, dtype=values.dtype)
        out[self.texel_index] = values
        return out.reshape(*self.shape, *values.shape[1:])

    def gather(self, maps: np.ndarray) -> np.ndarray:
        """(T, R, R, ...) maps -> (N, ...) values at the covered texels."""
        return maps.reshape(-1, *maps.shape[3:])[self.texel_index]


class _ByIdentity:
    """Hashes a model by identity, so that per-model results can sit in an lru_cache."""

    def __init__(self, model: FaceModel):
        self.model = model

    def __hash__(self) -> int:
        return id(self.model)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByIdentity) and other.model is self.model


def texel_layout(model: FaceModel, resolution: int) -> TexelLayout:
    """The skin texels of tiles 1001/1002 at `resolution` (cached per model and resolution)."""
    return _texel_layout(_ByIdentity(model), int(resolution))


@functools.lru_cache(maxsize=8)
def _texel_layout(key: _ByIdentity, resolution: int) -> TexelLayout:
    from inference_core.render.uv import rasterize_uv

    model = key.model
    skin = model.part_triangles(*SKIN_PARTS)
    tiles_of_skin = model.triangle_tiles()[skin]
    uvs = torch.from_numpy(model.uvs)
    index, triangle, bary = [], [], []
    coverage = np.zeros((len(UV_TILES), resolution, resolution), dtype=bool)
    for t, tile in enumerate(UV_TILES):
        in_tile = skin[tiles_of_skin == tile]
        fragments = rasterize_uv(uvs, torch.from_numpy(model.triangle_uvs[in_tile]), tile, resolution)
        ids = fragments.triangle_id.reshape(-1).cpu().numpy()
        hit = np.nonzero(ids >= 0)[0]
        coverage[t].reshape(-1)[hit] = True
        index.append(hit + t * resolution * resolution)
        triangle.append(in_tile[ids[hit]])
        bary.append(fragments.bary.reshape(-1, 3).cpu().numpy()[hit].astype(np.float32))
    triangle = np.concatenate(triangle)
    return TexelLayout(resolution=resolution, tiles=UV_TILES, texel_index=np.concatenate(index), triangle=triangle,
                       corners=model.triangles[triangle], bary=np.concatenate(bary), coverage=coverage)


def tile_vertex_uvs(model: FaceModel, tile: int) -> np.ndarray:
    """(V, 2) UV of each vertex as it appears on skin triangles of `tile`, NaN for vertices not there."""
    return _tile_vertex_uvs(_ByIdentity(model), int(tile))


@functools.lru_cache(maxsize=4)
def _tile_vertex_uvs(key: _ByIdentity, tile: int) -> np.ndarray:
    model = key.model
    skin = model.part_triangles(*SKIN_PARTS)
    in_tile = skin[model.triangle_tiles()[skin] == tile]
    result = np.full((model.n_vertices, 2), np.nan, dtype=np.float32)
    result[model.triangles[in_tile].ravel()] = model.uvs[model.triangle_uvs[in_tile].ravel()]
    return result


def uv_to_texel(uv: np.ndarray, tile: int, resolution: int) -> np.ndarray:
    """(..., 2) UDIM UVs -> (..., 2) continuous texel coordinates (column, row) of `tile`'s grid."""
    column = (uv[..., 0] - (tile - 1001)) * resolution - 0.5
    row = (1.0 - uv[..., 1]) * resolution - 0.5
    return np.stack([column, row], axis=-1)


def mirror_texels(maps: np.ndarray) -> np.ndarray:
    """(T, R, R, ...) maps seen through the left/right mirror: each tile flipped about its u = 0.5 line.

    The ICT skin UV layout is mirror-symmetric: a vertex and its mirror vertex (facemodel.geometry
    .mirror_map) have UVs reflected about the tile's centre line to 1e-6 (checked in the tests), so the
    texel that shows the mirror point of texel (i, j) is (i, R - 1 - j).
    """
    return maps[:, :, ::-1].copy()
