"""Contact sheets of the prior stage, for looking: photo | unwrapped | visibility | prior | completed | source.

    .venv/bin/python scripts/show_texture.py PHOTO_OR_DIR ... [--out DIR] [--resolution 512] [--landmark-fit]

For each photo: load, detect, fit, unwrap, prior albedo; writes `<out>/<stem>/` with the PNG tiles
(unwrapped.1001.png, visibility.1001.png, prior_albedo.1001.png, completed.1001.png, source.1001.png and the
same for 1002) and `<out>/<stem>.sheet.png`: one row per tile. Source colours: grey prior, green seen,
blue mirrored.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from inference_core.errors import FaceAlbedoError
from inference_core.facemodel import load_face_model
from inference_core.fitting import FitSettings, fit
from inference_core.landmarks import detect
from inference_core.photo import linear_to_srgb, load_photo
from inference_core.texture import prior_albedo, unwrap
from inference_core.texture.build import PHOTO_SUFFIXES

SOURCE_COLOURS = np.array([[0.5, 0.5, 0.5], [0.2, 0.8, 0.2], [0.2, 0.4, 1.0]], np.float32)  # prior, seen, mirrored


def photos_in(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        found += sorted(p for p in path.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES) if path.is_dir() else [path]
    return found


def to_srgb8(linear: np.ndarray) -> np.ndarray:
    """(H, W, 3) or (H, W) linear [0, 1] -> uint8 sRGB (H, W, 3)."""
    image = np.clip(linear, 0.0, 1.0)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.round(linear_to_srgb(image) * 255).astype(np.uint8)


def photo_panel(image: np.ndarray, side: int) -> np.ndarray:
    """The photo letterboxed into a side x side panel."""
    height, width = image.shape[:2]
    scale = side / max(height, width)
    resized = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    panel = np.zeros((side, side, 3), image.dtype)
    top, left = (side - resized.shape[0]) // 2, (side - resized.shape[1]) // 2
    panel[top:top + resized.shape[0], left:left + resized.shape[1]] = resized
    return panel


def show(path: Path, out: Path, resolution: int, settings: FitSettings) -> Path:
    model = load_face_model()
    photo = load_photo(path)
    fitted = fit(photo, detect(photo), model, settings)
    uv = unwrap(photo, fitted, model, resolution)
    prior = prior_albedo(uv, fitted, model)
    folder = out / path.stem
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for t, tile in enumerate(uv.tiles):
        maps = {"unwrapped": to_srgb8(uv.colour[t]), "visibility": to_srgb8(uv.visibility[t] ** 2.2),
                "prior_albedo": to_srgb8(prior.parametric[t]), "completed": to_srgb8(prior.completed[t]),
                "source": to_srgb8(SOURCE_COLOURS[prior.source[t]])}
        for name, image in maps.items():
            Image.fromarray(image).save(folder / f"{name}.{tile}.png")
        first = to_srgb8(photo_panel(photo.image_linear, resolution)) if t == 0 else np.zeros_like(maps["source"])
        rows.append(np.concatenate([first, *maps.values()], axis=1))
    sheet = out / f"{path.stem}.sheet.png"
    Image.fromarray(np.concatenate(rows, axis=0)).save(sheet)
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="+", type=Path, help="photos or folders of photos")
    parser.add_argument("--out", type=Path, default=Path("texture_sheets"))
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--landmark-fit", action="store_true", help="fit landmarks only (fast; no photometric stage)")
    args = parser.parse_args(argv)
    settings = FitSettings(photometric=not args.landmark_fit)
    failed = 0
    for path in photos_in(args.photos):
        try:
            print(show(path, args.out, args.resolution, settings))
        except FaceAlbedoError as error:
            failed += 1
            print(f"{path}: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
