"""Learning the statistical albedo basis from photos (`facealbedo prior build`).

Per photo: load, detect, fit, unwrap, region prior (albedo + light), then the completed texture = the
photo divided by the fitted shading where well visible, completed by symmetry and the region prior;
over all photos: PCA (pca.build_basis). Photos where no usable face is found are skipped and reported.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.progress import ProgressCallback, ignore_progress
from inference_core.texture.pca import AlbedoBasis, build_basis

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".pgm", ".ppm", ".gif"}
STAGE = "prior build"


def photos_in(folder: Path) -> list[Path]:
    """The photo files under `folder` (recursively), sorted; USAGE error when there are none."""
    if not folder.is_dir():
        raise FaceAlbedoError(ErrorCode.USAGE, f"{folder} is not a folder; give --images a folder of face photos")
    photos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    if not photos:
        raise FaceAlbedoError(ErrorCode.USAGE, f"no photos in {folder}; give --images a folder of face photos")
    return photos


def completed_albedo(path: Path, resolution: int, fit_settings=None, device: str = "cpu") -> np.ndarray:
    """(T, R, R, 3) de-lit, symmetry-completed albedo of one photo under the region prior."""
    from inference_core.facemodel import load_face_model
    from inference_core.fitting import fit
    from inference_core.landmarks import detect
    from inference_core.photo import load_photo
    from inference_core.texture.prior import PriorSettings, prior_albedo
    from inference_core.texture.unwrap import unwrap

    model = load_face_model()
    photo = load_photo(path)
    fitted = fit(photo, detect(photo), model, fit_settings, device=device)
    uv = unwrap(photo, fitted, model, resolution)
    return prior_albedo(uv, fitted, model, PriorSettings(use_learned_basis=False)).completed


def basis_from_photos(photos: list[Path], resolution: int, n_components: int, fit_settings=None,
                      device: str = "cpu", progress: ProgressCallback = ignore_progress
                      ) -> tuple[AlbedoBasis, list[tuple[Path, str]]]:
    """(PCA basis over the photos' completed albedos, [(skipped photo, why)])."""
    textures, skipped = [], []
    for index, path in enumerate(photos):
        progress(STAGE, index / len(photos), f"{path.name}")
        try:
            textures.append(completed_albedo(path, resolution, fit_settings, device))
        except FaceAlbedoError as error:
            skipped.append((path, f"{error.code.name}: {error.message}"))
    progress(STAGE, 1.0, f"PCA of {len(textures)} textures")
    if len(textures) < 2:
        raise FaceAlbedoError(ErrorCode.USAGE, f"only {len(textures)} of {len(photos)} photos gave a face; "
                              "a basis needs at least 2")
    return build_basis(np.stack(textures), n_components), skipped
