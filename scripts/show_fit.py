"""Fit the dev photos and save, per photo, a PNG for looking: photo | re-rendered face over it | inlier weights.

    .venv/bin/python scripts/show_fit.py OUT_DIR [PHOTO ...]    (default: every photo in faces/photos/)

The middle panel shows the fitted skin (region albedo x SH shading) over the photo, the detected
landmarks (green) and the fitted model's landmarks (red, jaw on the silhouette); the right panel the
robust photometric weights (black = outlier, e.g. hair or glasses).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from inference_core.assets import asset_roots  # noqa: E402
from inference_core.errors import FaceAlbedoError  # noqa: E402
from inference_core.facemodel import load_face_model  # noqa: E402
from inference_core.fitting import fit  # noqa: E402
from inference_core.fitting.rendering import render_fit  # noqa: E402
from inference_core.photo import linear_to_srgb, load_photo  # noqa: E402
from inference_core.landmarks import detect  # noqa: E402

PANEL_HEIGHT = 384
FACE_WINDOW = 1.8
"""Side of the shown square around the face, in units of the landmark box's longer side."""


def dev_photos() -> list[Path]:
    """The dev photos: every JPEG/PNG under faces/photos/ of the first assets folder that has them."""
    for root in asset_roots():
        folder = root / "faces" / "photos"
        if folder.is_dir():
            return sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    return []


def _to_bgr8(linear: np.ndarray) -> np.ndarray:
    return cv2.cvtColor((linear_to_srgb(np.clip(linear, 0, 1)) * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)


def _draw_points(image: np.ndarray, points: np.ndarray, colour: tuple[int, int, int], radius: int) -> None:
    for x, y in np.round(points).astype(int):
        cv2.circle(image, (int(x), int(y)), radius, colour, -1, lineType=cv2.LINE_AA)


def face_window(points: np.ndarray, image_size: tuple[int, int]) -> tuple[slice, slice]:
    """(rows, cols) of a square around the landmarks, FACE_WINDOW x their box, clipped to the image."""
    centre = (points.min(0) + points.max(0)) / 2
    half = FACE_WINDOW * np.ptp(points, axis=0).max() / 2
    x0, y0 = np.maximum(np.floor(centre - half).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(centre + half).astype(int), image_size)
    return slice(y0, y1), slice(x0, x1)


def overlay(photo_linear: np.ndarray, rendered: np.ndarray, mask: np.ndarray, detected: np.ndarray,
            fitted: np.ndarray, inlier_weight: np.ndarray) -> np.ndarray:
    """The three panels side by side, cut to the face and scaled to PANEL_HEIGHT."""
    rows, cols = face_window(detected, (photo_linear.shape[1], photo_linear.shape[0]))
    offset = np.array([cols.start, rows.start])
    photo_linear, rendered, mask, inlier_weight = (a[rows, cols] for a in (photo_linear, rendered, mask, inlier_weight))
    detected, fitted = detected - offset, fitted - offset
    blend = photo_linear.copy()
    blend[mask] = 0.25 * photo_linear[mask] + 0.75 * rendered[mask]
    left, middle = _to_bgr8(photo_linear), _to_bgr8(blend)
    radius = max(1, round(photo_linear.shape[0] / 150))
    _draw_points(middle, detected, (0, 255, 0), radius)
    _draw_points(middle, fitted, (0, 0, 255), radius)
    right = cv2.cvtColor((np.clip(inlier_weight, 0, 1) * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    right[~mask] //= 3
    right[~mask] += (_to_bgr8(photo_linear)[~mask] // 3)
    panels = np.concatenate([left, middle, right], axis=1)
    scale = PANEL_HEIGHT / panels.shape[0]
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
    return cv2.resize(panels, None, fx=scale, fy=scale, interpolation=interpolation)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the PNGs")
    parser.add_argument("photos", type=Path, nargs="*", help="photos (default: the dev photos)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    model = load_face_model()
    for path in args.photos or dev_photos():
        try:
            photo = load_photo(path)
            landmarks = detect(photo)
            start = time.perf_counter()
            result = fit(photo, landmarks, model)
            seconds = time.perf_counter() - start
        except FaceAlbedoError as error:
            print(f"{path.name}: {error}")
            continue
        rendered, mask = render_fit(result, model)
        panels = overlay(photo.image_linear, rendered, mask, landmarks.points, result.landmarks_2d,
                         result.inlier_weight)
        target = args.out / f"{path.parent.name}_{path.stem}.png"
        cv2.imwrite(str(target), panels)
        history = result.history.get("photometric", [float("nan")])
        print(f"{path.name}: {seconds:.1f} s, landmark NME {result.residuals['landmark_nme']:.4f}, "
              f"photometric {history[0]:.3f} -> {history[-1]:.3f}, "
              f"inliers {result.residuals.get('inlier_fraction', float('nan')):.2f} -> {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
