"""Shared test fixtures: where the shared assets are, a few real photos, bpy's user folders in tmp."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


def _assets_root() -> Path:
    # Absolute, so that symlinks made in temporary folders and child processes in other folders find it.
    root = Path(os.environ.get("FACEALBEDO_ASSETS", PROJECT.parent / "shared" / "assets")).resolve()
    if not (root / "ict_facekit").is_dir():
        # Never a silent skip: without the shared assets the tests cannot say anything.
        raise pytest.UsageError(
            f"shared test assets not found at {root}: set FACEALBEDO_ASSETS=../shared/assets")
    os.environ["FACEALBEDO_ASSETS"] = str(root)
    return root


ASSETS = _assets_root()
FACES = ASSETS / "faces"


@pytest.fixture(scope="session")
def assets_root() -> Path:
    return ASSETS


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    return FACES


@pytest.fixture(scope="session")
def face_model():
    from inference_core.facemodel import load_face_model

    return load_face_model()


RECONSTRUCTED_PHOTO = FACES / "photos" / "astronaut.png"
"""The dev photo that `reconstructed_result` runs the real pipeline on (512 x 512, one frontal face)."""
RECONSTRUCTED_RESOLUTION = 256


@pytest.fixture(scope="session")
def reconstructed_run(tmp_path_factory):
    """(ReconstructionResult, progress reports [(stage, fraction, message)]) of the pipeline run once on
    RECONSTRUCTED_PHOTO at UV resolution 256 (CPU)."""
    from inference_core.pipeline import reconstruct

    reports: list[tuple[str, float, str]] = []
    out = tmp_path_factory.mktemp("reconstructed")
    result = reconstruct(RECONSTRUCTED_PHOTO, out=out, resolution=RECONSTRUCTED_RESOLUTION, device="cpu",
                         progress=lambda stage, fraction, message: reports.append((stage, fraction, message)))
    return result, reports


@pytest.fixture(scope="session")
def reconstructed_result(reconstructed_run) -> Path:
    """A real result folder (see `reconstructed_run`). Shared by the export, pipeline, Blender and evaluation
    tests; treat it as read-only."""
    return reconstructed_run[0].folder
