"""Landmark reprojection with a silhouette-aware jaw: the model's 68 points as a 2D detector sees them.

The inner landmarks (17-67) and the chin (8) are fixed vertices. The other jaw landmarks lie on the
face's outline, so for each the vertex is chosen anew at every step among its slice of candidates
(facemodel.contour): the candidate that projects furthest outward, perpendicular to the projected jaw.
"""
from __future__ import annotations

import numpy as np
import torch

from inference_core.facemodel import LANDMARK_VERTICES, FaceModel
from inference_core.facemodel.contour import JAW_LANDMARKS, jaw_contour_candidates


class LandmarkTerm:
    """Projects the model's landmarks for a pose, with the jaw on the silhouette, and scores them."""

    def __init__(self, model: FaceModel, target_px: np.ndarray, jaw_weight: float, device: str):
        candidates, valid = jaw_contour_candidates(model)
        self.n_candidates = candidates.shape[1]
        # Vertices this term needs, in the order: 68 frontal landmark vertices, then the jaw candidates.
        self.vertex_ids = np.concatenate([LANDMARK_VERTICES, candidates.reshape(-1)])
        self.valid = torch.tensor(valid, device=device)  # (16, K)
        self.target = torch.tensor(target_px, dtype=torch.float32, device=device)  # (68, 2)
        box = target_px.max(0) - target_px.min(0)
        self.face_size_px = float(np.sqrt(max(box[0] * box[1], 1.0)))
        weights = np.ones(68, dtype=np.float32)
        weights[JAW_LANDMARKS] = jaw_weight
        self.weights = torch.tensor(weights / weights.sum(), device=device)

    def project(self, points_px: torch.Tensor) -> torch.Tensor:
        """(68, 2) model landmarks with the jaw on the silhouette, from the projected vertex_ids (N, 2)."""
        frontal = points_px[:68]
        candidates = points_px[68:].reshape(len(JAW_LANDMARKS), self.n_candidates, 2)
        outward = jaw_outward_directions(frontal.detach())  # (16, 2)
        reach = (candidates.detach() * outward[:, None, :]).sum(-1)  # (16, K)
        reach = torch.where(self.valid, reach, torch.full_like(reach, -torch.inf))
        chosen = reach.argmax(dim=1)
        silhouette = candidates[torch.arange(len(JAW_LANDMARKS)), chosen]  # (16, 2)
        return frontal.index_copy(0, torch.as_tensor(JAW_LANDMARKS, device=frontal.device), silhouette)

    def loss(self, landmarks_px: torch.Tensor) -> torch.Tensor:
        """Weighted mean squared distance in percent of the face size (sqrt of the landmark box area)."""
        distance2 = ((landmarks_px - self.target) / (0.01 * self.face_size_px)).pow(2).sum(-1)
        return (self.weights * distance2).sum()

    def nme(self, landmarks_px: torch.Tensor) -> float:
        """Mean landmark distance over the face size (the usual normalised mean error, as a fraction)."""
        return float((landmarks_px - self.target).norm(dim=-1).mean() / self.face_size_px)


def jaw_outward_directions(landmarks_px: torch.Tensor) -> torch.Tensor:
    """(16, 2) unit image directions pointing out of the face at the pose-dependent jaw landmarks.

    The jaw polyline runs 0 -> 16 from the subject's right to left; with y down, turning its tangent by
    +90 degrees, (tx, ty) -> (-ty, tx), points away from the face for any view from the front half.
    """
    jaw = landmarks_px[:17]
    tangents = torch.cat([jaw[1:2] - jaw[0:1], jaw[2:] - jaw[:-2], jaw[16:17] - jaw[15:16]])
    normals = torch.stack([-tangents[:, 1], tangents[:, 0]], dim=-1)
    normals = torch.nn.functional.normalize(normals, dim=-1, eps=1e-9)
    return normals[torch.as_tensor(JAW_LANDMARKS, device=landmarks_px.device)]
