"""Reading a result folder (DESIGN.md, "Result folder" and "File formats") into plain numpy values.

This module knows the files and nothing of bpy (as the glTF add-on's `io/` knows glTF); `importer.py`
turns these values into Blender data. Files read:

    head.obj            vertices (metres, Y up), UDIM UVs, polygons, `usemtl` groups
    blendshapes.npz     neutral_m (V, 3) and deltas_m (57, V, 3) float32 metres in head.obj's frame,
                        names (57,) ICT expression names, weights (57,) fitted expression (optional file)
    head.glb            otherwise: the same shapes from its morph targets (identity POSITION, sparse
                        targets, mesh.extras.targetNames, mesh.weights), mapped back to head.obj's vertices
    camera.json         the "blender" block: location, rotation_euler_xyz, lens_mm, sensor_width_mm, shifts
    manifest.json       the input photo, timings and residuals shown in the panel
    albedo.<UDIM>.png, environment.hdr, light_detail.<UDIM>.hdr (optional)   loaded by Blender itself
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HEAD_OBJ = "head.obj"
HEAD_GLB = "head.glb"
BLENDSHAPES = "blendshapes.npz"
CAMERA = "camera.json"
LIGHTING = "lighting.json"
MANIFEST = "manifest.json"
ENVIRONMENT = "environment.hdr"
ALBEDO_PATTERN = "albedo.{tile}.png"
LIGHT_DETAIL_PATTERN = "light_detail.{tile}.hdr"
REQUIRED_FILES = (HEAD_OBJ, CAMERA, ENVIRONMENT, ALBEDO_PATTERN.format(tile=1001))

Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=np.float32)
"""Blender's default OBJ axes (forward -Z, up Y): (x, y, z) -> (x, -z, y). camera.json assumes it."""


class ResultError(Exception):
    """A result folder that cannot be imported; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class ObjMesh:
    """A polygon mesh as flat arrays: polygon p uses loops loop_start[p] ... + loop_count[p] - 1."""

    vertices: np.ndarray  # (V, 3) float32, as in the file (metres, Y up)
    uvs: np.ndarray  # (U, 2) float32, UDIM layout
    loop_vertex: np.ndarray  # (L,) int32 vertex id of each polygon corner
    loop_uv: np.ndarray  # (L,) int32 uv id of each corner (-1 when the file has none)
    loop_count: np.ndarray  # (P,) int32 corners per polygon
    polygon_group: np.ndarray  # (P,) int32 index into `groups`
    groups: tuple[str, ...]  # `usemtl` names in order of first use ("" when none)

    @property
    def loop_start(self) -> np.ndarray:
        return (np.cumsum(self.loop_count) - self.loop_count).astype(np.int32)


@dataclass(frozen=True)
class Blendshapes:
    """The neutral identity head and the 57 ICT expression shapes, metres, head.obj's frame."""

    neutral: np.ndarray  # (V, 3) float32
    deltas: np.ndarray  # (57, V, 3) float32
    names: tuple[str, ...]  # ICT names (ARKit style with _L/_R)
    weights: np.ndarray  # (57,) float32 fitted expression (zeros when absent)


@dataclass(frozen=True)
class ResultFolder:
    """The parts of one result folder that the importer needs."""

    folder: Path
    stem: str
    camera: dict
    manifest: dict = field(default_factory=dict)
    lighting: dict = field(default_factory=dict)

    @property
    def environment(self) -> Path:
        return self.folder / ENVIRONMENT

    @property
    def albedo_tiles(self) -> list[Path]:
        return self.tiles(ALBEDO_PATTERN)

    def tiles(self, pattern: str) -> list[Path]:
        """The files of a UDIM pattern such as ALBEDO_PATTERN, in tile order."""
        return sorted(self.folder.glob(pattern.format(tile="[0-9][0-9][0-9][0-9]")))

    @property
    def photo(self) -> Path | None:
        """The input photo named by the manifest, when it still exists."""
        entry = self.manifest.get("input") or self.manifest.get("photo")
        if isinstance(entry, dict):
            entry = entry.get("path") or entry.get("photo")
        if not entry:
            return None
        path = Path(str(entry))
        if not path.is_absolute():
            path = (self.folder / path).resolve()
        return path if path.is_file() else None


def _read_json(path: Path, required: bool) -> dict:
    if not path.is_file():
        if required:
            raise ResultError(f"{path.name} is missing in {path.parent}: not a complete FaceAlbedo result")
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResultError(f"cannot read {path}: {exc}") from exc


def open_result(folder: Path | str) -> ResultFolder:
    """Check that `folder` holds a result and read its small JSON files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ResultError(f"{folder} is not a folder: choose a result folder made by FaceAlbedo")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ResultError(f"{folder} lacks {', '.join(missing)}: not a complete FaceAlbedo result")
    camera = _read_json(folder / CAMERA, required=True)
    if "blender" not in camera:
        raise ResultError(f"{folder / CAMERA} has no 'blender' block (format facealbedo.camera/1 expected)")
    return ResultFolder(folder=folder, stem=folder.name, camera=camera,
                        manifest=_read_json(folder / MANIFEST, required=False),
                        lighting=_read_json(folder / LIGHTING, required=False))


def _corner_indices(corners: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """OBJ corners 'v', 'v/vt', 'v//vn' or 'v/vt/vn' (1-based) -> 0-based vertex and uv ids (-1: none)."""
    fields = [c.split("/") for c in corners]
    width = max(len(f) for f in fields)
    padded = np.array([f + [""] * (width - len(f)) for f in fields], dtype=object)
    vertex = padded[:, 0].astype(np.int64)
    uv = np.where(padded[:, 1] == "", "0", padded[:, 1]).astype(np.int64) if width > 1 else np.zeros_like(vertex)
    return (vertex - 1).astype(np.int32), (uv - 1).astype(np.int32)


def read_obj(path: Path) -> ObjMesh:
    """Parse a Wavefront OBJ (v, vt, f, usemtl; one object) into flat arrays, keeping the vertex order.

    The order matters: blendshapes.npz addresses vertices by id. Negative (relative) indices are not
    supported; FaceAlbedo's exporter never writes them.
    """
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise ResultError(f"cannot read {path}: {exc}") from exc
    vertices = [line.split()[1:4] for line in lines if line.startswith("v ")]
    uvs = [line.split()[1:3] for line in lines if line.startswith("vt ")]
    groups: list[str] = []
    faces: list[list[str]] = []
    face_group: list[int] = []
    current = -1
    for line in lines:
        if line.startswith("f "):
            faces.append(line.split()[1:])
            face_group.append(current)
        elif line.startswith("usemtl"):
            name = line[6:].strip()
            if name not in groups:
                groups.append(name)
            current = groups.index(name)
    if not vertices or not faces:
        raise ResultError(f"{path} holds no mesh")
    if current == -1 or min(face_group) < 0:
        groups.insert(0, "")
        face_group = [g + 1 for g in face_group]
    loop_vertex, loop_uv = _corner_indices([corner for face in faces for corner in face])
    if loop_vertex.min() < 0:
        raise ResultError(f"{path} uses relative (negative) indices, which are not supported")
    return ObjMesh(
        vertices=np.asarray(vertices, dtype=np.float32),
        uvs=np.asarray(uvs, dtype=np.float32).reshape(-1, 2),
        loop_vertex=loop_vertex,
        loop_uv=loop_uv,
        loop_count=np.array([len(face) for face in faces], dtype=np.int32),
        polygon_group=np.asarray(face_group, dtype=np.int32),
        groups=tuple(groups),
    )


def read_blendshapes(path: Path, n_vertices: int) -> Blendshapes | None:
    """The expression shapes, or None when the file is absent; checked against the mesh's vertex count."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            neutral = data["neutral_m"].astype(np.float32)
            deltas = data["deltas_m"].astype(np.float32)
            names = tuple(str(n) for n in data["names"])
            weights = data["weights"].astype(np.float32) if "weights" in data.files else np.zeros(len(names))
    except (OSError, ValueError, KeyError) as exc:
        raise ResultError(f"cannot read {path} (needs neutral_m, deltas_m, names): {exc}") from exc
    if neutral.shape != (n_vertices, 3) or deltas.shape != (len(names), n_vertices, 3):
        raise ResultError(f"{path} does not match head.obj: neutral {neutral.shape}, deltas {deltas.shape}, "
                          f"{n_vertices} vertices")
    return Blendshapes(neutral=neutral, deltas=deltas, names=names, weights=weights.astype(np.float32))


GLB_COMPONENTS = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}
GLB_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
FIT_TOLERANCE_M = 1e-4
"""Identity + weighted expression shapes must give head.obj's vertices to this (metres) to be trusted."""


def _glb_chunks(path: Path) -> tuple[dict, bytes]:
    """The JSON document and the binary buffer of a GLB file."""
    data = path.read_bytes()
    if data[:4] != b"glTF":
        raise ValueError("not a GLB file")
    json_length = int.from_bytes(data[12:16], "little")
    document = json.loads(data[20:20 + json_length])
    start = 20 + json_length
    binary_length = int.from_bytes(data[start:start + 4], "little")
    return document, data[start + 8:start + 8 + binary_length]


def _glb_view(document: dict, blob: bytes, view: int, offset: int, dtype: type, count: int) -> np.ndarray:
    buffer_view = document["bufferViews"][view]
    begin = buffer_view.get("byteOffset", 0) + offset
    return np.frombuffer(blob, dtype=dtype, count=count, offset=begin)


def _glb_accessor(document: dict, blob: bytes, index: int) -> np.ndarray:
    """An accessor as a (count, width) array (tightly packed views, sparse accessors resolved)."""
    accessor = document["accessors"][index]
    dtype, width, count = GLB_COMPONENTS[accessor["componentType"]], GLB_WIDTH[accessor["type"]], accessor["count"]
    if "bufferView" in accessor:
        values = _glb_view(document, blob, accessor["bufferView"], accessor.get("byteOffset", 0), dtype,
                           count * width).reshape(count, width).copy()
    else:
        values = np.zeros((count, width), dtype)
    sparse = accessor.get("sparse")
    if sparse:
        rows = _glb_view(document, blob, sparse["indices"]["bufferView"], sparse["indices"].get("byteOffset", 0),
                         GLB_COMPONENTS[sparse["indices"]["componentType"]], sparse["count"])
        values[rows.astype(np.int64)] = _glb_view(document, blob, sparse["values"]["bufferView"],
                                                  sparse["values"].get("byteOffset", 0), dtype,
                                                  sparse["count"] * width).reshape(-1, width)
    return values


def _primitive_vertex_ids(obj_mesh: ObjMesh, material: str) -> np.ndarray:
    """head.obj vertex id of each vertex of the GLB primitive named `material` ('skin_1001', 'eyes', ...).

    The exporter makes one GLB vertex per distinct (vertex id, uv id) pair of the material's polygons
    (skin split by the UDIM tile of each polygon's first corner), in sorted order: recompute that order.
    """
    group, _, tile = material.partition("_")
    if group not in obj_mesh.groups:
        return np.zeros(0, np.int64)
    polygon_ids = np.nonzero(obj_mesh.polygon_group == obj_mesh.groups.index(group))[0]
    starts = obj_mesh.loop_start
    if tile:
        first_uv = obj_mesh.uvs[obj_mesh.loop_uv[starts[polygon_ids]], 0]
        polygon_ids = polygon_ids[1001 + np.floor(first_uv).astype(np.int64) == int(tile)]
    loops = np.concatenate([np.arange(starts[p], starts[p] + obj_mesh.loop_count[p]) for p in polygon_ids])
    pairs = np.stack([obj_mesh.loop_vertex[loops], obj_mesh.loop_uv[loops]], axis=-1)
    return np.unique(pairs, axis=0)[:, 0].astype(np.int64)


def read_glb_blendshapes(path: Path, obj_mesh: ObjMesh) -> Blendshapes | None:
    """The expression shapes from head.glb's morph targets, on head.obj's vertices.

    Returns None when the file is absent, has no targets, or its shapes do not reproduce head.obj
    (identity + weighted deltas within FIT_TOLERANCE_M): then the head is imported without shape keys.
    """
    if not path.is_file():
        return None
    try:
        document, blob = _glb_chunks(path)
        mesh = document["meshes"][0]
        names = tuple(str(n) for n in mesh.get("extras", {}).get("targetNames", []))
        weights = np.asarray(mesh.get("weights", [0.0] * len(names)), np.float32)
        n_vertices = len(obj_mesh.vertices)
        neutral = obj_mesh.vertices.copy()
        deltas = np.zeros((len(names), n_vertices, 3), np.float32)
        for primitive in mesh["primitives"]:
            material = document["materials"][primitive["material"]]["name"]
            ids = _primitive_vertex_ids(obj_mesh, material)
            positions = _glb_accessor(document, blob, primitive["attributes"]["POSITION"])
            if len(ids) != len(positions) or len(primitive.get("targets", [])) != len(names):
                return None
            neutral[ids] = positions
            for k, target in enumerate(primitive["targets"]):
                deltas[k, ids] = _glb_accessor(document, blob, target["POSITION"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    if not names:
        return None
    posed = neutral + np.tensordot(weights, deltas, axes=1)
    if np.abs(posed - obj_mesh.vertices).max() > FIT_TOLERANCE_M:
        return None
    return Blendshapes(neutral=neutral, deltas=deltas, names=names, weights=weights)


def read_shapes(folder: Path, obj_mesh: ObjMesh) -> Blendshapes | None:
    """The expression shapes of a result: blendshapes.npz when present, else head.glb's morph targets."""
    shapes = read_blendshapes(folder / BLENDSHAPES, len(obj_mesh.vertices))
    return shapes if shapes is not None else read_glb_blendshapes(folder / HEAD_GLB, obj_mesh)


def to_blender_axes(points_y_up: np.ndarray) -> np.ndarray:
    """(..., 3) points or deltas in head.obj's frame (Y up) -> Blender's frame (Z up)."""
    return points_y_up @ Y_UP_TO_Z_UP.T


ARKIT_SIDE = re.compile(r"_([LR])$")


def arkit_name(ict_name: str) -> str:
    """ICT's expression name in ARKit spelling: 'eyeBlink_L' -> 'eyeBlinkLeft', 'jawOpen' unchanged."""
    return ARKIT_SIDE.sub(lambda m: "Left" if m.group(1) == "L" else "Right", ict_name)


def summary_lines(manifest: dict) -> list[str]:
    """A few figures of a result for the panel: seconds (total and slowest stages), fit quality, sources."""
    lines = []
    seconds = {k: float(v) for k, v in (manifest.get("seconds") or {}).items() if isinstance(v, (int, float))}
    if seconds:
        total = seconds.pop("total", sum(seconds.values()))
        slowest = sorted(seconds.items(), key=lambda item: -item[1])[:3]
        lines.append(f"{total:.1f} s (" + ", ".join(f"{k} {v:.1f}" for k, v in slowest) + ")")
    residuals = manifest.get("residuals") or {}
    if isinstance(residuals.get("landmark_nme"), (int, float)):
        lines.append(f"landmark error: {100 * residuals['landmark_nme']:.1f}% of face size")
    detector = manifest.get("detector")
    detector = detector.get("name") if isinstance(detector, dict) else detector
    albedo = manifest.get("albedo") if isinstance(manifest.get("albedo"), dict) else {}
    details = [f"landmarks: {detector}" if detector else "",
               f"albedo: {albedo['source']}" if "source" in albedo else "",
               f"{albedo['resolution']} px" if "resolution" in albedo else ""]
    if any(details):
        lines.append(", ".join(d for d in details if d))
    return lines
