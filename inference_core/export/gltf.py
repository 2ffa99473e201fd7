"""head.glb: the head as glTF 2.0 (pygltflib) with the albedo, materials and expression morph targets.

glTF has no UDIM tiles, so the skin is split into one primitive per tile (`skin_1001`, `skin_1002`), each
with its own material and texture and its UVs shifted into [0, 1] (and v flipped: glTF's origin is the
top left). Eyes, teeth and gums are primitives with plain materials. All primitives form one mesh.

Shape: POSITION is the fitted identity at neutral expression; the 57 ICT expression shapes are morph
targets (sparse, names in mesh.extras.targetNames) whose default weights (mesh.weights) are the fitted
expression, so the default pose is the fitted face and Blender imports the targets as shape keys.

glTF vertices are (vertex, uv) pairs, so seams duplicate vertices; the application-specific attribute
`_VERTEX_ID` (float, exact) gives each glTF vertex its head.obj / ICT vertex id. Within a primitive the
vertices are sorted by (vertex id, uv id).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pygltflib as gl

from inference_core.export.mesh import MATERIAL_COLOURS_LINEAR, ExportMesh, triangle_corners

SPARSE_THRESHOLD_M = 1e-6
"""Morph-target deltas below this (metres, every axis) are stored as zero (sparse accessors)."""
ROUGHNESS = {"skin": 0.55, "eyes": 0.1, "teeth": 0.3, "gums": 0.4}


class _Blob:
    """The GLB's one binary buffer, assembled from 4-byte-aligned buffer views."""

    def __init__(self, gltf: gl.GLTF2):
        self.gltf, self.chunks, self.length = gltf, [], 0

    def view(self, data: bytes, target: int | None = None) -> int:
        padding = (-self.length) % 4
        self.chunks.append(b"\0" * padding)
        self.length += padding
        self.gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=self.length, byteLength=len(data), target=target))
        self.chunks.append(data)
        self.length += len(data)
        return len(self.gltf.bufferViews) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int | None = gl.ARRAY_BUFFER, bounds: bool = False) -> int:
        component = gl.UNSIGNED_INT if array.dtype == np.uint32 else gl.FLOAT
        accessor = gl.Accessor(bufferView=self.view(array.tobytes(), target), componentType=component,
                               count=len(array), type=kind)
        if bounds:
            accessor.min, accessor.max = array.min(0).tolist(), array.max(0).tolist()
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    def sparse_vec3(self, deltas: np.ndarray) -> int:
        """A VEC3 float accessor that is zero except at the rows where |delta| >= SPARSE_THRESHOLD_M."""
        rows = np.nonzero(np.abs(deltas).max(1) >= SPARSE_THRESHOLD_M)[0].astype(np.uint32)
        accessor = gl.Accessor(componentType=gl.FLOAT, count=len(deltas), type=gl.VEC3,
                               min=[0.0, 0.0, 0.0], max=[0.0, 0.0, 0.0])
        if len(rows):
            values = np.ascontiguousarray(deltas[rows], np.float32)
            accessor.min, accessor.max = np.minimum(values.min(0), 0).tolist(), np.maximum(values.max(0), 0).tolist()
            accessor.sparse = gl.Sparse(
                count=len(rows),
                indices=gl.AccessorSparseIndices(bufferView=self.view(rows.tobytes()), componentType=gl.UNSIGNED_INT),
                values=gl.AccessorSparseValues(bufferView=self.view(values.tobytes())))
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    def bytes(self) -> bytes:
        return b"".join(self.chunks) + b"\0" * ((-self.length) % 4)


def _primitive_groups(mesh: ExportMesh, uvs: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """(material name, polygons, polygon_uvs, UDIM tile) per primitive: skin split by tile."""
    groups = []
    for material, polygons in mesh.polygons.items():
        polygon_uvs = mesh.polygon_uvs[material]
        tiles = 1001 + np.floor(uvs[polygon_uvs[:, 0], 0]).astype(np.int64)
        if material != "skin":
            groups.append((material, polygons, polygon_uvs, int(tiles.min())))
            continue
        for tile in np.unique(tiles):
            keep = tiles == tile
            groups.append((f"skin_{tile}", polygons[keep], polygon_uvs[keep], int(tile)))
    return groups


def _material(name: str, texture: int | None) -> gl.Material:
    base = name.split("_")[0]
    pbr = gl.PbrMetallicRoughness(metallicFactor=0.0, roughnessFactor=ROUGHNESS[base])
    if texture is None:
        pbr.baseColorFactor = [*MATERIAL_COLOURS_LINEAR[base], 1.0]
    else:
        pbr.baseColorTexture = gl.TextureInfo(index=texture)
    return gl.Material(name=name, pbrMetallicRoughness=pbr)


def write_glb(path: Path, base_vertices_m: np.ndarray, normals: np.ndarray, uvs: np.ndarray, mesh: ExportMesh,
              expression_deltas_m: np.ndarray, expression_names: tuple[str, ...], expression_weights: np.ndarray,
              albedo_pngs: dict[int, bytes]) -> None:
    """Write head.glb.

    base_vertices_m (V, 3) identity shape at neutral expression; normals (V, 3) unit; uvs (U, 2) UDIM;
    expression_deltas_m (57, V, 3); expression_weights (57,) default pose; albedo_pngs tile -> PNG bytes.
    """
    gltf = gl.GLTF2(asset=gl.Asset(generator="FaceAlbedo", version="2.0"))
    blob = _Blob(gltf)
    gltf.samplers.append(gl.Sampler(magFilter=gl.LINEAR, minFilter=gl.LINEAR_MIPMAP_LINEAR,
                                    wrapS=gl.CLAMP_TO_EDGE, wrapT=gl.CLAMP_TO_EDGE))
    textures = {}
    for tile, png in sorted(albedo_pngs.items()):
        gltf.images.append(gl.Image(bufferView=blob.view(png), mimeType="image/png", name=f"albedo.{tile}"))
        gltf.textures.append(gl.Texture(sampler=0, source=len(gltf.images) - 1, name=f"albedo.{tile}"))
        textures[tile] = len(gltf.textures) - 1

    primitives = []
    for name, polygons, polygon_uvs, tile in _primitive_groups(mesh, uvs):
        corners = triangle_corners(polygons)  # (F, 3) into flattened corners
        pairs = np.stack([polygons.reshape(-1)[corners], polygon_uvs.reshape(-1)[corners]], -1).reshape(-1, 2)
        unique_pairs, indices = np.unique(pairs, axis=0, return_inverse=True)
        vertex_ids, uv_ids = unique_pairs[:, 0], unique_pairs[:, 1]
        texcoords = uvs[uv_ids].astype(np.float32) - np.array([tile - 1001, 0], np.float32)
        texcoords[:, 1] = 1.0 - texcoords[:, 1]
        attributes = gl.Attributes(
            POSITION=blob.accessor(np.ascontiguousarray(base_vertices_m[vertex_ids], np.float32), gl.VEC3, bounds=True),
            NORMAL=blob.accessor(np.ascontiguousarray(normals[vertex_ids], np.float32), gl.VEC3),
            TEXCOORD_0=blob.accessor(np.ascontiguousarray(texcoords), gl.VEC2),
            _VERTEX_ID=blob.accessor(vertex_ids.astype(np.float32), gl.SCALAR))  # head.obj vertex (exact < 2^24)
        targets = [gl.Attributes(POSITION=blob.sparse_vec3(deltas[vertex_ids])) for deltas in expression_deltas_m]
        gltf.materials.append(_material(name, textures.get(tile) if name.startswith("skin") else None))
        primitives.append(gl.Primitive(
            attributes=attributes, targets=targets, material=len(gltf.materials) - 1,
            indices=blob.accessor(indices.reshape(-1).astype(np.uint32), gl.SCALAR, gl.ELEMENT_ARRAY_BUFFER)))

    gltf.meshes.append(gl.Mesh(name="head", primitives=primitives,
                               weights=[float(w) for w in expression_weights],
                               extras={"targetNames": list(expression_names)}))
    gltf.nodes.append(gl.Node(name="head", mesh=0))
    gltf.scenes.append(gl.Scene(nodes=[0]))
    gltf.scene = 0
    data = blob.bytes()
    gltf.buffers.append(gl.Buffer(byteLength=len(data)))
    gltf.set_binary_blob(data)
    gltf.save_binary(str(path))
