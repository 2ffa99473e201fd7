"""Helpers for the add-on tests: a small result folder written without the core, and a fake core.

`write_synthetic_result` makes a result folder in the DESIGN.md format with the exporter's writers and a
made-up fit, so that the importer can be tested in seconds and independently of the reconstruction
quality; `write_fake_core` stands in for the core process.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from inference_core.export.camera import camera_json
from inference_core.export.images import write_hdr, write_srgb_png
from inference_core.export.mesh import export_mesh
from inference_core.export.obj import write_mtl, write_obj
from inference_core.facemodel import FaceModel
from inference_core.render.camera import MODEL_TO_OPENCV
from inference_core.values import Camera

SYNTHETIC_JAW_OPEN = 0.3
SKIN_LINEAR = (0.45, 0.25, 0.15)


def frontal_camera(face_centre_cm: np.ndarray, distance_cm: float = 60.0, size: int = 256) -> Camera:
    """A camera `distance_cm` in front of the face centre, looking at it (focal 700 px)."""
    translation = np.array([0.0, 0.0, distance_cm]) - MODEL_TO_OPENCV @ face_centre_cm
    return Camera(fx=700.0, fy=700.0, cx=(size - 1) / 2, cy=(size - 1) / 2, image_size=(size, size),
                  rotation=MODEL_TO_OPENCV, translation_cm=translation)


def write_synthetic_result(out_dir: Path, model: FaceModel, photo: Path | None = None, stem: str = "synthetic",
                           tile_size: int = 64) -> Path:
    """A small result folder written with the exporter's own writers from a made-up fit (neutral head with
    a little jawOpen, frontal camera, flat skin, sky-over-ground light), plus blendshapes.npz."""
    folder = out_dir / stem
    folder.mkdir(parents=True, exist_ok=True)
    mesh = export_mesh(model)
    weights = np.zeros(len(model.expression_names), np.float32)
    weights[model.expression_names.index("jawOpen")] = SYNTHETIC_JAW_OPEN
    write_obj(folder / "head.obj", model.vertices(expression=weights) / 100.0, model.uvs, mesh)
    write_mtl(folder / "head.mtl")
    np.savez(folder / "blendshapes.npz", neutral_m=model.neutral_cm[:mesh.n_vertices] / 100.0,
             deltas_m=model.expression_basis_cm[:, :mesh.n_vertices] / 100.0,
             names=np.array(model.expression_names), weights=weights)
    for tile in (1001, 1002):
        flat = np.broadcast_to(np.float32(SKIN_LINEAR), (tile_size, tile_size, 3))
        write_srgb_png(folder / f"albedo.{tile}.png", flat)
    write_srgb_png(folder / "visibility.1001.png", np.ones((tile_size, tile_size, 3), np.float32))
    camera = frontal_camera(model.neutral_cm[:9409].mean(axis=0))
    (folder / "camera.json").write_text(json.dumps(camera_json(camera)))
    sky_over_ground = np.full((32, 64, 3), 0.4, np.float32)
    sky_over_ground[:16] = 1.2
    write_hdr(folder / "environment.hdr", sky_over_ground)
    manifest = {"format": "facealbedo.result", "input": {"path": str(photo) if photo else None},
                "detector": {"name": "synthetic"}, "seconds": {"fit": 1.0, "refine": 2.0, "total": 3.0},
                "residuals": {"landmark_nme": 0.02}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


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
