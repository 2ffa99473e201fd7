"""Image files of the result: sRGB-encoded PNGs of linear maps, masks, and Radiance HDR.

The sRGB transfer function is `photo.linear_to_srgb` (the one place it is written).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from inference_core.photo import linear_to_srgb

PNG_COMPRESSION = 3
"""zlib level for PNGs: 3 writes a 1024^2 RGB tile in ~50 ms at ~5% more bytes than level 9."""


def _imwrite(path: Path, image_bgr: np.ndarray, params: list[int] | None = None) -> None:
    """cv2.imwrite that raises OSError (cv2 only returns False) so that callers see disk errors."""
    ext = Path(path).suffix
    ok, data = cv2.imencode(ext, image_bgr, params or [])
    if not ok:
        raise OSError(f"could not encode {path}")
    with open(path, "wb") as file:
        file.write(data.tobytes())


def to_srgb8(linear: np.ndarray) -> np.ndarray:
    """(..., 3) linear RGB in [0, 1] -> uint8 sRGB codes."""
    return np.round(linear_to_srgb(np.asarray(linear, np.float32)) * 255.0).astype(np.uint8)


def write_srgb_png(path: Path, linear: np.ndarray, bits: int = 8) -> None:
    """Write (H, W, 3) linear RGB (clipped to [0, 1]) as an sRGB-encoded 8- or 16-bit PNG."""
    if bits == 8:
        codes = to_srgb8(linear)
    elif bits == 16:
        codes = np.round(linear_to_srgb(np.asarray(linear, np.float32)) * 65535.0).astype(np.uint16)
    else:
        raise ValueError(f"bits must be 8 or 16, not {bits}")
    _imwrite(path, np.ascontiguousarray(codes[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])


def write_gray_png(path: Path, values: np.ndarray) -> None:
    """Write (H, W) values in [0, 1] (masks, confidences) as an 8-bit grey PNG, no transfer curve."""
    codes = np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
    _imwrite(path, codes, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])


def write_hdr(path: Path, linear: np.ndarray) -> None:
    """Write (H, W, 3) linear RGB radiance (non-negative) as a Radiance RGBE .hdr file."""
    image = np.clip(np.asarray(linear, np.float32), 0.0, None)
    _imwrite(path, np.ascontiguousarray(image[..., ::-1]))


def read_srgb_png(path: Path) -> np.ndarray:
    """(H, W, 3) float32 linear RGB of an sRGB PNG written by `write_srgb_png` (for tests and tools)."""
    from inference_core.photo import srgb_to_linear

    codes = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if codes is None:
        raise OSError(f"cannot read {path}")
    scale = 65535.0 if codes.dtype == np.uint16 else 255.0
    return srgb_to_linear(codes[..., ::-1].astype(np.float32) / scale)
