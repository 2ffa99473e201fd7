"""Unwrap: resample the photo into the skin UV tiles through the fitted head and camera.

For each covered texel: the surface point it shows (UV rasterisation, cached per resolution) on the
fitted vertices -> camera space -> a position in `photo.texture_linear` (full resolution). Colours are
sampled trilinearly from a Gaussian pyramid (mip-mapping): the level follows the texel's footprint in the
photo, from the UV -> pixel Jacobian of its triangle, so a large face is prefiltered instead of aliased
and a small one is sampled bilinearly at full resolution instead of blockily.
"""
from __future__ import annotations

import numpy as np
import torch

from inference_core.facemodel import FaceModel
from inference_core.facemodel.geometry import vertex_normals
from inference_core.render.camera import project
from inference_core.texture.layout import TexelLayout, texel_layout
from inference_core.texture.sampling import gaussian_pyramid, sample_trilinear
from inference_core.texture.regions import feature_exclusion
from inference_core.texture.visibility import outlier_map, texel_visibility
from inference_core.values import Camera, FaceFit, Photo, UVTexture

def unwrap(photo: Photo, fit: FaceFit, model: FaceModel, resolution: int = 1024) -> UVTexture:
    """The photo resampled into tiles (1001, 1002) at `resolution`, with per-texel visibility.

    Off-mesh texels (and texels whose point falls outside the photo) have colour 0; see UVTexture.
    """
    layout = texel_layout(model, resolution)
    points, normals = texel_surface(fit.vertices_cm, model, layout, fit.camera)
    texture_camera = fit.camera.scaled(photo.texture_linear.shape[1] / fit.camera.image_size[0])
    pixels = project(torch.from_numpy(points), texture_camera.fx, texture_camera.fy,
                     texture_camera.cx, texture_camera.cy).numpy()
    footprint = texel_footprint(fit.vertices_cm, model, layout, texture_camera)
    colour = sample_trilinear(gaussian_pyramid(photo.texture_linear), pixels, footprint)
    excluded = layout.gather(feature_exclusion(model, resolution))
    inliers = outlier_map(fit.inlier_weight, fit.face_mask)
    visibility = texel_visibility(points, normals, fit.vertices_cm, model, fit.camera, inliers, excluded)
    colour[visibility <= 0] = 0.0
    return UVTexture(
        colour=layout.scatter(colour.astype(np.float32)),
        visibility=layout.scatter(visibility),
        normals_camera=layout.scatter(normals.astype(np.float32)),
        coverage=layout.coverage.copy(),
        tiles=layout.tiles,
    )


def texel_surface(vertices_cm: np.ndarray, model: FaceModel, layout: TexelLayout,
                  camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) camera-space points (cm) and (N, 3) unit camera-space normals of the covered texels (float32)."""
    verts = np.asarray(vertices_cm, np.float32)
    vertex_n = vertex_normals(torch.from_numpy(verts), torch.from_numpy(model.triangles)).numpy()
    rotation = camera.rotation.astype(np.float32)
    points = np.einsum("nkc,nk->nc", (verts @ rotation.T)[layout.corners], layout.bary)
    points += camera.translation_cm.astype(np.float32)
    normals = np.einsum("nkc,nk->nc", (vertex_n @ rotation.T)[layout.corners], layout.bary)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return points, normals


def texel_footprint(vertices_cm: np.ndarray, model: FaceModel, layout: TexelLayout, camera: Camera) -> np.ndarray:
    """(N,) photo pixels spanned by one texel step: the longer column of each triangle's UV -> pixel Jacobian.

    Within a (small) triangle the map from texel coordinates to photo pixels is close to affine, with
    Jacobian J = [s1 - s0, s2 - s0] [t1 - t0, t2 - t0]^-1 (s: corner pixels, t: corner texels).
    """
    used, inverse = np.unique(layout.triangle, return_inverse=True)
    corners = model.triangles[used]
    verts = torch.from_numpy(np.asarray(vertices_cm, np.float64)[corners].reshape(-1, 3))
    points = verts @ torch.from_numpy(camera.rotation).T + torch.from_numpy(camera.translation_cm)
    screen = project(points, camera.fx, camera.fy, camera.cx, camera.cy).numpy().reshape(-1, 3, 2)
    texels = model.uvs[model.triangle_uvs[used]].astype(np.float64) * layout.resolution  # (n, 3, 2)
    screen_edges = np.stack([screen[:, 1] - screen[:, 0], screen[:, 2] - screen[:, 0]], axis=2)  # (n, 2, 2)
    texel_edges = np.stack([texels[:, 1] - texels[:, 0], texels[:, 2] - texels[:, 0]], axis=2)
    determinant = np.linalg.det(texel_edges)
    safe = np.abs(determinant) > 1e-9
    jacobian = np.zeros_like(screen_edges)
    jacobian[safe] = screen_edges[safe] @ np.linalg.inv(texel_edges[safe])
    footprint = np.linalg.norm(jacobian, axis=1).max(1)  # the longer of the per-axis steps, pixels
    footprint[~safe] = 1.0
    return footprint[inverse]
