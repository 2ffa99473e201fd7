"""Albedo regions of the head: soft per-vertex weights for a low-dimensional (per-region colour) albedo.

Skin colour changes little over a face except at the lips and the brows, so a colour per region
(skin, lips, brows) is a good global albedo for fitting lighting: the regions are outlined by the
landmark vertices on the frontal mean head and softened over the mesh so that colours blend smoothly.
"""
from __future__ import annotations

import cv2
import numpy as np
import scipy.sparse

from inference_core.facemodel.model import LANDMARK_VERTICES, FaceModel

ALBEDO_REGIONS = ("skin", "lips", "brows")
"""Region order of the rows of `FaceFit.albedo_params`."""
GRID_CM = 0.05
"""Cell size of the frontal grid on which the region outlines are drawn."""
FRONT_Z_CM = 4.0
"""Only vertices in front of this depth (the face, not the ears or the back of the head) get lips/brows."""
BROW_THICKNESS_CM = 0.9
SMOOTHING_STEPS = 3
"""Rounds of averaging over mesh neighbours that soften the region borders (~1 edge length each)."""


def _frontal_mask(model: FaceModel, draw) -> np.ndarray:
    """(V,) bool: vertices whose frontal (x, y) position falls on what `draw(image, to_grid)` paints."""
    xy = model.neutral_cm[:, :2].astype(np.float64)
    low = xy.min(0)
    size = np.ceil((xy.max(0) - low) / GRID_CM).astype(int) + 1
    canvas = np.zeros((size[1], size[0]), np.uint8)

    def to_grid(points_cm: np.ndarray) -> np.ndarray:
        return np.round((points_cm - low) / GRID_CM).astype(np.int32)

    draw(canvas, to_grid)
    cells = to_grid(xy)
    return (canvas[cells[:, 1], cells[:, 0]] > 0) & (model.neutral_cm[:, 2] > FRONT_Z_CM)


def _smooth(weights: np.ndarray, model: FaceModel, steps: int) -> np.ndarray:
    """Average (V, k) weights over each vertex and its mesh neighbours, `steps` times."""
    tris = model.triangles
    rows = np.concatenate([tris[:, 0], tris[:, 1], tris[:, 2], np.arange(model.n_vertices)])
    cols = np.concatenate([tris[:, 1], tris[:, 2], tris[:, 0], np.arange(model.n_vertices)])
    adjacency = scipy.sparse.coo_matrix((np.ones(len(rows)), (rows, cols)),
                                        shape=(model.n_vertices,) * 2).tocsr()
    adjacency = ((adjacency + adjacency.T) > 0).astype(np.float64)
    averaging = scipy.sparse.diags(1.0 / np.asarray(adjacency.sum(1)).ravel()) @ adjacency
    for _ in range(steps):
        weights = averaging @ weights
    return weights


def albedo_regions(model: FaceModel) -> np.ndarray:
    """(V, 3) float32 soft region weights (rows sum to 1) in the order of ALBEDO_REGIONS."""
    landmarks_xy = model.neutral_cm[LANDMARK_VERTICES, :2].astype(np.float64)

    def draw_lips(canvas: np.ndarray, to_grid) -> None:
        cv2.fillPoly(canvas, [to_grid(landmarks_xy[48:60])], 1)

    def draw_brows(canvas: np.ndarray, to_grid) -> None:
        thickness = max(1, int(round(BROW_THICKNESS_CM / GRID_CM)))
        cv2.polylines(canvas, [to_grid(landmarks_xy[17:22]), to_grid(landmarks_xy[22:27])], False, 1, thickness)

    lips = _frontal_mask(model, draw_lips)
    brows = _frontal_mask(model, draw_brows) & ~lips
    hard = np.stack([~(lips | brows), lips, brows], axis=1).astype(np.float64)
    soft = _smooth(hard, model, SMOOTHING_STEPS)
    return (soft / soft.sum(1, keepdims=True)).astype(np.float32)
