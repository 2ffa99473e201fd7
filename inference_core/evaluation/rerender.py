"""Re-rendering a UV albedo through the fitted head: photo-space albedo x SH shading, for the metrics.

The fitted skin mesh is rasterised once per photo (`surface_view`); each albedo under evaluation (raw
unwrap, prior, refined) is then looked up through the same per-pixel UVs and shaded with the same
normals (`rerender`), so the baselines differ only in their albedo and lighting.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from inference_core.facemodel import SKIN_PARTS, FaceModel
from inference_core.facemodel.geometry import vertex_normals
from inference_core.render import sh as sh_module
from inference_core.render.camera import project, to_camera
from inference_core.render.interpolate import interpolate
from inference_core.render.rasterize import rasterize
from inference_core.values import UV_TILES, FaceFit, UVTexture

TRUSTED_WEIGHT = 0.5
"""Texel visibility and fit inlier weight from which a pixel counts as trusted skin for the metrics."""


@dataclass(frozen=True)
class SurfaceView:
    """What the camera sees of the fitted skin: per covered pixel, its UV tile, UV and normal."""

    mask: np.ndarray  # (H, W) bool: skin rendered here and inside FaceFit.face_mask
    tile_index: np.ndarray  # (N,) int64 index into UV_TILES of each masked pixel (row-major order)
    uv: np.ndarray  # (N, 2) float64 UDIM uv of each masked pixel
    normals_camera: np.ndarray  # (N, 3) float32 unit normals, camera space


@dataclass(frozen=True)
class Rerender:
    """An albedo re-rendered into the photo: image = albedo x shading inside `mask`, 0 outside."""

    image: np.ndarray  # (H, W, 3) float32 linear
    albedo: np.ndarray  # (H, W, 3) float32 the albedo as the camera sees it
    shading: np.ndarray  # (H, W, 3) float32 E/pi
    mask: np.ndarray  # (H, W) bool


def surface_view(fit: FaceFit, model: FaceModel) -> SurfaceView:
    """Rasterise the fitted skin (tiles 1001/1002, back faces culled) at the fit's processing size."""
    camera = fit.camera
    rotation = torch.as_tensor(camera.rotation, dtype=torch.float32)
    verts_model = torch.as_tensor(fit.vertices_cm, dtype=torch.float32)
    verts_camera = to_camera(verts_model, rotation, torch.as_tensor(camera.translation_cm, dtype=torch.float32))
    screen = torch.cat([project(verts_camera, camera.fx, camera.fy, camera.cx, camera.cy),
                        verts_camera[:, 2:]], dim=1)
    skin = model.part_triangles(*SKIN_PARTS)
    triangles = torch.as_tensor(model.triangles[skin])
    fragments = rasterize(screen, triangles, camera.image_size, cull_backfaces=True)
    normals = vertex_normals(verts_model, torch.as_tensor(model.triangles)) @ rotation.T
    uv = interpolate(torch.as_tensor(model.uvs, dtype=torch.float64), torch.as_tensor(model.triangle_uvs[skin]),
                     fragments, fragments.bary.double())
    normal_image = interpolate(normals, triangles, fragments)
    mask = fragments.mask.numpy() & fit.face_mask.astype(bool)
    tile_of_triangle = model.triangle_tiles()[skin] - UV_TILES[0]
    tile_index = tile_of_triangle[fragments.triangle_id.numpy()[mask]]
    normals_px = torch.nn.functional.normalize(normal_image[torch.as_tensor(mask)], dim=-1)
    return SurfaceView(mask=mask, tile_index=tile_index.astype(np.int64), uv=uv.numpy()[mask],
                       normals_camera=normals_px.numpy().astype(np.float32))


def trusted_pixels(view: SurfaceView, uv: UVTexture, fit: FaceFit) -> np.ndarray:
    """(H, W) bool: pixels of the view that show skin the method can explain.

    A pixel is trusted where its texel's visibility (seen, not grazing, not an outlier such as hair,
    glasses or a hand) and the fit's inlier weight both reach TRUSTED_WEIGHT. Re-render metrics are
    taken there, so that a complete albedo is not blamed for not reproducing the hair over a forehead.
    """
    visibility = sample_uv_maps(uv.visibility[..., None], view.tile_index, view.uv)[:, 0]
    keep = (visibility >= TRUSTED_WEIGHT) & (fit.inlier_weight[view.mask] >= TRUSTED_WEIGHT)
    trusted = np.zeros_like(view.mask)
    trusted[view.mask] = keep
    return trusted


def sample_uv_maps(maps: np.ndarray, tile_index: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """(N, C) bilinear lookup of stacked UV maps (T, R, R, C) at UDIM coordinates uv (N, 2).

    Texel (i, j) of tile t has its centre at u = t + (j + 0.5) / R, v = 1 - (i + 0.5) / R (values.py);
    lookups beyond the outermost texel centres clamp to the edge texel.
    """
    size = maps.shape[1]
    column = (uv[:, 0] - tile_index) * size - 0.5
    row = (1.0 - uv[:, 1]) * size - 0.5
    col0 = np.clip(np.floor(column), 0, size - 1).astype(np.int64)
    row0 = np.clip(np.floor(row), 0, size - 1).astype(np.int64)
    col1, row1 = np.minimum(col0 + 1, size - 1), np.minimum(row0 + 1, size - 1)
    wc = np.clip(column - col0, 0.0, 1.0)[:, None]
    wr = np.clip(row - row0, 0.0, 1.0)[:, None]
    flat = maps.reshape(maps.shape[0], size, size, -1)

    def at(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return flat[tile_index, r, c].astype(np.float64)

    top = at(row0, col0) * (1 - wc) + at(row0, col1) * wc
    bottom = at(row1, col0) * (1 - wc) + at(row1, col1) * wc
    return top * (1 - wr) + bottom * wr


def rerender(view: SurfaceView, albedo_uv: np.ndarray, sh_camera: np.ndarray,
             sh_map_face: np.ndarray | None = None) -> Rerender:
    """Render albedo (T, R, R, 3) x Lambertian SH shading into the photo's pixels of `view`.

    sh_camera: (9, 3) global radiance SH in camera space. sh_map_face: optional (R', R', 9, 3) per-texel
    SH of the face tile (RefinedAlbedo.sh_map); face-tile pixels then use it, the head tile the global SH.
    """
    albedo = sample_uv_maps(albedo_uv, view.tile_index, view.uv)
    normals = torch.as_tensor(view.normals_camera, dtype=torch.float64)
    sh = torch.as_tensor(np.asarray(sh_camera), dtype=torch.float64)
    if sh_map_face is None:
        shading = sh_module.shading(normals, sh)
    else:
        face_tile = np.zeros_like(view.tile_index)
        per_pixel = sample_uv_maps(np.asarray(sh_map_face)[None].reshape(1, *sh_map_face.shape[:2], 27),
                                   face_tile, view.uv).reshape(-1, 9, 3)
        per_pixel[view.tile_index != 0] = np.asarray(sh_camera, np.float64)
        shading = sh_module.shading(normals, torch.as_tensor(per_pixel))
    shading = shading.numpy()
    return Rerender(image=_paint(view.mask, albedo * shading), albedo=_paint(view.mask, albedo),
                    shading=_paint(view.mask, shading), mask=view.mask)


def _paint(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(H, W, C) float32 image with `values` (N, C) at the mask's pixels (row-major) and 0 elsewhere."""
    image = np.zeros((*mask.shape, values.shape[-1]), np.float32)
    image[mask] = values
    return image
