"""How far each texel's photo colour can be trusted: occlusion, facing, grazing angle, outliers, features.

All functions work on the N covered texels of a `TexelLayout` (flattened), given where their surface
points lie in camera space and on the photo. The product of the factors is `UVTexture.visibility`.
"""
from __future__ import annotations

import numpy as np
import torch

from inference_core.facemodel import FaceModel
from inference_core.render.camera import project
from inference_core.render.rasterize import rasterize
from inference_core.texture.sampling import bilinear, bilinear_taps
from inference_core.values import Camera

OCCLUDER_PARTS = ("face", "head_neck", "eye_socket_left", "eye_socket_right", "eyeball_left", "eyeball_right")
"""Parts drawn into the z-buffer: the opaque surfaces that can hide skin (not lashes or eye shells)."""

DEPTH_TOLERANCE_CM = 0.25
"""A texel counts as unoccluded when it lies at most this far behind the z-buffer (plus the slope term)."""
DEPTH_SLOPE_PIXELS = 1.5
"""Extra tolerance in pixels of depth change along the surface, for texels seen obliquely."""
MAX_SLOPE = 3.0
"""tan(view angle) is clamped here for the slope term; steeper texels fade out by `grazing_weight` anyway."""

INLIER_WEIGHT_RAMP = (0.05, 0.25)
"""Robust-fit weights (Geman-McClure: 0.25 at a residual of one scale, 0.04 at two) below the first value
mark an outlier, above the second an inlier; smoothstep between. Ordinary residuals keep full trust."""
MIN_INLIER_FRACTION = 0.3
"""A fit whose robust loss rejected more of the face than 1 - this found a wrong model, not outliers:
its inlier map is then ignored."""

GRAZING_COS = (0.10, 0.45)
"""n.v where visibility rises from 0 (about 84 degrees) to 1 (about 63 degrees), smoothstep between."""


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 below edge0, 1 above edge1, a C1 ramp between."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def view_cosine(points_camera: np.ndarray, normals_camera: np.ndarray) -> np.ndarray:
    """(N,) n.v: cosine between the outward normal and the direction from the point to the camera."""
    to_camera = -points_camera / np.linalg.norm(points_camera, axis=1, keepdims=True)
    return (normals_camera * to_camera).sum(1)


def grazing_weight(cosine: np.ndarray) -> np.ndarray:
    """(N,) 0 for surfaces facing away or seen edge-on, rising smoothly to 1 for surfaces facing the camera."""
    return smoothstep(*GRAZING_COS, cosine)


def depth_buffer(vertices_cm: np.ndarray, model: FaceModel, camera: Camera) -> np.ndarray:
    """(H, W) camera z (cm) of the nearest opaque head surface per pixel of `camera`, +inf elsewhere."""
    verts = torch.from_numpy(np.asarray(vertices_cm, np.float64))
    points = verts @ torch.from_numpy(camera.rotation).T + torch.from_numpy(camera.translation_cm)
    screen = torch.cat([project(points, camera.fx, camera.fy, camera.cx, camera.cy), points[:, 2:]], 1)
    triangles = torch.from_numpy(model.triangles[model.part_triangles(*OCCLUDER_PARTS)])
    return rasterize(screen, triangles, camera.image_size).depth.numpy()


def unoccluded_fraction(points_camera: np.ndarray, cosine: np.ndarray, camera: Camera,
                        depth: np.ndarray) -> np.ndarray:
    """(N,) share of each texel's 4 nearest pixels where its point is not behind the z-buffer.

    The bilinear share makes occlusion boundaries ramp over a pixel instead of stepping. Points outside
    the image get 0 (their taps carry no weight).
    """
    z = points_camera[:, 2]
    pixels = project(torch.from_numpy(points_camera), camera.fx, camera.fy, camera.cx, camera.cy).numpy()
    xs, ys, weights = bilinear_taps(pixels, camera.image_size)
    tangent = np.sqrt(np.clip(1.0 - cosine ** 2, 0.0, 1.0)) / np.clip(cosine, 1.0 / MAX_SLOPE, 1.0)
    tolerance = DEPTH_TOLERANCE_CM + DEPTH_SLOPE_PIXELS * (z / camera.fx) * tangent
    in_front = z[:, None] <= depth[ys, xs] + tolerance[:, None]
    return (weights * in_front).sum(1).astype(np.float32)


def sample_map(image: np.ndarray, points_camera: np.ndarray, camera: Camera) -> np.ndarray:
    """(N,) bilinear samples of a (H, W) map of the photo (e.g. inlier weights) where the points project."""
    pixels = project(torch.from_numpy(points_camera), camera.fx, camera.fy, camera.cx, camera.cy).numpy()
    return bilinear(np.asarray(image, np.float32)[..., None], pixels)[:, 0]


def outlier_map(inlier_weight: np.ndarray, face_mask: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, 1]: 0 where the fit's robust loss saw an outlier, 1 where it saw an inlier.

    The fit's weights are turned into that decision by INLIER_WEIGHT_RAMP. Outside the face mask the
    robust loss saw nothing, so nothing there is known to be an outlier.
    """
    face_mask = np.asarray(face_mask, bool)
    inlier = smoothstep(*INLIER_WEIGHT_RAMP, np.asarray(inlier_weight, np.float32)).astype(np.float32)
    if not face_mask.any() or inlier[face_mask].mean() < MIN_INLIER_FRACTION:
        return np.ones(inlier.shape, np.float32)
    return np.where(face_mask, inlier, np.float32(1.0))


def texel_visibility(points_camera: np.ndarray, normals_camera: np.ndarray, vertices_cm: np.ndarray,
                     model: FaceModel, camera: Camera, inliers: np.ndarray,
                     feature_exclusion: np.ndarray) -> np.ndarray:
    """(N,) float32 in [0, 1]: the product of every reason to trust a texel's photo colour.

    points_camera, normals_camera: (N, 3) cm and unit, camera space; camera: processing pixels (the fit's);
    inliers: (H, W) from `outlier_map`; feature_exclusion: (N,) 1 on eyes, mouth interior, nostrils.
    """
    cosine = view_cosine(points_camera, normals_camera)
    visibility = (grazing_weight(cosine) * (1.0 - feature_exclusion)).astype(np.float32)
    facing = np.nonzero(visibility > 0)[0]  # the other factors only matter where this is not already 0
    points = points_camera[facing]
    depth = depth_buffer(vertices_cm, model, camera)
    visibility[facing] *= unoccluded_fraction(points, cosine[facing], camera, depth)
    visibility[facing] *= sample_map(inliers, points, camera)
    return visibility
