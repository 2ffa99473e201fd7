"""Re-render a FaceFit: the fitted skin with its region albedo under its SH lighting, in the photo's view."""
from __future__ import annotations

import numpy as np
import torch

from inference_core.facemodel import LANDMARK_VERTICES, FaceModel
from inference_core.facemodel.geometry import vertex_normals
from inference_core.facemodel.regions import albedo_regions
from inference_core.fitting.photometric_term import RenderMesh
from inference_core.fitting.parameters import View
from inference_core.render.interpolate import interpolate
from inference_core.render.rasterize import rasterize
from inference_core.render.sh import shading
from inference_core.values import FaceFit


def fit_view(fit: FaceFit, device: str = "cpu") -> View:
    """The View of a FaceFit's camera (processing pixels of its photo)."""
    camera = fit.camera
    return View(torch.tensor(camera.fx, dtype=torch.float32, device=device), camera.cx, camera.cy,
                torch.tensor(camera.rotation, dtype=torch.float32, device=device),
                torch.tensor(camera.translation_cm, dtype=torch.float32, device=device))


def render_fit(fit: FaceFit, model: FaceModel, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) float32 linear re-rendered face skin (region albedo x SH shading) and its (H, W) bool mask.

    The image has the size of the fit's camera (the photo's processing pixels); off-skin pixels are 0.
    """
    mesh = RenderMesh(model, device)
    view = fit_view(fit, device)
    with torch.no_grad():
        verts = torch.tensor(fit.vertices_cm[mesh.vertex_ids], device=device)
        fragments = rasterize(view.screen(verts), mesh.triangles, fit.camera.image_size)
        normals = vertex_normals(verts, mesh.triangles) @ view.rotation.T
        albedo = torch.tensor(albedo_regions(model)[mesh.vertex_ids], device=device) @ torch.tensor(
            fit.albedo_params, device=device)
        pixels = interpolate(torch.cat([normals, albedo], dim=1), mesh.triangles, fragments)
        pixel_normals = torch.nn.functional.normalize(pixels[..., :3], dim=-1, eps=1e-9)
        colour = pixels[..., 3:] * shading(pixel_normals, torch.tensor(fit.sh_camera, device=device))
        skin = mesh.skin_pixels(fragments)
        colour = colour * skin[..., None]
    return colour.clamp(0, 1).cpu().numpy().astype(np.float32), skin.cpu().numpy()


def landmark_vertices_px(fit: FaceFit) -> np.ndarray:
    """(68, 2) float32 the fixed 3D landmark vertices projected with the fit's camera.

    Unlike `FaceFit.landmarks_2d` (jaw on the silhouette, as a 2D detector marks it), these are
    3D-consistent landmarks: a hidden jaw point stays where the jaw is, as in AFLW2000-3D's `pt3d_68`.
    """
    camera = fit.camera
    points = fit.vertices_cm[LANDMARK_VERTICES].astype(np.float64) @ camera.rotation.T + camera.translation_cm
    pixels = points[:, :2] / points[:, 2:] * np.array([camera.fx, camera.fy]) + np.array([camera.cx, camera.cy])
    return pixels.astype(np.float32)
