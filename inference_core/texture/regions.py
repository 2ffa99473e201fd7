"""Facial regions drawn in UV from the landmark vertices, with smooth borders.

Two products, both (T, R, R) maps over the skin tiles, cached per model and resolution:
- `region_weights`: soft partition of the skin into REGIONS (skin, lips, brows, eye area), each texel's
  weights summing to 1; the prior albedo gives each region one colour.
- `feature_exclusion`: how much a texel belongs to an eye opening, the mouth interior or a nostril,
  where the photo shows eyeball, lashes, teeth or the dark inside of the nose rather than skin.
Sizes are in UV units (fractions of a tile), so the maps look the same at any resolution.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np
import torch

from inference_core.facemodel import LANDMARK_VERTICES, FaceModel
from inference_core.facemodel.geometry import vertex_normals
from inference_core.texture.visibility import smoothstep
from inference_core.texture.layout import _ByIdentity, texel_layout, tile_vertex_uvs, uv_to_texel

REGIONS = ("skin", "lips", "brows", "eye_area")
"""Region names in the order of `region_weights`' first axis."""

FACE_TILE = 0
"""Index of tile 1001 (the face, where every feature region lies) in the stacked tiles."""

# iBUG landmark index ranges (inclusive start, exclusive stop).
OUTER_LIP = range(48, 60)
BROW_RIGHT, BROW_LEFT = range(17, 22), range(22, 27)
EYE_RIGHT, EYE_LEFT = range(36, 42), range(42, 48)

# Region shapes, UV units: (grow the landmark outline by, then fade out over).
LIPS_SHAPE = (0.002, 0.008)
BROW_HALF_WIDTH, BROW_FADE = 0.014, 0.010
EYE_AREA_SHAPE = (0.022, 0.016)
EYE_OPENING_SHAPE = (0.010, 0.006)
MOUTH_INTERIOR_SHAPE = (0.008, 0.006)
NOSTRIL_SHAPE = (0.002, 0.006)

# Nostril interiors on the neutral head (cm, model space): near the subnasale, at nose-bottom height,
# on surfaces facing up into the nose (the skin under the nose faces down).
NOSTRIL_RADIUS_CM = 2.2
NOSTRIL_BELOW_CM, NOSTRIL_ABOVE_CM = 0.3, 1.2
NOSTRIL_MIN_UPWARD_NORMAL = 0.2


def _smooth_inside(inside: np.ndarray, grow: float, fade: float, resolution: int) -> np.ndarray:
    """(R, R) float32: 1 within `grow` of a binary shape, smoothstep down to 0 over `fade` (UV units)."""
    distance = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5) / resolution
    return (1.0 - smoothstep(grow, grow + fade, distance)).astype(np.float32)


def _landmark_texels(model: FaceModel, resolution: int, landmarks: range) -> np.ndarray:
    """(K, 2) texel coordinates (column, row) of iBUG landmarks on the face tile."""
    uvs = tile_vertex_uvs(model, 1001)[LANDMARK_VERTICES[list(landmarks)]]
    return uv_to_texel(uvs, 1001, resolution)


_SUBPIXEL_BITS = 4


def _polygon(texels: np.ndarray, resolution: int) -> np.ndarray:
    """(R, R) bool: the filled polygon through the texel points."""
    image = np.zeros((resolution, resolution), np.uint8)
    points = np.round(texels * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillPoly(image, [points], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return image.astype(bool)


def _polyline(texels: np.ndarray, resolution: int) -> np.ndarray:
    """(R, R) bool: the open polyline through the texel points, one texel wide."""
    image = np.zeros((resolution, resolution), np.uint8)
    points = np.round(texels * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    cv2.polylines(image, [points], False, 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return image.astype(bool)


def region_weights(model: FaceModel, resolution: int) -> np.ndarray:
    """(len(REGIONS), T, R, R) float32 soft region memberships summing to 1 per texel (cached)."""
    return _region_weights(_ByIdentity(model), int(resolution))


@functools.lru_cache(maxsize=4)
def _region_weights(key: _ByIdentity, resolution: int) -> np.ndarray:
    model, r = key.model, resolution
    lips = _smooth_inside(_polygon(_landmark_texels(model, r, OUTER_LIP), r), *LIPS_SHAPE, r)
    brow_lines = _polyline(_landmark_texels(model, r, BROW_RIGHT), r) | _polyline(_landmark_texels(model, r, BROW_LEFT), r)
    brows = _smooth_inside(brow_lines, BROW_HALF_WIDTH, BROW_FADE, r)
    eyes = _polygon(_landmark_texels(model, r, EYE_RIGHT), r) | _polygon(_landmark_texels(model, r, EYE_LEFT), r)
    eye_area = _smooth_inside(eyes, *EYE_AREA_SHAPE, r) * (1.0 - brows)
    features = np.stack([lips, brows, eye_area])
    total = features.sum(0)
    features /= np.maximum(total, 1.0)  # overlapping soft borders share the texel
    face_tile = np.concatenate([1.0 - features.sum(0, keepdims=True), features])
    weights = np.zeros((len(REGIONS), *texel_layout(model, r).shape), np.float32)
    weights[0] = 1.0  # the head and neck tile is all skin
    weights[:, FACE_TILE] = face_tile
    return weights


def feature_exclusion(model: FaceModel, resolution: int) -> np.ndarray:
    """(T, R, R) float32 in [0, 1]: 1 on eye openings, the mouth interior and nostrils (cached)."""
    return _feature_exclusion(_ByIdentity(model), int(resolution))


@functools.lru_cache(maxsize=4)
def _feature_exclusion(key: _ByIdentity, resolution: int) -> np.ndarray:
    model, r = key.model, resolution
    eyes = _polygon(_landmark_texels(model, r, EYE_RIGHT), r) | _polygon(_landmark_texels(model, r, EYE_LEFT), r)
    # The mouth opening is the hole of the face mesh inside the lips (the iBUG inner-lip vertices of the
    # ICT head sit on the lips, well outside the opening, so their polygon would drop the lips).
    lips = _polygon(_landmark_texels(model, r, OUTER_LIP), r)
    mouth = lips & _coverage_holes(texel_layout(model, r).coverage[FACE_TILE])
    excluded = np.maximum.reduce([
        _smooth_inside(eyes, *EYE_OPENING_SHAPE, r),
        _smooth_inside(mouth, *MOUTH_INTERIOR_SHAPE, r),
        _smooth_inside(_nostril_texels(model, r), *NOSTRIL_SHAPE, r),
    ])
    result = np.zeros(texel_layout(model, r).shape, np.float32)
    result[FACE_TILE] = excluded
    return result


def _coverage_holes(coverage: np.ndarray) -> np.ndarray:
    """(R, R) bool: uncovered texels enclosed by the mesh (not connected to the tile's uncovered border)."""
    uncovered = np.pad(~coverage, 1, constant_values=True).astype(np.uint8)
    _, labels = cv2.connectedComponents(uncovered, connectivity=4)
    return (uncovered.astype(bool) & (labels != labels[0, 0]))[1:-1, 1:-1]


def nostril_vertices(model: FaceModel) -> np.ndarray:
    """Vertex ids of the nostril interiors of the face part (found on the neutral head's geometry)."""
    points = model.neutral_cm
    normals = vertex_normals(torch.from_numpy(points), torch.from_numpy(model.triangles)).numpy()
    face = model.part_vertices("face")
    subnasale = points[LANDMARK_VERTICES[33]]
    near = np.linalg.norm(points[face, :2] - subnasale[:2], axis=1) < NOSTRIL_RADIUS_CM
    height = points[face, 1] - subnasale[1]
    at_nose_bottom = (height > -NOSTRIL_BELOW_CM) & (height < NOSTRIL_ABOVE_CM)
    facing_up = normals[face, 1] > NOSTRIL_MIN_UPWARD_NORMAL
    return face[near & at_nose_bottom & facing_up]


def _nostril_texels(model: FaceModel, resolution: int) -> np.ndarray:
    """(R, R) bool on the face tile: texels whose triangle has a nostril vertex as a corner."""
    layout = texel_layout(model, resolution)
    is_nostril = np.zeros(model.n_vertices, bool)
    is_nostril[nostril_vertices(model)] = True
    hit = is_nostril[model.triangles[layout.triangle]].any(1)
    return layout.scatter(hit, fill=False)[FACE_TILE]
