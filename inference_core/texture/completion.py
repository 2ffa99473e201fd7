"""Completion: a value for every texel of both skin tiles, without seams.

Three layers, from the most to the least trusted:
1. seen: the photo divided by the fitted shading (de-lit), weighted by visibility and by agreement
   with the parametric albedo (a de-lit colour several times off it is hair, a frame or a cast shadow);
2. mirrored: the same from the mirror texel (the UV layout is left/right symmetric, layout.mirror_texels);
3. the parametric prior albedo.
Each layer is laid over the one below by multi-band (Laplacian pyramid) blending with its confidence as
the mask, so low frequencies cross over smoothly and no seam shows. Texels off the mesh get values
pulled in from the covered ones (push-pull), so bilinear lookups across UV seams never meet black.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from inference_core.render.sh import shading
from inference_core.texture.layout import mirror_texels
from inference_core.texture.visibility import smoothstep
from inference_core.values import UVTexture

SOURCE_PRIOR, SOURCE_SEEN, SOURCE_MIRRORED = 0, 1, 2
"""Values of PriorAlbedo.source."""
SOURCE_CONFIDENCE = 0.5
"""A texel is labelled seen (or mirrored) where that layer's confidence reaches this."""
AGREEMENT_RATIO = (1.7, 2.8)
"""De-lit / parametric ratio (either way, the worst colour channel) where a seen texel's confidence falls
from 1 to 0: hair, clothing and frames differ from the skin prior by more than skin shades do."""
CHANNEL_FLOOR = 0.1
"""Channels darker than this fraction of the prior's brightest channel count as this dark when comparing:
in a deep orange skin the blue channel is near 0, and its ratio would be noise."""
MIN_SHADING_FRACTION = 0.1
"""Shading below this fraction of its median is too dark to divide by (confidence 0 there)."""
FULL_CONFIDENCE = 0.99
"""Seen texels at or above this confidence may keep the de-lit photo exactly, away from their region's edge."""
INTERIOR_FEATHER = 1 / 32
"""Width, as a share of the tile's side, of the band over which the exact de-lit photo fades in."""
COARSEST_BLEND_SIDE = 8
"""The Laplacian pyramid of the blend stops at about this many texels per side."""


def complete(uv: UVTexture, parametric: np.ndarray, sh_camera: np.ndarray,
             symmetry: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """((T, R, R, 3) completed albedo in [0, 1], (T, R, R) uint8 source) from the unwrapped photo.

    parametric: (T, R, R, 3) prior albedo; sh_camera: (9, 3) the light it was fitted with;
    symmetry: False leaves out the mirrored layer (unseen texels come from the prior alone).
    """
    delit, confidence = delit_texture(uv, parametric, sh_camera)
    mirrored, mirror_confidence = mirror_texels(delit), mirror_texels(confidence) * uv.coverage * symmetry
    completed = np.empty_like(parametric)
    for t in range(len(parametric)):
        base = multiband_blend(mirrored[t], parametric[t], mirror_confidence[t])
        merged = multiband_blend(delit[t], base, confidence[t])
        interior = confident_interior(confidence[t])[..., None]
        merged = interior * delit[t] + (1 - interior) * merged
        completed[t] = push_pull_fill(merged, uv.coverage[t].astype(np.float32))
    source = np.full(confidence.shape, SOURCE_PRIOR, np.uint8)
    source[mirror_confidence >= SOURCE_CONFIDENCE] = SOURCE_MIRRORED
    source[confidence >= SOURCE_CONFIDENCE] = SOURCE_SEEN
    source[~uv.coverage] = SOURCE_PRIOR
    return np.clip(np.nan_to_num(completed), 0.0, 1.0).astype(np.float32), source


def delit_texture(uv: UVTexture, parametric: np.ndarray, sh_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, R, R, 3) photo / shading where seen (0 elsewhere) and (T, R, R) its confidence in [0, 1]."""
    seen = np.nonzero(uv.visibility.reshape(-1) > 0)[0]
    delit = np.zeros((uv.visibility.size, 3), np.float32)
    confidence = np.zeros(uv.visibility.size, np.float32)
    if len(seen):
        normals = torch.from_numpy(uv.normals_camera.reshape(-1, 3)[seen])
        shade = shading(normals, torch.from_numpy(np.asarray(sh_camera, np.float32))).numpy()
        luminance = shade.mean(-1)
        floor = MIN_SHADING_FRACTION * max(float(np.median(luminance)), 1e-6)
        values = uv.colour.reshape(-1, 3)[seen] / np.maximum(shade, floor)
        prior = parametric.reshape(-1, 3)[seen]
        dark = np.maximum(CHANNEL_FLOOR * prior.max(-1, keepdims=True), 1e-4)
        log_ratio = np.abs(np.log(np.maximum(values, dark) / np.maximum(prior, dark))).max(-1)
        lit_enough = luminance > floor
        delit[seen] = np.where(lit_enough[:, None], values, 0.0)
        confidence[seen] = uv.visibility.reshape(-1)[seen] * lit_enough * agreement(log_ratio)
    return delit.reshape(uv.colour.shape), confidence.reshape(uv.visibility.shape)


def confident_interior(confidence: np.ndarray) -> np.ndarray:
    """(R, R) weight in [0, 1]: 1 inside regions of full confidence, falling to 0 over INTERIOR_FEATHER of
    the tile's side towards their edges.

    The multiband blend lets the coarse levels of the layers below cross into the seen region, which is
    what hides seams at its edges but also shifts the colours deep inside it, where the photo needs no
    help. The de-lit photo is restored there, faded in over a band wide enough to show no step.
    """
    feather = max(2, int(round(INTERIOR_FEATHER * confidence.shape[0])))
    confident = (confidence >= FULL_CONFIDENCE).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * feather + 1, 2 * feather + 1))
    core = cv2.erode(confident, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(np.float32)
    faded = cv2.blur(core, (2 * feather + 1, 2 * feather + 1), borderType=cv2.BORDER_CONSTANT)
    return np.clip(faded, 0.0, 1.0) * confident


def agreement(log_ratio: np.ndarray) -> np.ndarray:
    """1 while |log ratio| is within log AGREEMENT_RATIO[0], smoothly 0 beyond log AGREEMENT_RATIO[1]."""
    low, high = np.log(AGREEMENT_RATIO)
    return 1.0 - smoothstep(low, high, log_ratio)


def _levels(size: int) -> int:
    return max(1, int(np.log2(max(size, 1) / COARSEST_BLEND_SIDE)))


def laplacian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Band-pass levels (finest first) and the coarse residual last; they sum back to `image`."""
    gaussian = [image]
    for _ in range(levels):
        gaussian.append(cv2.pyrDown(gaussian[-1]))
    bands = [fine - cv2.pyrUp(coarse, dstsize=fine.shape[1::-1]) for fine, coarse in zip(gaussian, gaussian[1:])]
    return bands + [gaussian[-1]]


def collapse(pyramid: list[np.ndarray]) -> np.ndarray:
    """Inverse of `laplacian_pyramid`."""
    image = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        image = cv2.pyrUp(image, dstsize=band.shape[1::-1]) + band
    return image


def multiband_blend(foreground: np.ndarray, background: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W, C) foreground over background by Laplacian-pyramid blending with a (H, W) mask in [0, 1].

    Where the mask is 0 the foreground is undefined: it is first filled with the background there, so
    that its coarse levels carry no dark halo into the blend.
    """
    mask = np.clip(mask, 0.0, 1.0).astype(np.float32)
    filled = np.where(mask[..., None] > 0, foreground, background).astype(np.float32)
    levels = _levels(min(mask.shape))
    masks = [mask]
    for _ in range(levels):
        masks.append(cv2.pyrDown(masks[-1]))
    blended = [m[..., None] * f + (1 - m[..., None]) * b for m, f, b in
               zip(masks, laplacian_pyramid(filled, levels), laplacian_pyramid(background.astype(np.float32), levels))]
    return collapse(blended)


def push_pull_fill(image: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(H, W, C) image whose zero-weight texels are filled from the weighted ones nearby (push-pull).

    Texels with weight 1 keep their value; the others get a smooth extrapolation: the weighted image is
    pulled down a pyramid, holes are filled from coarser levels, and pushed back up.
    """
    weight = np.clip(weight, 0.0, 1.0).astype(np.float32)
    if weight.min() >= 1.0 or weight.max() <= 0.0 or min(weight.shape) <= 1:
        return image  # nothing to fill, nothing to fill from, or no coarser level to pull from
    small_size = ((weight.shape[1] + 1) // 2, (weight.shape[0] + 1) // 2)
    weighted_small = cv2.resize(image * weight[..., None], small_size, interpolation=cv2.INTER_AREA)
    weight_small = cv2.resize(weight, small_size, interpolation=cv2.INTER_AREA)
    coarse = weighted_small / np.maximum(weight_small, 1e-8)[..., None]
    coarse = push_pull_fill(coarse.reshape(*weight_small.shape, -1), np.clip(weight_small * 4.0, 0.0, 1.0))
    upsampled = cv2.resize(coarse, image.shape[1::-1], interpolation=cv2.INTER_LINEAR).reshape(image.shape)
    return weight[..., None] * image + (1 - weight[..., None]) * upsampled
