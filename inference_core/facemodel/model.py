"""The ICT-FaceKit light morphable head: loading, parts, triangles, UVs, landmark and jaw vertices.

Facts about the packed file are in ../shared/assets/ict_facekit/NOTES.md; the numbers below are copied
from it and checked against the arrays when the model loads.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference_core.assets import face_model_path
from inference_core.errors import ErrorCode, FaceAlbedoError

N_VERTICES = 26719

# Inclusive vertex / polygon ranges of the mesh parts (NOTES.md, "Parts of the mesh").
VERTEX_RANGES: dict[str, tuple[int, int]] = {
    "face": (0, 9408),
    "narrow_face": (0, 6705),
    "head_neck": (9409, 11247),
    "mouth_socket": (11248, 13293),
    "eye_socket_left": (13294, 13677),
    "eye_socket_right": (13678, 14061),
    "gums_tongue": (14062, 17038),
    "teeth": (17039, 21450),
    "eyeball_left": (21451, 23020),
    "eyeball_right": (23021, 24590),
    "lacrimal_left": (24591, 24794),
    "lacrimal_right": (24795, 24998),
    "eye_blend_left": (24999, 25022),
    "eye_blend_right": (25023, 25046),
    "eye_occlusion_left": (25047, 25198),
    "eye_occlusion_right": (25199, 25350),
    "eyelashes_left": (25351, 26034),
    "eyelashes_right": (26035, 26718),
}
POLYGON_RANGES: dict[str, tuple[int, int]] = {
    "face": (0, 9229),
    "narrow_face": (0, 6559),
    "head_neck": (9230, 11143),
    "mouth_socket": (11144, 13225),
    "eye_socket_left": (13226, 13629),
    "eye_socket_right": (13630, 14033),
    "gums_tongue": (14034, 17005),
    "teeth": (17006, 21495),
    "eyeball_left": (21496, 23093),
    "eyeball_right": (23094, 24691),
    "eyelashes": (25304, 26383),
}
# Polygons 24692-25303 are the lacrimal fluid, eye blend and eye occlusion shells (no skin, no export
# material of their own); they are kept in the mesh and given the eye material.
SKIN_PARTS = ("face", "head_neck")
"""Parts whose texture is the skin albedo (tiles 1001 and 1002)."""

LANDMARK_VERTICES = np.array(
    [1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088, 3443,
     268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140, 2075, 1147,
     4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732, 5708, 5695,
     2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216, 6207, 6470, 5517, 5966],
    dtype=np.int64,
)
"""Vertex ids of the 68 iBUG landmarks (0-based)."""

# Vertex chains along the jaw; the fitter picks, per landmark, the chain vertex on the silhouette.
JAW_CHAIN_RIGHT = np.array([1280, 1278, 1275, 1272, 1248, 12, 820, 1834, 1902, 243, 844, 781, 1673, 2199, 801,
                            1447, 800], dtype=np.int64)
"""Extended right jaw chain: candidates for landmarks 0-7 (the subject's right, image left)."""
JAW_CHAIN_LEFT = np.array([3041, 3661, 3042, 4390, 3880, 3022, 3085, 2484, 4102, 4036, 3061, 2253, 3466, 3490,
                           3493, 3496, 3498], dtype=np.int64)
"""Extended left jaw chain: candidates for landmarks 9-16."""


@dataclass(frozen=True)
class FaceModel:
    """The morphable head as arrays. Vertex positions are in centimetres, Y up, face towards +Z."""

    neutral_cm: np.ndarray  # (V, 3) float32
    identity_basis_cm: np.ndarray  # (100, V, 3) float32, coefficients ~N(0, 1)
    expression_basis_cm: np.ndarray  # (57, V, 3) float32, blendshape deltas, weights in [0, 1]
    expression_names: tuple[str, ...]  # ARKit names (+ PupilDilate, cheekRaiser), 57
    polygons: np.ndarray  # (P, 4) int64 vertex ids, triangles padded with -1
    polygon_uvs: np.ndarray  # (P, 4) int64 indices into `uvs`, same padding
    uvs: np.ndarray  # (U, 2) float32, UDIM layout: tile 1001 + floor(u), v in [0, 1] upwards
    triangles: np.ndarray  # (F, 3) int64, quads split along their 0-2 diagonal, polygon order kept
    triangle_uvs: np.ndarray  # (F, 3) int64 indices into `uvs`
    triangle_polygon: np.ndarray  # (F,) int64, the polygon each triangle came from

    @property
    def n_vertices(self) -> int:
        return int(self.neutral_cm.shape[0])

    def vertices(self, identity: np.ndarray | None = None, expression: np.ndarray | None = None) -> np.ndarray:
        """(V, 3) float32 head for the given coefficients (missing ones are zero)."""
        verts = self.neutral_cm.astype(np.float32, copy=True)
        if identity is not None and len(identity):
            k = len(identity)
            verts += np.tensordot(np.asarray(identity, np.float32), self.identity_basis_cm[:k], axes=1)
        if expression is not None and len(expression):
            verts += np.tensordot(np.asarray(expression, np.float32), self.expression_basis_cm, axes=1)
        return verts

    def part_vertices(self, part: str) -> np.ndarray:
        """Vertex ids of a part (see VERTEX_RANGES)."""
        lo, hi = VERTEX_RANGES[part]
        return np.arange(lo, hi + 1)

    def part_triangles(self, *parts: str) -> np.ndarray:
        """Triangle ids whose polygon lies in any of the given parts (see POLYGON_RANGES)."""
        keep = np.zeros(len(self.triangles), dtype=bool)
        for part in parts:
            lo, hi = POLYGON_RANGES[part]
            keep |= (self.triangle_polygon >= lo) & (self.triangle_polygon <= hi)
        return np.nonzero(keep)[0]

    def triangle_tiles(self) -> np.ndarray:
        """(F,) int64 UDIM tile number of each triangle, from its first corner's UV."""
        return 1001 + np.floor(self.uvs[self.triangle_uvs[:, 0], 0]).astype(np.int64)


def split_quads(polygons: np.ndarray, polygon_uvs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangulate padded quads: (0,1,2) and (0,2,3) per quad, one triangle per padded triangle."""
    is_quad = polygons[:, 3] >= 0
    first = polygons[:, [0, 1, 2]]
    second = polygons[is_quad][:, [0, 2, 3]]
    first_uv = polygon_uvs[:, [0, 1, 2]]
    second_uv = polygon_uvs[is_quad][:, [0, 2, 3]]
    source = np.concatenate([np.arange(len(polygons)), np.nonzero(is_quad)[0]])
    order = np.argsort(source, kind="stable")
    tris = np.concatenate([first, second])[order]
    tri_uvs = np.concatenate([first_uv, second_uv])[order]
    return tris.astype(np.int64), tri_uvs.astype(np.int64), source[order].astype(np.int64)


def _check(condition: bool, path: Path, what: str) -> None:
    if not condition:
        raise FaceAlbedoError(
            ErrorCode.ASSETS_CORRUPT,
            f"{path} is not the packed ICT-FaceKit light model ({what}); run `facealbedo assets fetch` again",
        )


def load_face_model_file(path: Path) -> FaceModel:
    """Load and check a packed model file (the .npz layout of NOTES.md)."""
    try:
        data = np.load(path)
        arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise FaceAlbedoError(ErrorCode.ASSETS_CORRUPT, f"cannot read {path}: {exc}; fetch it again") from exc
    required = {"neutral_vertices", "identity_deltas", "expression_deltas", "expression_names",
                "face_vertex_indices_quadpad", "face_uv_indices_quadpad", "uv_coords"}
    _check(required <= set(arrays), path, f"missing arrays {sorted(required - set(arrays))}")
    neutral = arrays["neutral_vertices"].astype(np.float32)
    _check(neutral.shape == (N_VERTICES, 3), path, f"neutral shape {neutral.shape}")
    polygons = arrays["face_vertex_indices_quadpad"].astype(np.int64)
    polygon_uvs = arrays["face_uv_indices_quadpad"].astype(np.int64)
    triangles, triangle_uvs, triangle_polygon = split_quads(polygons, polygon_uvs)
    return FaceModel(
        neutral_cm=neutral,
        identity_basis_cm=arrays["identity_deltas"].astype(np.float32),
        expression_basis_cm=arrays["expression_deltas"].astype(np.float32),
        expression_names=tuple(str(n) for n in arrays["expression_names"]),
        polygons=polygons,
        polygon_uvs=polygon_uvs,
        uvs=arrays["uv_coords"].astype(np.float32),
        triangles=triangles,
        triangle_uvs=triangle_uvs,
        triangle_polygon=triangle_polygon,
    )


@functools.lru_cache(maxsize=2)
def load_face_model(path: Path | None = None) -> FaceModel:
    """The morphable model, loaded once per process (from the assets folder unless `path` is given)."""
    return load_face_model_file(path or face_model_path())
