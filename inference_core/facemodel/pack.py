"""Packing ICT-FaceKit's FaceXModel OBJ files into the one .npz the model loader reads.

Layout (../shared/assets/ict_facekit/NOTES.md): the neutral head, identity and expression deltas (each
OBJ minus the neutral, differences taken in float64 and stored as float32), names, and the neutral mesh's
polygons and UVs (quads, triangles padded with -1, 0-based). `content_sha256` hashes the arrays themselves
(names, dtypes, shapes, bytes), so a packed file can be checked whatever zip metadata it was written with.
"""
from __future__ import annotations

import hashlib
import re
from typing import Callable, Sequence

import numpy as np

NEUTRAL_OBJ = "generic_neutral_mesh.obj"
IDENTITY_NAMES: tuple[str, ...] = tuple(f"identity{i:03d}" for i in range(100))
EXPRESSION_NAMES: tuple[str, ...] = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R",
    "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R", "eyeBlink_L", "eyeBlink_R",
    "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R",
    "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R", "jawForward",
    "jawLeft", "jawOpen", "jawRight", "mouthClose", "mouthDimple_L", "mouthDimple_R", "mouthFrown_L",
    "mouthFrown_R", "mouthFunnel", "mouthLeft", "mouthLowerDown_L", "mouthLowerDown_R", "mouthPress_L",
    "mouthPress_R", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R", "mouthStretch_L", "mouthStretch_R", "mouthUpperUp_L",
    "mouthUpperUp_R", "noseSneer_L", "noseSneer_R", "PupilDilate_L", "PupilDilate_R", "cheekRaiser_L",
    "cheekRaiser_R",
)
"""The 53 ARKit-named shapes in the order of the repository's vertex_indices.json, then the 4 extra ones."""

ReadFile = Callable[[str], bytes]
"""Returns the bytes of a FaceXModel file given its name (e.g. "identity000.obj")."""

_VERTEX_LINE = re.compile(rb"^v[ \t]+(.*)$", re.MULTILINE)
_UV_LINE = re.compile(rb"^vt[ \t]+(.*)$", re.MULTILINE)
_FACE_LINE = re.compile(rb"^f[ \t]+(.*)$", re.MULTILINE)


class ObjFormatError(ValueError):
    """An OBJ file that is not one of FaceXModel's meshes."""


def _numbers(lines: list[bytes], columns: int) -> np.ndarray:
    """(N, columns) float64 from whitespace-separated numeric OBJ lines (extra columns are dropped)."""
    rows = [line.split()[:columns] for line in lines]
    if any(len(row) != columns for row in rows):
        raise ObjFormatError(f"an OBJ line has fewer than {columns} numbers")
    return np.array(rows, dtype=np.float64).reshape(-1, columns)


def obj_vertices(data: bytes) -> np.ndarray:
    """(V, 3) float64 vertex positions of an OBJ file's `v` lines."""
    return _numbers(_VERTEX_LINE.findall(data), 3)


def obj_topology(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UVs (U, 2) float32 and polygons, polygon UVs (P, 4) int32 0-based, triangles padded with -1."""
    uvs = _numbers(_UV_LINE.findall(data), 2).astype(np.float32)
    faces = [line.split() for line in _FACE_LINE.findall(data)]
    if any(not 3 <= len(corners) <= 4 for corners in faces):
        raise ObjFormatError("FaceXModel meshes have only triangles and quads")
    padded = [corners + [b"0/0"] * (4 - len(corners)) for corners in faces]
    pairs = np.array([[corner.split(b"/")[:2] for corner in corners] for corners in padded], dtype=np.int64)
    polygons, polygon_uvs = pairs[:, :, 0] - 1, pairs[:, :, 1] - 1  # 1-based; the padding becomes -1
    return uvs, polygons.astype(np.int32), polygon_uvs.astype(np.int32)


def pack_face_model(read: ReadFile, identity_names: Sequence[str] = IDENTITY_NAMES,
                    expression_names: Sequence[str] = EXPRESSION_NAMES) -> dict[str, np.ndarray]:
    """The arrays of the packed model (NOTES.md layout) from FaceXModel's OBJ files."""
    neutral_obj = read(NEUTRAL_OBJ)
    neutral = obj_vertices(neutral_obj)
    uvs, polygons, polygon_uvs = obj_topology(neutral_obj)

    def deltas(names: Sequence[str]) -> np.ndarray:
        out = np.empty((len(names), *neutral.shape), np.float32)
        for row, name in enumerate(names):  # one OBJ file at a time keeps memory at one mesh
            vertices = obj_vertices(read(f"{name}.obj"))
            if vertices.shape != neutral.shape:
                raise ObjFormatError(f"{name}.obj has {len(vertices)} vertices, the neutral mesh {len(neutral)}")
            out[row] = vertices - neutral
        return out

    return {
        "neutral_vertices": neutral.astype(np.float32),
        "face_vertex_indices_quadpad": polygons,
        "face_uv_indices_quadpad": polygon_uvs,
        "uv_coords": uvs,
        "identity_names": np.array(identity_names),
        "identity_deltas": deltas(identity_names),
        "expression_names": np.array(expression_names),
        "expression_deltas": deltas(expression_names),
    }


def content_sha256(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the arrays' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
