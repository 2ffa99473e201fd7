"""Which parts of the ICT head are exported and with which material (shared by head.obj and head.glb).

Exported: face and head/neck with the mouth and eye sockets (skin, UDIM tiles 1001/1002), eyeballs
(`eyes`), gums and tongue (`gums`), teeth (`teeth`). Dropped: the lacrimal fluid, eye blend and eye
occlusion shells and the eyelash cards. They only look right with transparent, alpha-textured shaders
that this project does not make, and opaque they would cover the eyes. They are the last vertices of the
model (ids >= FIRST_DROPPED_VERTEX), so every exported vertex keeps its ICT id: vertex i of head.obj is
vertex i of the model (landmark ids, region masks and morph targets apply unchanged).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference_core.facemodel import POLYGON_RANGES, VERTEX_RANGES, FaceModel

FIRST_DROPPED_VERTEX = VERTEX_RANGES["lacrimal_left"][0]
"""Vertices from here on (lacrimal, eye blend, eye occlusion, eyelashes) are not exported."""
DROPPED_PARTS = ("lacrimal_left", "lacrimal_right", "eye_blend_left", "eye_blend_right", "eye_occlusion_left",
                 "eye_occlusion_right", "eyelashes_left", "eyelashes_right")
MATERIAL_PARTS: dict[str, tuple[str, ...]] = {
    "skin": ("face", "head_neck", "mouth_socket", "eye_socket_left", "eye_socket_right"),
    "eyes": ("eyeball_left", "eyeball_right"),
    "teeth": ("teeth",),
    "gums": ("gums_tongue",),
}
"""Export materials and the mesh parts they cover (NOTES.md part names)."""
MATERIAL_COLOURS_LINEAR: dict[str, tuple[float, float, float]] = {
    "skin": (0.5, 0.5, 0.5),  # shown only when the albedo textures are missing
    "eyes": (0.8, 0.8, 0.78),
    "teeth": (0.75, 0.72, 0.62),
    "gums": (0.45, 0.12, 0.12),
}
"""Base colours (linear RGB) of the untextured materials."""


@dataclass(frozen=True)
class ExportMesh:
    """The exported polygons grouped by material; vertex ids and UV ids are the model's."""

    n_vertices: int  # vertices written (ids 0 .. n_vertices-1)
    polygons: dict[str, np.ndarray]  # material -> (P, 4) int64 vertex ids, -1 padded triangles
    polygon_uvs: dict[str, np.ndarray]  # material -> (P, 4) int64 UV ids, same padding


def _polygon_ids(parts: tuple[str, ...]) -> np.ndarray:
    return np.concatenate([np.arange(POLYGON_RANGES[p][0], POLYGON_RANGES[p][1] + 1) for p in parts])


def export_mesh(model: FaceModel) -> ExportMesh:
    """The exported polygons of `model`, grouped by material."""
    polygons, polygon_uvs = {}, {}
    for material, parts in MATERIAL_PARTS.items():
        ids = _polygon_ids(parts)
        polygons[material] = model.polygons[ids]
        polygon_uvs[material] = model.polygon_uvs[ids]
        assert polygons[material].max() < FIRST_DROPPED_VERTEX, "an exported polygon uses a dropped vertex"
    return ExportMesh(FIRST_DROPPED_VERTEX, polygons, polygon_uvs)


def triangle_corners(polygons: np.ndarray) -> np.ndarray:
    """(F, 3) int64 indices into the flattened (P*4,) corners of -1-padded quads (P, 4).

    Quads are split along their 0-2 diagonal, as the model's own triangulation does.
    """
    rows = np.arange(len(polygons)) * 4
    first = rows[:, None] + np.array([0, 1, 2])
    second = rows[polygons[:, 3] >= 0, None] + np.array([0, 2, 3])
    return np.concatenate([first, second])
