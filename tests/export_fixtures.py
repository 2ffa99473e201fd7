"""Made-up stage values with known answers, for testing the exporter without running the pipeline."""
from __future__ import annotations

import numpy as np
import torch

from inference_core.facemodel import LANDMARK_VERTICES, FaceModel
from inference_core.render.camera import MODEL_TO_OPENCV, axis_angle_to_matrix, project, to_camera
from inference_core.values import (UV_TILES, Camera, FaceFit, Landmarks, Photo, PriorAlbedo, RefinedAlbedo,
                                   UVTexture)

SH_CAMERA = np.array([[1.2, 1.0, 0.9], [0.1, 0.1, 0.1], [-0.3, -0.25, -0.2], [0.4, 0.35, 0.3],
                      [0.02, 0.02, 0.02], [0.05, 0.04, 0.03], [-0.05, -0.05, -0.04], [0.03, 0.03, 0.02],
                      [0.04, 0.03, 0.03]], np.float32)
"""A plausible light from the camera's upper right, non-negative everywhere (radiance SH, camera space)."""


def known_camera(size: tuple[int, int] = (320, 256)) -> Camera:
    """A head 60 cm away, turned 20 degrees and tilted a little, slightly off-centre principal point."""
    turn = axis_angle_to_matrix(torch.tensor([0.1, 0.35, 0.05], dtype=torch.float64)).numpy()
    return Camera(fx=700.0, fy=700.0, cx=size[0] / 2 - 3.5, cy=size[1] / 2 + 2.0, image_size=size,
                  rotation=turn @ MODEL_TO_OPENCV, translation_cm=np.array([1.0, -2.0, 62.0]))


def project_model(vertices_cm: np.ndarray, camera: Camera) -> np.ndarray:
    cam = to_camera(torch.as_tensor(vertices_cm, dtype=torch.float64), torch.as_tensor(camera.rotation),
                    torch.as_tensor(camera.translation_cm))
    return project(cam, camera.fx, camera.fy, camera.cx, camera.cy).numpy()


def made_up_values(model: FaceModel, resolution: int = 64, with_refined: bool = True, scale: float = 0.5):
    """(photo, landmarks, fit, uv, prior, refined) for a neutral-identity head with a little jawOpen.

    The photo's processing image is `scale` times its original size, so camera.json must scale back.
    """
    rng = np.random.default_rng(0)
    camera = known_camera()
    width, height = camera.image_size
    photo = Photo(image_linear=np.full((height, width, 3), 0.2, np.float32),
                  texture_linear=np.full((height, width, 3), 0.2, np.float32),
                  original_size=(round(width / scale), round(height / scale)))
    expression = np.zeros(len(model.expression_names), np.float32)
    expression[model.expression_names.index("jawOpen")] = 0.3
    identity = (rng.standard_normal(20) * 0.5).astype(np.float32)
    vertices = model.vertices(identity, expression)
    landmarks_2d = project_model(vertices[LANDMARK_VERTICES], camera).astype(np.float32)
    fit = FaceFit(identity=identity, expression=expression, camera=camera, sh_camera=SH_CAMERA,
                  albedo_params=np.full((1, 3), 0.5, np.float32), vertices_cm=vertices,
                  face_mask=np.ones((height, width), bool), inlier_weight=np.ones((height, width), np.float32),
                  landmarks_2d=landmarks_2d, residuals={"landmark_px": 1.5, "photometric": 0.01})
    landmarks = Landmarks(points=landmarks_2d + rng.normal(0, 1.0, landmarks_2d.shape).astype(np.float32),
                          detector="dlib", face_box=(50.0, 40.0, 250.0, 220.0), confidence=1.0)
    tiles, r = len(UV_TILES), resolution
    ramp = np.linspace(0.1, 0.9, r, dtype=np.float32)
    albedo = np.empty((tiles, r, r, 3), np.float32)
    albedo[..., 0], albedo[..., 1], albedo[..., 2] = ramp[None, :], ramp[:, None] * 0.8, 0.4
    albedo[1] *= 0.9
    uv = UVTexture(colour=albedo * 0.8, visibility=np.tile(ramp, (tiles, r, 1)),
                   normals_camera=np.broadcast_to(np.array([0, 0, -1], np.float32), (tiles, r, r, 3)).copy(),
                   coverage=np.ones((tiles, r, r), bool))
    prior = PriorAlbedo(parametric=np.full((tiles, r, r, 3), 0.45, np.float32), completed=albedo,
                        source=np.ones((tiles, r, r), np.uint8), sh_camera=SH_CAMERA, kind="regions",
                        coefficients=np.zeros((1, 3), np.float32))
    refined = None
    if with_refined:
        sh_map = np.broadcast_to(SH_CAMERA, (r, r, 9, 3)).copy()
        sh_map[..., 0, :] *= np.linspace(0.9, 1.1, r, dtype=np.float32)[:, None, None]
        refined = RefinedAlbedo(albedo=albedo * 0.95, sh_map=sh_map, sh_global=SH_CAMERA, losses={"total": 0.1})
    return photo, landmarks, fit, uv, prior, refined


def run_blender_checks(result: "Path", scratch: "Path", vertex_ids: list[int]) -> dict:
    """Run tests/blender_checks.py on a result folder in a bpy subprocess with Blender's user folders in `scratch`."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    scratch.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(scratch), "BLENDER_USER_RESOURCES": str(scratch / "blender"),
           "XDG_CACHE_HOME": str(scratch / "cache"), "XDG_CONFIG_HOME": str(scratch / "config")}
    out = scratch / "blender_checks.json"
    script = Path(__file__).with_name("blender_checks.py")
    completed = subprocess.run([sys.executable, str(script), "--", str(result), str(out), json.dumps(vertex_ids)],
                               env=env, cwd=scratch, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(out.read_text())


def check_blender_report(report: dict, result: "Path", fit_landmarks_original: np.ndarray) -> None:
    """The assertions shared by the synthetic and the real result: camera, glb, environment in Blender."""
    import json

    from scipy.spatial import cKDTree

    from inference_core.export.camera import OBJ_TO_BLENDER
    from inference_core.export.lighting import irradiance

    # Blender's camera from camera.json puts the landmark vertices where the fit put them
    pixels = np.array(report["camera"]["pixels"])
    assert np.abs(pixels - fit_landmarks_original).max() < 0.5
    assert set(report["camera"]["materials"]) == {"skin", "eyes", "teeth", "gums"}
    # head.glb: one object, the four materials (skin per tile), 57 named shape keys at the fitted weights,
    # and with them applied the same surface as head.obj
    manifest = json.loads((result / "manifest.json").read_text())
    glb = report["glb"]
    assert glb["objects"] == 1
    assert {m.split(".")[0] for m in glb["materials"]} == {"skin_1001", "skin_1002", "eyes", "teeth", "gums"}
    assert glb["shape_keys"] == list(manifest["model"]["expression"])
    np.testing.assert_allclose(glb["shape_key_values"], list(manifest["model"]["expression"].values()), atol=1e-6)
    distance, _ = cKDTree(np.array(report["camera"]["obj_vertices_blender"])).query(np.array(glb["posed_vertices"]))
    assert distance.max() < 1e-4  # metres: 0.1 mm (OBJ text keeps 1 um)
    # environment.hdr lights a white Lambertian sphere in Cycles as the map's own irradiance says (orientation
    # and units), and, where lighting.json says the map is exact (non-negative SH radiance), as its formula says
    import cv2

    from inference_core.export.lighting import environment_irradiance

    lighting_doc = json.loads((result / "lighting.json").read_text())
    sh = np.array(lighting_doc["sh_radiance"])
    environment = cv2.imread(str(result / "environment.hdr"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    for side, view in report["sphere"].items():
        rendered = np.array(view["radiance"])
        normals_world = np.array(view["normals_blender"]) @ OBJ_TO_BLENDER  # Blender -> head.obj frame
        references = [environment_irradiance(environment, normals_world) / np.pi]  # outgoing radiance, albedo 1
        if lighting_doc["environment"]["exact"]:
            references.append(irradiance(sh, normals_world) / np.pi)
        for expected in references:
            relative = np.abs(rendered.mean(0) - expected.mean(0)) / expected.mean(0)
            assert relative.max() < 0.05, (side, relative)
            per_pixel = np.abs(rendered - expected).mean() / expected.mean()
            assert per_pixel < 0.05, (side, per_pixel)  # Monte Carlo noise of SPHERE_SAMPLES samples included
