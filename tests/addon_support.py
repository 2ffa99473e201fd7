"""Helpers for the add-on tests: a small result folder written without the core, and bpy in a sandbox.

`write_synthetic_result` makes a result folder in the DESIGN.md format from the ICT model (neutral head
with a little jawOpen, a frontal camera, flat skin tiles, a sky-over-ground environment), so that the
importer can be tested in seconds and independently of the reconstruction quality.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from inference_core.facemodel import POLYGON_RANGES, FaceModel

SYNTHETIC_JAW_OPEN = 0.3
SYNTHETIC_GROUPS = (  # (usemtl name, polygon parts), as the exporter groups head.obj
    ("skin", ("face", "head_neck")),
    ("mouth_socket", ("mouth_socket",)),
    ("eye_socket", ("eye_socket_left", "eye_socket_right")),
    ("gums", ("gums_tongue",)),
    ("teeth", ("teeth",)),
    ("eyeball", ("eyeball_left", "eyeball_right")),
    ("eyelashes", ("eyelashes",)),
)


def sandbox_blender_environment(root: Path) -> None:
    """Point bpy's user folders (config, extensions, caches) into `root` before bpy is imported."""
    for name in ("BLENDER_USER_RESOURCES", "HOME", "XDG_CACHE_HOME"):
        folder = root / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(folder)


def _polygon_groups(n_polygons: int) -> np.ndarray:
    """(P,) index into SYNTHETIC_GROUPS per polygon; the shells between the parts count as eyeball."""
    group = np.full(n_polygons, SYNTHETIC_GROUPS.index(next(g for g in SYNTHETIC_GROUPS if g[0] == "eyeball")))
    for index, (_, parts) in enumerate(SYNTHETIC_GROUPS):
        for part in parts:
            lo, hi = POLYGON_RANGES[part]
            group[lo:hi + 1] = index
    return group


def write_obj(path: Path, vertices_m: np.ndarray, model: FaceModel) -> None:
    """head.obj: vertices (metres, Y up), UDIM UVs, polygons grouped by `usemtl` as the exporter does."""
    groups = _polygon_groups(len(model.polygons))
    lines = ["mtllib head.mtl"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices_m]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in model.uvs]
    order = np.argsort(groups, kind="stable")
    current = None
    for p in order:
        if groups[p] != current:
            current = groups[p]
            lines.append(f"usemtl {SYNTHETIC_GROUPS[current][0]}")
        corners = [f"{v + 1}/{t + 1}" for v, t in zip(model.polygons[p], model.polygon_uvs[p]) if v >= 0]
        lines.append("f " + " ".join(corners))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (path.parent / "head.mtl").write_text("".join(f"newmtl {g}\nKd 0.8 0.8 0.8\n" for g, _ in SYNTHETIC_GROUPS))


def frontal_camera(face_centre_m: np.ndarray, distance_m: float, size: tuple[int, int],
                   focal_px: float) -> dict:
    """camera.json for a camera `distance_m` in front of the face (OpenCV and Blender blocks)."""
    width, height = size
    rotation = np.diag([1.0, -1.0, -1.0])  # model Y up, +Z towards the camera -> OpenCV y down, z forward
    centre_cam = rotation @ face_centre_m
    translation = np.array([-centre_cam[0], -centre_cam[1], distance_m - centre_cam[2]])
    world_to_camera = np.eye(4)
    world_to_camera[:3, :3], world_to_camera[:3, 3] = rotation, translation
    position_obj = -rotation.T @ translation  # camera centre in head.obj's frame
    sensor_mm = 36.0
    return {
        "format": "facealbedo.camera/1",
        "image_size": [width, height],
        "intrinsics": {"fx": focal_px, "fy": focal_px, "cx": (width - 1) / 2, "cy": (height - 1) / 2},
        "world_to_camera": world_to_camera.tolist(),
        "blender": {"location": [position_obj[0], -position_obj[2], position_obj[1]],
                    "rotation_euler_xyz": [np.pi / 2, 0.0, 0.0], "lens_mm": focal_px * sensor_mm / width,
                    "sensor_width_mm": sensor_mm, "shift_x": 0.0, "shift_y": 0.0, "resolution": [width, height]},
    }


def write_environment(path: Path, sky: float = 1.2, ground: float = 0.4) -> None:
    """A 64 x 32 equirectangular Radiance HDR: bright sky over a darker ground."""
    import cv2

    image = np.full((32, 64, 3), ground, np.float32)
    image[:16] = sky
    cv2.imwrite(str(path), image)


def write_synthetic_result(out_dir: Path, model: FaceModel, photo: Path | None = None, stem: str = "synthetic",
                           tile_size: int = 64) -> Path:
    """A complete small result folder (no reconstruction) for importer tests; returns the folder."""
    import cv2

    folder = out_dir / stem
    folder.mkdir(parents=True, exist_ok=True)
    jaw = model.expression_names.index("jawOpen")
    weights = np.zeros(len(model.expression_names), np.float32)
    weights[jaw] = SYNTHETIC_JAW_OPEN
    neutral_m = model.neutral_cm / 100.0
    deltas_m = model.expression_basis_cm / 100.0
    fitted_m = neutral_m + np.tensordot(weights, deltas_m, axes=1)
    write_obj(folder / "head.obj", fitted_m, model)
    np.savez(folder / "blendshapes.npz", neutral_m=neutral_m, deltas_m=deltas_m,
             names=np.array(model.expression_names), weights=weights)
    skin_bgr = np.array([120, 150, 200], np.uint8)
    for tile in (1001, 1002):
        cv2.imwrite(str(folder / f"albedo.{tile}.png"), np.broadcast_to(skin_bgr, (tile_size, tile_size, 3)).copy())
    face_centre = neutral_m[:9409].mean(axis=0)
    (folder / "camera.json").write_text(json.dumps(frontal_camera(face_centre, 0.6, (256, 256), 700.0)))
    write_environment(folder / "environment.hdr")
    manifest = {"format": "facealbedo.result/1", "input": str(photo) if photo else None, "detector": "synthetic",
                "seconds": {"fit": 1.0, "refine": 2.0}, "residuals": {"landmarks_px": 1.5}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def temporary_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


FAKE_CORE = '''
import json, shutil, sys, time
from pathlib import Path
args = sys.argv[sys.argv.index("reconstruct") + 1:]
photo, out = Path(args[0]), Path(args[args.index("--out") + 1])
template, delay = Path({template!r}), {delay!r}
def emit(**event):
    print(json.dumps(event), flush=True)
for stage in ("load", "detect", "fit", "unwrap", "prior", "refine", "export"):
    emit(event="progress", stage=stage, fraction=0.5, message="pretending")
    time.sleep(delay)
if "no_face" in str(photo) or photo.stem in {no_face!r}:
    emit(event="error", code="NO_FACE", message=f"no face found in {{photo.name}}")
    sys.exit(11)
shutil.copytree(template, out / photo.stem, dirs_exist_ok=True)
emit(event="done", result=str(out / photo.stem))
'''


def write_fake_core(folder: Path, template: Path, delay: float = 0.0, no_face: tuple[str, ...] = ()) -> Path:
    """An executable that behaves like `python -m inference_core reconstruct ... --progress-json`:
    progress lines for every stage, then a copy of `template` as the result (or NO_FACE for photos in a
    no_face folder or named in `no_face`). Returns its path, to pass as the inference Python."""
    import stat
    import sys

    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "fake_core.py"
    script.write_text(FAKE_CORE.format(template=str(template), delay=delay, no_face=list(no_face)))
    python = folder / "fake_python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return python
