"""Quality metrics for reconstructions: re-render fidelity, albedo completeness and seams, landmark
error, illumination invariance across lights, and set summaries.

Every image metric takes a boolean mask (the fitted face mask) and looks only inside it. Images are
(H, W, 3) float linear RGB in [0, 1]; UV maps follow values.py ((T, R, R, 3) stacked tiles, row 0 = v 1).
All functions are plain numpy (SSIM from scikit-image) and return Python floats or small dicts, so that
the results go straight into JSON.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
from skimage.metrics import structural_similarity

DATA_RANGE = 1.0
"""Images are linear RGB in [0, 1]."""

MIN_SSIM_SIDE = 7
"""scikit-image's default SSIM window (7 x 7) needs a crop at least this large on each side."""

SPREAD_EPS = 1e-4
"""Lower bound on a texel's mean value when dividing by it (black texels have no defined spread)."""


def _masked_pixels(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N, C) float64 values of `image` (H, W, C) where `mask` (H, W) is true."""
    if image.shape[:2] != mask.shape:
        raise ValueError(f"image {image.shape} and mask {mask.shape} differ in size")
    return np.asarray(image, np.float64)[mask]


def mse(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared error over masked pixels and channels; NaN when the mask is empty."""
    a, b = _masked_pixels(image, mask), _masked_pixels(reference, mask)
    return float(np.mean((a - b) ** 2)) if a.size else math.nan


def psnr(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB inside the mask (peak 1.0); +inf for identical images."""
    error = mse(image, reference, mask)
    if math.isnan(error):
        return math.nan
    return math.inf if error == 0 else 10.0 * math.log10(DATA_RANGE ** 2 / error)


def ssim(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """Mean structural similarity (Wang et al. 2004, 7x7 window) over the masked pixels.

    The SSIM map is computed on the mask's bounding box (pixels outside the mask but inside the box
    take part in the windows, as they do in the field's usual masked SSIM) and averaged inside the mask.
    """
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return math.nan
    top, bottom = rows.min(), rows.max() + 1
    left, right = cols.min(), cols.max() + 1
    # Grow tiny boxes to the window size so that scikit-image accepts them.
    grow_y = max(0, MIN_SSIM_SIDE - (bottom - top))
    grow_x = max(0, MIN_SSIM_SIDE - (right - left))
    top, left = max(0, top - grow_y), max(0, left - grow_x)
    bottom, right = min(mask.shape[0], bottom + grow_y), min(mask.shape[1], right + grow_x)
    box = (slice(top, bottom), slice(left, right))
    _, ssim_map = structural_similarity(
        np.asarray(image[box], np.float64), np.asarray(reference[box], np.float64),
        data_range=DATA_RANGE, channel_axis=-1, full=True)
    return float(ssim_map.mean(axis=-1)[mask[box]].mean())


def channel_gains(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(C,) least-squares gain g per channel that makes g * image closest to reference in the mask."""
    a, b = _masked_pixels(image, mask), _masked_pixels(reference, mask)
    energy = (a * a).sum(axis=0)
    return np.where(energy > 0, (a * b).sum(axis=0) / np.maximum(energy, 1e-300), 0.0)


def scale_invariant_mse(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """min over a per-channel gain g of mean((g * image - reference)^2) in the mask.

    Albedo and lighting are only defined up to a colour gain between them, so this error ignores any
    global white balance or exposure mismatch of the re-render and measures only its pattern.
    """
    gains = channel_gains(image, reference, mask)
    a, b = _masked_pixels(image, mask), _masked_pixels(reference, mask)
    return float(np.mean((a * gains - b) ** 2)) if a.size else math.nan


def rerender_metrics(rendered: np.ndarray, photo: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """PSNR (dB), SSIM and scale-invariant MSE of a re-render (albedo x shading) against the photo."""
    return {
        "psnr_db": psnr(rendered, photo, mask),
        "ssim": ssim(rendered, photo, mask),
        "si_mse": scale_invariant_mse(rendered, photo, mask),
    }


def error_heat_map(rendered: np.ndarray, photo: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W) float32 per-pixel RMS colour error in the mask, 0 outside (for the contact sheets)."""
    error = np.sqrt(np.mean((np.asarray(rendered, np.float32) - np.asarray(photo, np.float32)) ** 2, axis=-1))
    return np.where(mask, error, 0.0).astype(np.float32)


def filled_texels(albedo: np.ndarray) -> np.ndarray:
    """(..., R, R) bool: texels with a finite, non-black value (unseen texels of an unwrap are 0)."""
    finite = np.isfinite(albedo).all(axis=-1)
    return finite & (np.nan_to_num(albedo).max(axis=-1) > 0)


def completeness(albedo: np.ndarray, region: np.ndarray) -> float:
    """Share of the region's texels (e.g. UVTexture.coverage, (T, R, R)) that are filled and finite."""
    inside = region.sum()
    return float((filled_texels(albedo) & region).sum() / inside) if inside else math.nan


def symmetry_seam_strength(face_tile: np.ndarray, region: np.ndarray) -> float:
    """Mean colour step across the face tile's symmetry line over the mean step elsewhere (~1: no seam).

    The ICT face tile is mirror-symmetric about u = 0.5 (checked to 1e-6), so the line runs between
    columns R/2 - 1 and R/2. `face_tile` is (R, R, 3), `region` (R, R) bool the covered texels; steps
    are horizontal differences |A[:, j+1] - A[:, j]| (RMS over channels) where both texels are in the
    region and filled. A completion that pastes a mirrored half with a different level shows up as > 1.
    """
    size = face_tile.shape[1]
    if size % 2:
        raise ValueError(f"the face tile needs an even width to split at u = 0.5, got {size}")
    values = np.nan_to_num(np.asarray(face_tile, np.float64))
    valid = region & filled_texels(face_tile)
    steps = np.sqrt(np.mean(np.diff(values, axis=1) ** 2, axis=-1))  # (R, R-1)
    pair_valid = valid[:, 1:] & valid[:, :-1]
    line = np.zeros_like(pair_valid)
    line[:, size // 2 - 1] = True
    across, elsewhere = steps[pair_valid & line], steps[pair_valid & ~line]
    if across.size == 0 or elsewhere.size == 0 or elsewhere.mean() == 0:
        return math.nan
    return float(across.mean() / elsewhere.mean())


def landmark_nme(predicted: np.ndarray, ground_truth: np.ndarray) -> float:
    """Mean point error over sqrt(w * h) of the ground-truth points' bounding box (AFLW2000 protocol).

    `predicted` and `ground_truth` are (68, 2) pixel positions in the same image.
    """
    predicted, ground_truth = np.asarray(predicted, np.float64), np.asarray(ground_truth, np.float64)
    width, height = np.ptp(ground_truth[:, 0]), np.ptp(ground_truth[:, 1])
    error = np.linalg.norm(predicted - ground_truth, axis=1).mean()
    return float(error / math.sqrt(width * height))


def per_texel_spread(maps: np.ndarray, valid: np.ndarray, normalise_gain: bool = False) -> float:
    """Mean over valid texels of the spread std/mean of a texel's value across lights.

    `maps` (L, N, 3): the same N texels of one subject under L lights; `valid` (N,) bool: texels well
    visible under every light. The luminance (channel mean) is compared, so a colour cast of one light
    does not count twice (see `chromaticity_spread`). With `normalise_gain`, each light's map is first
    divided by its mean over the valid texels: then a global exposure change costs nothing and only
    the lighting pattern left in the map counts. A perfectly de-lit albedo gives 0.
    """
    luminance = np.asarray(maps, np.float64)[:, valid].mean(axis=-1)  # (L, N')
    if luminance.shape[1] == 0 or luminance.shape[0] < 2:
        return math.nan
    if normalise_gain:
        luminance = luminance / np.maximum(luminance.mean(axis=1, keepdims=True), SPREAD_EPS)
    spread = luminance.std(axis=0) / np.maximum(luminance.mean(axis=0), SPREAD_EPS)
    return float(spread.mean())


def chromaticity_spread(maps: np.ndarray, valid: np.ndarray) -> float:
    """Mean over valid texels of the std across lights of the chromaticity rgb / (r + g + b).

    Shapes as in `per_texel_spread`; the std is taken per chromaticity channel and averaged.
    """
    colours = np.asarray(maps, np.float64)[:, valid]  # (L, N', 3)
    if colours.shape[1] == 0 or colours.shape[0] < 2:
        return math.nan
    chroma = colours / np.maximum(colours.sum(axis=-1, keepdims=True), SPREAD_EPS)
    return float(chroma.std(axis=0).mean())


def summarise(values: Iterable[float]) -> dict[str, float | int]:
    """Median, mean, min, max and count of the values that are not NaN (+inf stays: identical images)."""
    array = np.asarray([float(v) for v in values], np.float64)
    known = array[~np.isnan(array)]
    summary: dict[str, float | int] = {"count": int(known.size)}
    if known.size:
        summary.update(median=float(np.median(known)), mean=float(known.mean()),
                       min=float(known.min()), max=float(known.max()))
    return summary


def summarise_records(records: Iterable[Mapping[str, float]]) -> dict[str, dict[str, float | int]]:
    """Summaries per key over a list of per-photo metric dicts (keys missing in a record are skipped)."""
    records = list(records)
    keys = sorted({key for record in records for key in record})
    return {key: summarise(record[key] for record in records if key in record) for key in keys}
