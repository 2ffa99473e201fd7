"""Training data: face tiles of real photos made by the real pipeline stages, cached once as .npz.

For each photo, load -> detect -> fit -> unwrap -> prior runs once; the face tile of (UVTexture,
PriorAlbedo) at the network's resolution is stored as `<cache>/<photo stem>.npz` (the fields of
`refine.inputs.RefineInputs`). Photos without a usable face are skipped and listed. No ground-truth
reflectance is needed or stored: training is self-supervised.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from inference_core.errors import FaceAlbedoError
from inference_core.facemodel import FaceModel
from inference_core.progress import ProgressCallback, ignore_progress
from inference_core.refine.inputs import RefineInputs, face_tile_inputs, stack_inputs
from inference_core.values import FaceFit, PriorAlbedo, UVTexture

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".pgm", ".ppm", ".gif"}
STAGE = "cache"
CACHE_VERSION = 2
"""Part of every cached file's name: raised when RefineInputs or the stages before it change, so that a
cache made by an older version is rebuilt rather than misread (2: light_visibility)."""


def photo_stages(path: Path, model: FaceModel, resolution: int,
                 device: str = "cpu") -> tuple[UVTexture, PriorAlbedo, FaceFit]:
    """Run the pipeline's stages up to the prior on one photo (raises FaceAlbedoError, e.g. NO_FACE)."""
    from inference_core import landmarks, texture
    from inference_core.fitting import fit
    from inference_core.photo import load_photo

    photo = load_photo(path)
    fitted = fit(photo, landmarks.detect(photo), model, device=device)
    uv = texture.unwrap(photo, fitted, model, resolution)
    return uv, texture.prior_albedo(uv, fitted, model), fitted


def save_inputs(inputs: RefineInputs, path: Path) -> None:
    """Store a batch of inputs as .npz (one array per field), atomically."""
    temporary = path.with_name(path.stem + ".partial.npz")
    np.savez_compressed(temporary, **{f.name: getattr(inputs, f.name).cpu().numpy() for f in fields(RefineInputs)})
    temporary.replace(path)


def load_inputs(path: Path) -> RefineInputs:
    with np.load(path) as data:
        return RefineInputs(**{f.name: torch.from_numpy(data[f.name]) for f in fields(RefineInputs)})


def photo_files(images: Path) -> list[Path]:
    """The photos of a folder (not recursive), sorted by name."""
    return sorted(p for p in Path(images).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())


def build_cache(images: Path, cache: Path, model: FaceModel, resolution: int = 256, device: str = "cpu",
                progress: ProgressCallback = ignore_progress) -> tuple[list[Path], dict[str, str]]:
    """Cache every photo of `images` not cached yet -> (cached files, {skipped photo: error code})."""
    cache.mkdir(parents=True, exist_ok=True)
    photos = photo_files(images)
    cached, skipped = [], {}
    for index, photo in enumerate(photos):
        target = cache / f"{photo.stem}_{resolution}_v{CACHE_VERSION}.npz"
        progress(STAGE, index / max(len(photos), 1), f"preparing {photo.name}")
        if not target.exists():
            try:
                uv, prior, _ = photo_stages(photo, model, resolution, device)
            except FaceAlbedoError as error:
                skipped[photo.name] = error.code.name
                continue
            save_inputs(face_tile_inputs(uv, prior), target)
        cached.append(target)
    progress(STAGE, 1.0, f"{len(cached)} photos ready, {len(skipped)} skipped")
    return cached, skipped


class FaceTileDataset(torch.utils.data.Dataset):
    """Cached face tiles, one photo per item (batch dimension 1); combine with `collate`."""

    def __init__(self, files: list[Path] | None = None, items: list[RefineInputs] | None = None):
        self.items = list(items or []) + [load_inputs(f) for f in files or []]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> RefineInputs:
        return self.items[index]


def collate(items: list[RefineInputs]) -> RefineInputs:
    return stack_inputs(items)
