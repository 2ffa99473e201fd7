"""Sampling images of the photo at continuous pixel positions: bilinear, mip-mapped (trilinear), taps.

Pixel centres sit at integer coordinates (values.py). Point lists are (N, 2) arrays of (x, y).
"""
from __future__ import annotations

import cv2
import numpy as np

MIN_PYRAMID_SIDE = 8
"""The pyramid stops before a level's shorter side falls below this many pixels."""


def bilinear_taps(pixels: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 4 neighbouring pixel centres of each point: (N, 4) x, (N, 4) y (clamped), (N, 4) weights.

    Taps outside the image get weight 0, so a point's weights sum to its share inside the image.
    """
    width, height = size
    pixels = np.asarray(pixels, np.float32)
    x0 = np.floor(pixels[:, 0]).astype(np.int32)
    y0 = np.floor(pixels[:, 1]).astype(np.int32)
    fx = pixels[:, 0] - x0
    fy = pixels[:, 1] - y0
    xs = np.stack([x0, x0 + 1, x0, x0 + 1], 1)
    ys = np.stack([y0, y0, y0 + 1, y0 + 1], 1)
    weights = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], 1)
    inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
    return np.clip(xs, 0, width - 1), np.clip(ys, 0, height - 1), np.where(inside, weights, np.float32(0.0))


def gaussian_pyramid(image: np.ndarray) -> list[np.ndarray]:
    """Levels 0.. of (H, W, C) float32 images, each Gaussian-blurred and halved (cv2.pyrDown).

    pyrDown keeps every second pixel of the blurred image, so pixel x of level k sits at x * 2**k of level 0.
    """
    levels = [np.ascontiguousarray(image, dtype=np.float32)]
    while min(levels[-1].shape[:2]) // 2 >= MIN_PYRAMID_SIDE:
        levels.append(cv2.pyrDown(levels[-1]))
    return levels


REMAP_ROW = 4096
"""cv2.remap takes maps below 32767 pixels a side, so point lists are folded into rows of this length."""


def bilinear(image: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """(N, C) bilinear samples of (H, W, C) float32 `image` at (N, 2) pixel positions (x, y), border clamped."""
    count = len(pixels)
    rows = max(1, -(-count // REMAP_ROW))
    maps = np.zeros((rows * REMAP_ROW, 2), np.float32)
    maps[:count] = pixels
    maps = maps.reshape(rows, REMAP_ROW, 2)
    sampled = cv2.remap(np.ascontiguousarray(image, np.float32), maps[..., 0], maps[..., 1], cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
    return sampled.reshape(rows * REMAP_ROW, -1)[:count]


def sample_trilinear(pyramid: list[np.ndarray], pixels: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """(N, C) colours at level-0 `pixels`, blending the two pyramid levels around log2(footprint).

    A footprint of at most one pixel samples level 0 bilinearly.
    """
    lod = np.clip(np.log2(np.maximum(footprint, 1.0)), 0.0, len(pyramid) - 1.0)
    lower = np.floor(lod).astype(np.int64)
    blend = (lod - lower)[:, None]
    result = np.zeros((len(pixels), pyramid[0].shape[2]), np.float64)
    for level in np.unique(lower):
        rows = np.nonzero(lower == level)[0]
        here = bilinear(pyramid[level], pixels[rows] / 2.0 ** level)
        upper = min(level + 1, len(pyramid) - 1)
        above = bilinear(pyramid[upper], pixels[rows] / 2.0 ** upper)
        result[rows] = here * (1 - blend[rows]) + above * blend[rows]
    return result
