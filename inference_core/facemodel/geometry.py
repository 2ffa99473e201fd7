"""Geometry on the head mesh: vertex normals (differentiable) and the left/right mirror map."""
from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from inference_core.facemodel.model import FaceModel

MIRROR_TOLERANCE_CM = 0.01
"""Largest distance between a vertex's reflection and its mirror vertex for the map to be trusted."""


def vertex_normals(verts: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """(..., V, 3) unit normals: area-weighted sums of the adjacent triangle normals (differentiable).

    Triangles are counter-clockwise seen from outside, so normals point out of the head.
    """
    v0, v1, v2 = (verts[..., triangles[:, k], :] for k in range(3))
    face_normals = torch.cross(v1 - v0, v2 - v0, dim=-1)  # length = 2 x area
    normals = torch.zeros_like(verts)
    for k in range(3):
        normals = normals.index_add(-2, triangles[:, k], face_normals)
    return torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)


def mirror_map(model: FaceModel) -> np.ndarray:
    """(V,) int64: the vertex at the mirror position (x -> -x) of each vertex, -1 where there is none.

    The ICT neutral head is symmetric about the x = 0 plane to 0.01 cm; vertices on the plane map to
    themselves. Where the mesh has coincident duplicate vertices (368 of them, e.g. along
    part borders) the map is many-to-one; elsewhere it is an involution.
    """
    reflected = model.neutral_cm * np.array([-1.0, 1.0, 1.0], dtype=np.float32)
    distance, index = cKDTree(model.neutral_cm).query(reflected)
    index[distance > MIRROR_TOLERANCE_CM] = -1
    return index.astype(np.int64)
