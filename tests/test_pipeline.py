"""The real pipeline on a dev photo (the shared `reconstructed_run` fixture): the result folder's contract."""
from __future__ import annotations

import json

import numpy as np
import pytest

from export_fixtures import check_blender_report, run_blender_checks
from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.export import manifest
from inference_core.export.camera import project_world_points
from inference_core.export.images import read_srgb_png
from inference_core.export.obj import read_obj
from inference_core.facemodel import LANDMARK_VERTICES
from inference_core.pipeline import STAGES, ReconstructionResult, reconstruct

INNER = np.r_[8, 17:68]
"""Landmarks whose vertex is fixed (the chin and everything but the pose-dependent jaw contour)."""


def test_api_returns_a_typed_result_and_reports_progress_stage_by_stage(reconstructed_run):
    result, reports = reconstructed_run
    assert isinstance(result, ReconstructionResult)
    assert result.paths["head_obj"] == result.folder / "head.obj" and result.paths["albedo_1002"].is_file()
    assert result.residuals["landmark_nme"] < 0.08
    stages = [stage for stage, _, _ in reports]
    seen = list(dict.fromkeys(stages))
    assert seen == [s for s in STAGES if s in seen] and {"load", "detect", "fit", "export"} <= set(seen)
    assert all(0.0 <= fraction <= 1.0 for _, fraction, _ in reports)
    assert set(result.seconds) == set(seen) | {"total"}


def test_every_file_of_the_contract_exists_parses_and_is_complete(reconstructed_result, face_model):
    document = json.loads((reconstructed_result / "manifest.json").read_text())
    manifest.validate(document)
    for name, path in manifest.result_paths(reconstructed_result).items():
        assert path.is_file(), name
    resolution = document["albedo"]["resolution"]
    for tile in (1001, 1002):
        albedo = read_srgb_png(reconstructed_result / f"albedo.{tile}.png")
        assert albedo.shape == (resolution, resolution, 3)
    face = read_srgb_png(reconstructed_result / "albedo.1001.png")
    centre = face[resolution // 4: 3 * resolution // 4, resolution // 4: 3 * resolution // 4]
    assert (centre.max(-1) > 0.02).mean() > 0.99  # no black holes in the face
    with np.load(reconstructed_result / "illumination.npz") as data:
        assert data["sh_map_1001"].shape == (resolution, resolution, 9, 3)
        assert np.isfinite(data["sh_map_1001"].astype(np.float32)).all()
    vertices, uvs, faces = read_obj(reconstructed_result / "head.obj")
    assert len(vertices) == document["model"]["vertex_count"] and set(faces) == {"skin", "eyes", "teeth", "gums"}


def test_camera_json_puts_head_obj_on_the_fit_and_on_the_detected_landmarks(reconstructed_result, reconstructed_run):
    document = json.loads((reconstructed_result / "manifest.json").read_text())
    camera = json.loads((reconstructed_result / "camera.json").read_text())
    assert camera["image_size"] == document["input"]["size"]
    vertices, _, _ = read_obj(reconstructed_result / "head.obj")
    projected = project_world_points(camera, vertices[LANDMARK_VERTICES])
    fitted = np.array(document["model"]["fitted_landmarks"])
    detected = np.array(document["detector"]["landmarks"])
    assert np.abs(projected[INNER] - fitted[INNER]).max() < 0.5
    # ... and so onto the detections within the fit's own residual (NME over the detected face box)
    box = detected.max(0) - detected.min(0)
    combined = fitted.copy()
    combined[INNER] = projected[INNER]
    nme = np.linalg.norm(combined - detected, axis=1).mean() / np.sqrt(box[0] * box[1])
    assert nme == pytest.approx(reconstructed_run[0].residuals["landmark_nme"], abs=2e-3)


@pytest.mark.blender
def test_blender_reads_the_real_result_as_the_contract_says(reconstructed_result, tmp_path):
    camera = json.loads((reconstructed_result / "camera.json").read_text())
    vertices, _, _ = read_obj(reconstructed_result / "head.obj")
    report = run_blender_checks(reconstructed_result, tmp_path, LANDMARK_VERTICES.tolist())
    check_blender_report(report, reconstructed_result, project_world_points(camera, vertices[LANDMARK_VERTICES]))


def test_an_existing_result_is_refused_before_any_work(reconstructed_result):
    from conftest import RECONSTRUCTED_PHOTO

    with pytest.raises(FaceAlbedoError) as caught:
        reconstruct(RECONSTRUCTED_PHOTO, out=reconstructed_result.parent, resolution=32)
    assert caught.value.code is ErrorCode.OUTPUT_EXISTS
