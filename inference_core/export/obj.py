"""head.obj + head.mtl: the fitted head (identity and expression) in metres, Y up, UDIM UVs.

Skin uses the UDIM tiles through `map_Kd albedo.<UDIM>.png` (the token Blender, Maya, Houdini and
Mari understand); eyes, teeth and gums get plain colours. Vertex i is the model's vertex i (export.mesh).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from inference_core.export.mesh import MATERIAL_COLOURS_LINEAR, ExportMesh

ALBEDO_PATTERN = "albedo.<UDIM>.png"


def _rows(prefix: str, values: np.ndarray, fmt: str) -> str:
    """Lines `prefix v0 v1 ...` for each row of `values`, formatted in one vectorised pass."""
    buffer = io.StringIO()
    np.savetxt(buffer, values, fmt=fmt, delimiter=" ")
    text = buffer.getvalue()
    return prefix + text.replace("\n", "\n" + prefix)[: -len(prefix)] if text else ""


def _faces(polygons: np.ndarray, polygon_uvs: np.ndarray) -> str:
    """`f v/vt ...` lines (1-based) for -1-padded quads: triangles and quads written separately."""
    lines = []
    for count in (3, 4):
        rows = (polygons[:, 3] >= 0) if count == 4 else (polygons[:, 3] < 0)
        if not rows.any():
            continue
        pairs = np.stack([polygons[rows, :count] + 1, polygon_uvs[rows, :count] + 1], axis=-1).reshape(-1, 2 * count)
        lines.append(_rows("f ", pairs, " ".join(["%d/%d"] * count)))
    return "".join(lines)


def write_obj(path: Path, vertices_m: np.ndarray, uvs: np.ndarray, mesh: ExportMesh, mtl_name: str = "head.mtl") -> None:
    """Write head.obj: `vertices_m` (V, 3) metres (first mesh.n_vertices used), all model UVs (U, 2)."""
    with open(path, "w", encoding="ascii", newline="\n") as file:
        file.write("# FaceAlbedo head: ICT-FaceKit light topology, metres, Y up, UDIM UVs\n")
        file.write(f"mtllib {mtl_name}\no head\n")
        file.write(_rows("v ", vertices_m[: mesh.n_vertices], "%.6f %.6f %.6f"))
        file.write(_rows("vt ", uvs, "%.6f %.6f"))
        file.write("s 1\n")
        for material, polygons in mesh.polygons.items():
            file.write(f"g {material}\nusemtl {material}\n")
            file.write(_faces(polygons, mesh.polygon_uvs[material]))


def write_mtl(path: Path) -> None:
    """Write head.mtl: skin textured by the albedo UDIM tiles, the other materials plain colours."""
    blocks = []
    for material, colour in MATERIAL_COLOURS_LINEAR.items():
        lines = [f"newmtl {material}", "Ka 0 0 0", "Kd {:.4f} {:.4f} {:.4f}".format(*colour), "Ks 0.04 0.04 0.04",
                 "Ns 60", "illum 2"]
        if material == "skin":
            lines.append(f"map_Kd {ALBEDO_PATTERN}")
        blocks.append("\n".join(lines))
    with open(path, "w", encoding="ascii", newline="\n") as file:
        file.write("# FaceAlbedo materials (Kd is linear RGB)\n" + "\n\n".join(blocks) + "\n")


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, list[list[tuple[int, int]]]]]:
    """(vertices (V, 3), uvs (U, 2), material -> faces of (vertex, uv) 0-based pairs): for tests and tools."""
    vertices, uvs, faces, material = [], [], {}, None
    with open(path, encoding="ascii") as file:
        for line in file:
            head, _, rest = line.partition(" ")
            if head == "v":
                vertices.append([float(x) for x in rest.split()])
            elif head == "vt":
                uvs.append([float(x) for x in rest.split()])
            elif head == "usemtl":
                material = rest.strip()
                faces.setdefault(material, [])
            elif head == "f":
                faces[material].append([tuple(int(i) - 1 for i in c.split("/")[:2]) for c in rest.split()])
    return np.array(vertices), np.array(uvs), faces
