"""write_result(): every stage's values -> one complete result folder (DESIGN.md, "Result folder").

The folder is assembled in a temporary folder and renamed into place (export.folder), so readers only
ever see complete results; manifest.json is written last.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inference_core.export import camera as camera_file
from inference_core.export import lighting, manifest
from inference_core.export.folder import atomic_folder
from inference_core.export.gltf import write_glb
from inference_core.export.images import write_gray_png, write_hdr, write_srgb_png
from inference_core.export.mesh import DROPPED_PARTS, export_mesh
from inference_core.export.obj import write_mtl, write_obj
from inference_core.facemodel import LANDMARK_VERTICES, FaceModel
from inference_core.facemodel.geometry import vertex_normals
from inference_core.texture.completion import SOURCE_SEEN
from inference_core.values import Camera, FaceFit, Landmarks, Photo, PriorAlbedo, RefinedAlbedo, UVTexture

CM_TO_M = 0.01


@dataclasses.dataclass(frozen=True)
class FinalMaps:
    """The albedo and lighting that the result ships (camera-space SH, as the stages produce them)."""

    albedo: np.ndarray  # (T, R, R, 3) linear
    sh_map_camera: np.ndarray  # (R, R, 9, 3) per-texel SH of tile 1001 (may be a broadcast view)
    sh_global_camera: np.ndarray  # (9, 3)
    source: str  # "refined" or "prior"


def final_maps(prior: PriorAlbedo, refined: RefinedAlbedo | None) -> FinalMaps:
    """The refined maps, or without refinement the prior's completed albedo under its constant global SH."""
    if refined is not None:
        return FinalMaps(refined.albedo, refined.sh_map, refined.sh_global, "refined")
    size = prior.completed.shape[1]
    constant = np.broadcast_to(np.asarray(prior.sh_camera, np.float32), (size, size, 9, 3))
    return FinalMaps(prior.completed, constant, prior.sh_camera, "prior")


def original_camera(photo: Photo, camera: Camera) -> Camera:
    """The fit's camera in the pixels of the original (EXIF-upright) photo file."""
    scaled = camera.scaled(1.0 / photo.processing_scale)
    return dataclasses.replace(scaled, image_size=tuple(int(v) for v in photo.original_size))


def to_original_pixels(points: np.ndarray, photo: Photo) -> np.ndarray:
    """(N, 2) processing pixels -> original photo pixels (pixel centres at integers)."""
    return (np.asarray(points, np.float64) + 0.5) / photo.processing_scale - 0.5


def _write_json(path: Path, document: dict) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(document, file, indent=1)
        file.write("\n")


def trusted_visibility(uv: UVTexture, prior: PriorAlbedo) -> np.ndarray:
    """(T, R, R) the texel visibility where the prior stage kept the photo's colour, 0 where it did not.

    The prior stage also rejects seen texels whose de-lit colour is far from skin (hair over the forehead,
    collars, frames), so this is what the albedo really took from the photo: the map to compare a
    re-render with.
    """
    return np.where(prior.source == SOURCE_SEEN, uv.visibility, 0.0).astype(np.float32)


def _write_maps(folder: Path, uv: UVTexture, prior: PriorAlbedo, maps: FinalMaps) -> None:
    """Albedo tiles and the intermediate maps of the face tile (sRGB PNGs; visibility as grey)."""
    for index, tile in enumerate(prior.tiles):
        write_srgb_png(folder / f"albedo.{tile}.png", maps.albedo[index])
    write_srgb_png(folder / manifest.FILES["unwrapped"], uv.colour[0])
    write_gray_png(folder / manifest.FILES["visibility"], trusted_visibility(uv, prior)[0])
    write_srgb_png(folder / manifest.FILES["prior_albedo"], prior.parametric[0])


def _write_meshes(folder: Path, fit: FaceFit, model: FaceModel) -> None:
    """head.obj/.mtl (the fitted pose) and head.glb (identity + expression morph targets)."""
    mesh = export_mesh(model)
    write_obj(folder / "head.obj", fit.vertices_cm * CM_TO_M, model.uvs, mesh)
    write_mtl(folder / "head.mtl")
    identity_cm = model.vertices(identity=fit.identity)
    normals = vertex_normals(torch.as_tensor(identity_cm), torch.as_tensor(model.triangles)).numpy()
    albedo_pngs = {tile: (folder / name).read_bytes() for tile, name in
                   ((int(t), n) for t, n in manifest.FILES["albedo"].items())}
    write_glb(folder / "head.glb", identity_cm * CM_TO_M, normals, model.uvs, mesh,
              model.expression_basis_cm * CM_TO_M, model.expression_names, fit.expression, albedo_pngs)


def _write_light_detail(folder: Path, uv: UVTexture, maps: FinalMaps) -> None:
    """light_detail.<UDIM>.hdr: the detailed illumination over the global light, for renderers (1 on tile
    1002, and everywhere when a constant map is shipped)."""
    face = uv.tiles.index(1001)
    if maps.source == "prior":
        detail = np.ones((*uv.coverage[face].shape, 3), np.float32)
    else:
        detail = lighting.light_detail(uv.normals_camera[face], uv.coverage[face], maps.sh_map_camera,
                                       maps.sh_global_camera)
    for tile, name in manifest.FILES["light_detail"].items():
        write_hdr(folder / name, detail if int(tile) == 1001 else np.ones_like(detail))


def _write_lighting(folder: Path, fit: FaceFit, maps: FinalMaps) -> None:
    """illumination.npz, lighting.json and environment.hdr, all in the world (head.obj) frame."""
    rotation = fit.camera.rotation
    sh_global = lighting.sh_to_world(maps.sh_global_camera, rotation)
    if maps.source == "prior":  # constant map: rotate once, then broadcast
        sh_map = np.broadcast_to(sh_global, maps.sh_map_camera.shape)
    else:
        sh_map = lighting.sh_to_world(maps.sh_map_camera, rotation)
    lighting.write_illumination(folder / "illumination.npz", sh_map, sh_global)
    toward_camera = -rotation.T @ np.asarray(fit.camera.translation_cm, np.float64)  # camera centre, world
    environment, fidelity = lighting.environment_image(sh_global, toward_camera / np.linalg.norm(toward_camera))
    write_hdr(folder / "environment.hdr", environment)
    _write_json(folder / "lighting.json", lighting.lighting_json(sh_global, fidelity))


def _write_render(folder: Path, photo: Photo, fit: FaceFit, model: FaceModel, maps: FinalMaps,
                  refined: RefinedAlbedo | None) -> None:
    """render.png: albedo x shading re-rendered over the photo (processing resolution), for the eye."""
    from inference_core.evaluation.rerender import rerender, surface_view

    view = surface_view(fit, model)
    sh_map = None if refined is None else refined.sh_map
    render = rerender(view, maps.albedo, maps.sh_global_camera, sh_map)
    image = np.where(render.mask[..., None], render.image, photo.image_linear)
    write_srgb_png(folder / manifest.FILES["render"], image)


def _manifest(photo: Photo, landmarks: Landmarks, fit: FaceFit, prior: PriorAlbedo, refined: RefinedAlbedo | None,
              model: FaceModel, maps: FinalMaps, seconds: dict[str, float], settings: dict[str, Any]) -> dict:
    path = None if photo.path is None else Path(photo.path)
    return {
        "format": manifest.FORMAT,
        "format_version": manifest.FORMAT_VERSION,
        "created": manifest.now_utc(),
        "software": {"name": "facealbedo", "version": manifest.software_version()},
        "input": {"path": None if path is None else str(path.resolve()),
                  "name": "photo" if path is None else path.name, "sha256": manifest.file_sha256(path),
                  "size": list(photo.original_size), "processing_size": list(photo.size)},
        "detector": {"name": landmarks.detector, "confidence": float(landmarks.confidence),
                     "face_box": to_original_pixels(np.reshape(landmarks.face_box, (2, 2)), photo).reshape(-1).round(2).tolist(), "face_count": int(landmarks.face_count),
                     "face_index": int(landmarks.face_index),
                     "landmarks": to_original_pixels(landmarks.points, photo).round(3).tolist()},
        "model": {"name": "ICT-FaceKit light", "vertex_count": export_mesh(model).n_vertices,
                  "dropped_parts": list(DROPPED_PARTS), "identity": [float(v) for v in fit.identity],
                  "expression": {n: float(w) for n, w in zip(model.expression_names, fit.expression)},
                  "landmark_vertices": [int(v) for v in LANDMARK_VERTICES],
                  "fitted_landmarks": to_original_pixels(fit.landmarks_2d, photo).round(3).tolist()},
        "albedo": {"resolution": int(maps.albedo.shape[1]), "tiles": [int(t) for t in prior.tiles],
                   "source": maps.source, "prior_kind": prior.kind},
        "lighting": {"frame": "world", "sh_map_dtype": "float16"},
        "settings": settings,
        "seconds": {k: round(float(v), 3) for k, v in seconds.items()},
        "residuals": {k: float(v) for k, v in fit.residuals.items()},
        "losses": {} if refined is None else {k: float(v) for k, v in refined.losses.items()},
        "files": manifest.FILES,
    }


def write_result(out_root: Path | str, stem: str, photo: Photo, landmarks: Landmarks, fit: FaceFit, uv: UVTexture,
                 prior: PriorAlbedo, refined: RefinedAlbedo | None, model: FaceModel, timings: dict[str, float],
                 settings: dict[str, Any] | None = None, *, overwrite: bool = False) -> Path:
    """Write the result folder `out_root/stem` atomically and return its path.

    `refined` None ships the prior's completed albedo with a constant illumination map of its global SH.
    `timings` are the seconds of the stages before export; export's own time and the total are added.
    Raises OUTPUT_EXISTS (target there, no `overwrite`), OUTPUT_NOT_WRITABLE or DISK_FULL.
    """
    start = time.perf_counter()
    target = Path(out_root) / stem
    maps = final_maps(prior, refined)
    with atomic_folder(target, overwrite=overwrite) as folder:
        _write_maps(folder, uv, prior, maps)
        _write_meshes(folder, fit, model)
        _write_lighting(folder, fit, maps)
        _write_light_detail(folder, uv, maps)
        _write_json(folder / "camera.json", camera_file.camera_json(original_camera(photo, fit.camera)))
        _write_render(folder, photo, fit, model, maps, refined)
        seconds = {**timings, "export": time.perf_counter() - start}
        seconds["total"] = sum(seconds.values())
        document = _manifest(photo, landmarks, fit, prior, refined, model, maps, seconds, dict(settings or {}))
        manifest.validate(document)
        _write_json(folder / "manifest.json", document)
    return target
