"""Jaw contour candidates: where the 2D jaw landmarks 0-7 and 9-16 may lie on the head for any pose.

A 2D detector puts the jaw landmarks on the visible outline of the face. On the side turned away from
the camera that outline slides forward over the cheek as the head turns; on the side turned towards it
the detector keeps to the front of the ear, about where the frontal outline is. So each jaw landmark gets
a *slice* of candidate skin vertices: those near the plane through its frontal landmark vertex that is
perpendicular to the jaw line there, from the cheek back to the frontal silhouette chain (JAW_CHAIN_*),
not beyond it (the ear and the back of the jaw). The fitter picks, per pose, the outermost candidate.
"""
from __future__ import annotations

import numpy as np

from inference_core.facemodel.model import (
    JAW_CHAIN_LEFT,
    JAW_CHAIN_RIGHT,
    LANDMARK_VERTICES,
    FaceModel,
)

JAW_LANDMARKS = np.array([*range(0, 8), *range(9, 17)], dtype=np.int64)
"""iBUG indices of the jaw landmarks whose model vertex depends on the pose (the chin, 8, does not)."""

SLICE_HALF_WIDTH_CM = 0.45
"""Vertices this close to a landmark's slicing plane are candidates (the mesh's edges are ~0.3-0.6 cm)."""
SLICE_RADIUS_CM = 5.5
"""Candidates lie within this distance of the frontal landmark vertex: the jaw, not the ear."""
CHIN_LANDMARKS = (5, 6, 7, 9, 10, 11)
CHIN_SLICE_RADIUS_CM = 2.5
"""Near the chin (CHIN_LANDMARKS) slices stay shorter, so they end before the neck below the chin."""
CHAIN_TOLERANCE_CM = 0.3
"""Candidates may lie this far behind the frontal silhouette chain (its vertices are ~1 cm apart)."""
SLICE_DROP_CM = 1.0
"""Candidates lie at most this far below their landmark vertex (the jaw's underside, not the neck)."""


def _jaw_tangents(model: FaceModel) -> np.ndarray:
    """(16, 3) unit tangents of the frontal jaw line at each pose-dependent jaw landmark (model space)."""
    jaw = model.neutral_cm[LANDMARK_VERTICES[:17]].astype(np.float64)
    previous = np.concatenate([jaw[:1], jaw[:-1]])
    following = np.concatenate([jaw[1:], jaw[-1:]])
    tangents = following - previous
    return (tangents / np.linalg.norm(tangents, axis=1, keepdims=True))[JAW_LANDMARKS]


def jaw_contour_candidates(model: FaceModel) -> tuple[np.ndarray, np.ndarray]:
    """Candidate vertices for the 16 pose-dependent jaw landmarks (rows in the order of JAW_LANDMARKS).

    Returns `candidates` (16, K) int64 vertex ids (short rows padded by repeating their last id) and
    `valid` (16, K) bool. Every row holds its frontal landmark vertex. Takes a few milliseconds.
    """
    neutral = model.neutral_cm.astype(np.float64)
    skin = np.concatenate([model.part_vertices("face"), model.part_vertices("head_neck")])
    # The frontal silhouette chains belong to every slice they cross, so the frontal outline is reachable.
    tangents = _jaw_tangents(model)
    slices: list[np.ndarray] = []
    for row, landmark in enumerate(JAW_LANDMARKS):
        origin = neutral[LANDMARK_VERTICES[landmark]]
        offset = neutral[skin] - origin
        near_plane = np.abs(offset @ tangents[row]) < SLICE_HALF_WIDTH_CM
        near_chin = landmark in CHIN_LANDMARKS
        radius = CHIN_SLICE_RADIUS_CM if near_chin else SLICE_RADIUS_CM
        near_origin = np.linalg.norm(offset, axis=1) < radius
        same_side = np.sign(neutral[skin, 0]) == np.sign(origin[0])
        on_jaw = (offset[:, 1] < 1.0) & (offset[:, 1] > -SLICE_DROP_CM)
        chain = JAW_CHAIN_RIGHT if landmark < 8 else JAW_CHAIN_LEFT
        chain_offset = neutral[chain] - origin
        chain_distance = np.abs(chain_offset @ tangents[row])
        chain_hits = chain[chain_distance < SLICE_HALF_WIDTH_CM]
        chain_depth = neutral[chain[np.argmin(chain_distance)], 2]  # where the slice crosses the chain
        # Near the chin the slice runs under the jaw, where the outline goes when the head tips back.
        in_front_of_chain = near_chin | (neutral[skin, 2] >= chain_depth - CHAIN_TOLERANCE_CM)
        chosen = skin[near_plane & near_origin & same_side & on_jaw & in_front_of_chain]
        slices.append(np.unique(np.concatenate([[LANDMARK_VERTICES[landmark]], chosen, chain_hits])))
    width = max(len(s) for s in slices)
    candidates = np.stack([np.pad(s, (0, width - len(s)), mode="edge") for s in slices])
    valid = np.stack([np.arange(width) < len(s) for s in slices])
    return candidates, valid

