"""Loading photos: any common file in, an upright linear-RGB `Photo` out.

Decoding is Pillow's (JPEG, PNG, WebP, TIFF, BMP, PGM/PPM, GIF first frame, ...), with OpenCV only for
16-bit colour PNG/TIFF, which Pillow truncates to 8 bits. Every photo is turned upright by its EXIF
orientation, converted to sRGB (ICC profile when present, CMYK included), composited on neutral grey when
it has an alpha channel, and decoded to *linear* RGB float32.

Two resolutions come out (see `values.Photo`):
- `texture_linear`: long side at most TEXTURE_MAX_SIDE, for sampling the face texture;
- `image_linear`: long side at most PROCESSING_MAX_SIDE, for detection and fitting.
Downscaling is area filtering (OpenCV INTER_AREA) in linear light. Large JPEGs are decoded at a reduced
DCT scale when that still leaves at least the texture resolution, so a 40-megapixel photo loads in a few
hundred MB.

This module is THE place of the sRGB transfer function (`srgb_to_linear`, `linear_to_srgb`).
"""
from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
from PIL import ExifTags, Image, ImageCms, UnidentifiedImageError

from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.values import Photo

PROCESSING_MAX_SIDE = 2048
"""Long side, pixels, of `Photo.image_linear`: what detection and fitting see."""
TEXTURE_MAX_SIDE = 4096
"""Long side, pixels, of `Photo.texture_linear`: the most detail the texture can take from the photo."""
MIN_PHOTO_SIDE = 32
"""Photos with a shorter side than this (pixels) cannot hold a usable face and are refused."""
NEUTRAL_GREY_LINEAR = 0.2140411
"""Background for transparent pixels: sRGB 0.5 (8-bit 128) in linear light."""
LUMINANCE = (0.2126, 0.7152, 0.0722)
"""Rec. 709 weights of linear R, G, B in luminance: the one definition of brightness the stages share."""
SUPPORTED_FORMATS = "JPEG, PNG, WebP, TIFF, BMP, PGM/PPM or GIF"

ArrayLike = TypeVar("ArrayLike")  # numpy array or torch tensor


def srgb_to_linear(srgb: ArrayLike) -> ArrayLike:
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1). numpy arrays or torch tensors."""
    srgb = _as_float_array(srgb).clip(0.0, 1.0)
    low = srgb / 12.92
    high = ((srgb + 0.055) / 1.055) ** 2.4
    return _select(srgb <= 0.04045, low, high)


def linear_to_srgb(linear: ArrayLike) -> ArrayLike:
    """Linear light in [0, 1] -> sRGB-encoded values (IEC 61966-2-1). numpy arrays or torch tensors.

    The power branch is evaluated on values clipped to its own domain, so torch gradients stay finite at 0.
    """
    linear = _as_float_array(linear).clip(0.0, 1.0)
    low = linear * 12.92
    high = 1.055 * linear.clip(0.0031308, 1.0) ** (1.0 / 2.4) - 0.055
    return _select(linear <= 0.0031308, low, high)


def _as_float_array(values):
    """Torch tensors as they are; anything else as a floating numpy array (float32 stays float32)."""
    if type(values).__module__.startswith("torch"):
        return values
    values = np.asarray(values)
    return values if np.issubdtype(values.dtype, np.floating) else values.astype(np.float64)


def _select(condition, if_true, if_false):
    """Element-wise choice that works on numpy arrays and torch tensors alike (keeps torch gradients)."""
    if isinstance(if_true, (np.ndarray, np.generic)):
        return np.where(condition, if_true, if_false).astype(if_true.dtype, copy=False)
    return if_true.where(condition, if_false)


@functools.lru_cache(maxsize=2)
def _linear_lookup(max_value: int) -> np.ndarray:
    """(max_value + 1,) float32 table: integer sRGB code -> linear value."""
    return srgb_to_linear(np.arange(max_value + 1, dtype=np.float64) / max_value).astype(np.float32)


def load_photo(path: str | Path) -> Photo:
    """Read a photo file into an upright, linear-RGB `Photo` (UNREADABLE_IMAGE if it cannot be used)."""
    path = Path(path).expanduser()
    _check_file(path)
    pixels, max_value, original_size = _decode_upright(path)
    return photo_from_pixels(pixels, max_value, path=path, original_size=original_size)


def load_example(name: str = "astronaut") -> Photo:
    """A public-domain example portrait shipped with scikit-image (only "astronaut": NASA, 512 x 512)."""
    if name != "astronaut":
        raise FaceAlbedoError(ErrorCode.USAGE, f"unknown example {name!r}; the only example is 'astronaut'")
    from skimage import data  # imported here: scikit-image is slow to import and only needed for this

    return photo_from_pixels(data.astronaut(), 255)


def photo_from_pixels(pixels: np.ndarray, max_value: int, path: Path | None = None,
                      original_size: tuple[int, int] | None = None) -> Photo:
    """Build a `Photo` from upright sRGB integer pixels.

    pixels: (H, W) or (H, W, C) uint8/uint16 with C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA;
    max_value: the code of full intensity (255 or 65535);
    original_size: (width, height) of the upright file when `pixels` were decoded at a reduced scale.
    When no downscaling is needed, `image_linear` and `texture_linear` are the same array: never modify
    a Photo's arrays in place.
    """
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    height, width = pixels.shape[:2]
    where = f"{path}" if path else "the image"
    if min(width, height) < MIN_PHOTO_SIDE:
        raise FaceAlbedoError(
            ErrorCode.UNREADABLE_IMAGE,
            f"{where} is only {width} x {height} pixels; use a photo at least {MIN_PHOTO_SIDE} pixels on each "
            "side (a face should span 100 pixels or more)",
        )
    texture_size = fit_within((width, height), TEXTURE_MAX_SIDE)
    texture = _linear_rgb(pixels, max_value, texture_size)
    image = resize_area(texture, fit_within(texture_size, PROCESSING_MAX_SIDE))
    return Photo(image_linear=image, texture_linear=texture, original_size=original_size or (width, height),
                 path=path)


def fit_within(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(width, height) scaled down (never up) so that the long side is at most `max_side`."""
    width, height = size
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_area(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Downscale (H, W[, C]) float32 to `size` = (width, height) by area averaging; same array if equal."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _linear_rgb(pixels: np.ndarray, max_value: int, size: tuple[int, int]) -> np.ndarray:
    """(H2, W2, 3) float32 linear RGB at `size`: channels decoded one by one to bound memory, alpha over grey."""
    lookup = _linear_lookup(max_value)
    n_channels = pixels.shape[2]
    colour_channels = 1 if n_channels <= 2 else 3
    colour = np.stack([resize_area(lookup[pixels[:, :, c]], size) for c in range(colour_channels)], axis=-1)
    if n_channels in (2, 4):  # alpha is coverage: average it like the colours, blend in linear light
        alpha = resize_area(pixels[:, :, -1].astype(np.float32) / max_value, size)[:, :, None]
        colour = colour * alpha + NEUTRAL_GREY_LINEAR * (1.0 - alpha)
    if colour_channels == 1:
        colour = np.repeat(colour, 3, axis=2)
    return np.ascontiguousarray(colour, dtype=np.float32)


def _check_file(path: Path) -> None:
    """Refuse, with a message that says why, what is not a non-empty readable file."""
    if not path.exists():
        problem = "does not exist; check the path"
    elif path.is_dir():
        problem = "is a folder; give a photo file (or use `facealbedo batch` for a folder)"
    elif path.stat().st_size == 0:
        problem = "is an empty file; copy the photo again"
    else:
        return
    raise FaceAlbedoError(ErrorCode.UNREADABLE_IMAGE, f"{path} {problem}")


def _decode_upright(path: Path) -> tuple[np.ndarray, int, tuple[int, int]]:
    """The first frame as (H, W, C) uint8/uint16 sRGB pixels, EXIF orientation applied; full-intensity
    code; (width, height) of the upright file (the pixels may be smaller: see `_reduce_jpeg_decode`)."""
    try:
        with Image.open(path) as image:
            is_16bit_colour = _is_16bit_colour(image)  # before anything loads the image and drops `tile`
            orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
            width, height = image.size
            if is_16bit_colour:
                pixels, max_value = _decode_16bit_colour(path), 65535
            else:
                _reduce_jpeg_decode(image)
                pixels, max_value = _pixels_of(image)
    except FaceAlbedoError:
        raise
    except Image.DecompressionBombError as exc:
        raise FaceAlbedoError(
            ErrorCode.UNREADABLE_IMAGE,
            f"{path} is too large to decode safely ({exc}); downscale it to under 100 megapixels and retry",
        ) from exc
    except UnidentifiedImageError as exc:
        raise _unreadable(path, f"not an image in a known format ({exc})") from exc
    except (OSError, ValueError, SyntaxError, EOFError, IndexError) as exc:
        raise _unreadable(path, f"damaged or truncated image ({exc})") from exc
    upright_size = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    return _apply_orientation(pixels, orientation), max_value, upright_size


def _unreadable(path: Path, why: str) -> FaceAlbedoError:
    return FaceAlbedoError(
        ErrorCode.UNREADABLE_IMAGE,
        f"cannot read {path}: {why}; save it again as {SUPPORTED_FORMATS} and retry",
    )


def _is_16bit_colour(image: Image.Image) -> bool:
    """True for 16-bit-per-channel colour files, which Pillow would truncate to 8 bits."""
    if image.mode not in ("RGB", "RGBA") or not image.tile:
        return False
    args = image.tile[0].args
    rawmode = args[0] if isinstance(args, tuple) else args
    return isinstance(rawmode, str) and ";16" in rawmode


def _decode_16bit_colour(path: Path) -> np.ndarray:
    """(H, W, 3|4) uint16 RGB(A) through OpenCV (reads the bytes itself, so unicode paths work)."""
    decoded = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.dtype != np.uint16 or decoded.ndim != 3:
        raise OSError("16-bit colour data could not be decoded")
    order = [2, 1, 0, 3][: decoded.shape[2]]  # BGR(A) -> RGB(A)
    return decoded[:, :, order]


def _reduce_jpeg_decode(image: Image.Image) -> None:
    """Let libjpeg decode a big JPEG at 1/2, 1/4 or 1/8 scale while it stays >= the texture resolution."""
    if image.format == "JPEG" and max(image.size) > TEXTURE_MAX_SIDE:
        image.draft(image.mode, fit_within(image.size, TEXTURE_MAX_SIDE))


def _pixels_of(image: Image.Image) -> tuple[np.ndarray, int]:
    """Pillow image of any mode -> (H, W, C) uint8/uint16 sRGB pixels and the full-intensity code."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return np.asarray(image).clip(0, 65535).astype(np.uint16), 65535
    if mode == "F":
        values = np.asarray(image, dtype=np.float32)
        scale = 1.0 if values.max(initial=0.0) <= 1.0 else 1.0 / 255.0
        return (values * scale * 65535).clip(0, 65535).astype(np.uint16), 65535
    if mode in ("P", "PA"):
        image = image.convert("RGBA" if mode == "PA" or "transparency" in image.info else "RGB")
    elif mode in ("RGB", "CMYK"):
        image = _to_srgb(image)
    elif mode == "1":
        image = image.convert("L")
    elif mode in ("La", "RGBa"):
        image = image.convert(mode.upper())
    elif mode not in ("L", "LA", "RGBA"):
        image = image.convert("RGB")  # YCbCr, LAB, HSV, RGBX, ...
    return np.asarray(image), 255


def _to_srgb(image: Image.Image) -> Image.Image:
    """RGB or CMYK -> sRGB RGB, through the embedded ICC profile when there is one that LittleCMS accepts."""
    icc = image.info.get("icc_profile")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: fall back to treating the values as sRGB
    return image.convert("RGB") if image.mode != "RGB" else image


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn (H, W, ...) pixels upright for an EXIF orientation (1-8), as Pillow's `exif_transpose` does."""
    transposed = pixels.swapaxes(0, 1)
    upright = {
        2: pixels[:, ::-1],  # mirrored left-right
        3: pixels[::-1, ::-1],  # upside down
        4: pixels[::-1],  # mirrored top-bottom
        5: transposed,  # mirrored along the main diagonal
        6: transposed[:, ::-1],  # turned 90 degrees counter-clockwise: turn it clockwise
        7: transposed[::-1, ::-1],  # mirrored along the anti-diagonal
        8: transposed[::-1],  # turned 90 degrees clockwise: turn it counter-clockwise
    }.get(int(orientation) if isinstance(orientation, int) else 1, pixels)
    return np.ascontiguousarray(upright)
