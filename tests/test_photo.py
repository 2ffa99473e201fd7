"""Photo loading: every format and oddity of the issue, generated in tmp_path, and the real photos."""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.photo import (
    NEUTRAL_GREY_LINEAR,
    PROCESSING_MAX_SIDE,
    TEXTURE_MAX_SIDE,
    linear_to_srgb,
    load_example,
    load_photo,
    srgb_to_linear,
)


@pytest.fixture(scope="module")
def astronaut_srgb() -> np.ndarray:
    from skimage import data

    return data.astronaut()  # (512, 512, 3) uint8


def linear_of(srgb8: np.ndarray) -> np.ndarray:
    return srgb_to_linear(srgb8.astype(np.float64) / 255.0)


def assert_unreadable(path: Path, *words: str) -> None:
    with pytest.raises(FaceAlbedoError) as caught:
        load_photo(path)
    assert caught.value.code is ErrorCode.UNREADABLE_IMAGE
    for word in words:
        assert word in caught.value.message


def test_transfer_function_round_trip_and_reference_values():
    codes = np.linspace(0.0, 1.0, 257)
    assert np.allclose(linear_to_srgb(srgb_to_linear(codes)), codes, atol=1e-12)
    assert srgb_to_linear(np.array([0.5]))[0] == pytest.approx(0.2140411, abs=1e-6)
    assert NEUTRAL_GREY_LINEAR == pytest.approx(srgb_to_linear(np.array([0.5]))[0], abs=1e-6)


def test_transfer_function_works_on_torch_with_finite_gradients():
    torch = pytest.importorskip("torch")
    linear = torch.linspace(0.0, 1.0, 11, dtype=torch.float64, requires_grad=True)
    srgb = linear_to_srgb(linear)
    srgb.sum().backward()
    assert torch.isfinite(linear.grad).all()
    assert np.allclose(srgb.detach().numpy(), linear_to_srgb(linear.detach().numpy()))


@pytest.mark.parametrize("suffix, options", [
    (".png", {}), (".bmp", {}), (".tif", {}), (".webp", {"lossless": True}), (".gif", {}),
])
def test_lossless_formats_decode_to_the_same_linear_pixels(tmp_path, astronaut_srgb, suffix, options):
    path = tmp_path / f"face{suffix}"
    image = Image.fromarray(astronaut_srgb)
    if suffix == ".gif":  # GIF is paletted: compare with its own palette colours
        image = image.quantize(colors=256)
        image.save(path)
        expected = np.asarray(image.convert("RGB"))
    else:
        image.save(path, **options)
        expected = astronaut_srgb
    photo = load_photo(path)
    assert photo.image_linear.shape == (512, 512, 3) and photo.image_linear.dtype == np.float32
    assert np.allclose(photo.image_linear, linear_of(expected), atol=1e-6)


def test_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("L", (64, 48), value) for value in (200, 30)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    photo = load_photo(tmp_path / "anim.gif")
    assert np.allclose(photo.image_linear, linear_of(np.array(200)), atol=1e-6)


def test_grayscale_pgm_8_and_16_bit(tmp_path):
    ramp = np.tile(np.arange(64, dtype=np.uint16), (40, 1))
    Image.fromarray((ramp * 4).astype(np.uint8)).save(tmp_path / "grey8.pgm")
    cv2.imwrite(str(tmp_path / "grey16.pgm"), ramp * 1024)
    grey8 = load_photo(tmp_path / "grey8.pgm").image_linear
    grey16 = load_photo(tmp_path / "grey16.pgm").image_linear
    assert np.allclose(grey8[:, :, 0], grey8[:, :, 2]) and grey8.shape == (40, 64, 3)
    assert np.allclose(grey8[:, :, 0], linear_of((ramp * 4).astype(np.uint8)), atol=1e-6)
    assert np.allclose(grey16[:, :, 1], srgb_to_linear(ramp * 1024 / 65535.0), atol=1e-6)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_colour_keeps_its_precision(tmp_path, suffix):
    rng = np.random.default_rng(0)
    rgb16 = rng.integers(0, 65536, size=(48, 64, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / f"deep{suffix}"), rgb16[:, :, ::-1])  # OpenCV writes BGR
    photo = load_photo(tmp_path / f"deep{suffix}")
    expected = srgb_to_linear(rgb16 / 65535.0)
    # 8-bit truncation would be off by up to ~1/255 in sRGB; 16-bit decoding is exact to float32.
    assert np.abs(photo.image_linear - expected).max() < 1e-5


def test_rgba_png_is_composited_on_neutral_grey(tmp_path):
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[:, :30] = (255, 0, 0, 255)  # opaque red
    rgba[:, 30:] = (0, 255, 0, 0)  # fully transparent green
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cutout.png")
    photo = load_photo(tmp_path / "cutout.png")
    assert np.allclose(photo.image_linear[:, :30], [1.0, 0.0, 0.0], atol=1e-6)
    assert np.allclose(photo.image_linear[:, 30:], NEUTRAL_GREY_LINEAR, atol=1e-6)


def test_cmyk_jpeg_becomes_rgb(tmp_path, astronaut_srgb):
    Image.fromarray(astronaut_srgb).convert("CMYK").save(tmp_path / "print.jpg", quality=95)
    photo = load_photo(tmp_path / "print.jpg")
    reference = linear_of(astronaut_srgb)
    assert photo.image_linear.shape == reference.shape
    assert np.abs(photo.image_linear - reference).mean() < 0.02


def test_icc_tagged_and_broken_profiles(tmp_path):
    grey = Image.new("RGB", (40, 40), (128, 128, 128))
    grey.save(tmp_path / "srgb.png", icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    grey.save(tmp_path / "broken.png", icc_profile=b"not a colour profile")
    for name in ("srgb.png", "broken.png"):  # converted through sRGB, or read as sRGB: the same grey
        assert np.allclose(load_photo(tmp_path / name).image_linear, NEUTRAL_GREY_LINEAR, atol=2e-3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    pixels = (rng.integers(0, 8, size=(40, 56, 3)) * 32).astype(np.uint8)  # coarse, survives JPEG
    pixels = cv2.resize(pixels, (56 * 2, 40 * 2), interpolation=cv2.INTER_NEAREST)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=100)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    photo = load_photo(path)
    assert photo.image_linear.shape == expected.shape
    assert photo.original_size == (expected.shape[1], expected.shape[0])
    assert np.allclose(photo.image_linear, linear_of(expected), atol=1e-6)


def test_unicode_path(tmp_path, astronaut_srgb):
    path = tmp_path / "фото лица 写真 ü.jpg"
    Image.fromarray(astronaut_srgb).save(path)
    assert load_photo(path).path == path


def test_40_megapixel_photo_is_downscaled_not_refused(tmp_path, astronaut_srgb):
    big = cv2.resize(astronaut_srgb, (7300, 5480), interpolation=cv2.INTER_LINEAR)
    path = tmp_path / "40mp.jpg"
    Image.fromarray(big).save(path, quality=80)
    del big
    photo = load_photo(path)
    assert photo.original_size == (7300, 5480)
    assert max(photo.size) == PROCESSING_MAX_SIDE
    assert max(photo.texture_linear.shape[:2]) == TEXTURE_MAX_SIDE
    assert photo.processing_scale == pytest.approx(PROCESSING_MAX_SIDE / 7300)
    # The downscaled photo is still the astronaut (area filtering keeps the colours).
    small = cv2.resize(photo.image_linear, (512, 512), interpolation=cv2.INTER_AREA)
    assert np.abs(small - linear_of(astronaut_srgb)).mean() < 0.02


def test_huge_jpeg_is_decoded_at_reduced_scale_but_keeps_its_size(tmp_path):
    wide = np.zeros((4000, 8400, 3), np.uint8)
    wide[:, :4200] = (200, 120, 60)
    Image.fromarray(wide).save(tmp_path / "wide.jpg", quality=90)
    photo = load_photo(tmp_path / "wide.jpg")
    assert photo.original_size == (8400, 4000)
    assert photo.texture_linear.shape[:2] == (1950, 4096)
    assert photo.processing_scale == pytest.approx(PROCESSING_MAX_SIDE / 8400)
    assert np.allclose(photo.image_linear[500, 500], linear_of(np.array([200, 120, 60])), atol=0.01)


def test_empty_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert_unreadable(tmp_path / "empty.jpg", "empty")


def test_missing_file_and_folder(tmp_path):
    assert_unreadable(tmp_path / "nope.jpg", "does not exist")
    assert_unreadable(tmp_path, "folder")


def test_text_named_jpg(tmp_path):
    (tmp_path / "notes.jpg").write_text("this is not a photo\n" * 20)
    assert_unreadable(tmp_path / "notes.jpg", "JPEG, PNG")


def test_truncated_jpeg(tmp_path, astronaut_srgb):
    buffer = io.BytesIO()
    Image.fromarray(astronaut_srgb).save(buffer, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    assert_unreadable(tmp_path / "cut.jpg", "truncated")


def test_one_pixel_image(tmp_path):
    Image.new("RGB", (1, 1), (200, 150, 100)).save(tmp_path / "dot.png")
    assert_unreadable(tmp_path / "dot.png", "1 x 1")


def test_example_astronaut(astronaut_srgb):
    photo = load_example("astronaut")
    assert photo.size == (512, 512)
    assert np.allclose(photo.image_linear, linear_of(astronaut_srgb), atol=1e-6)
    with pytest.raises(FaceAlbedoError) as caught:
        load_example("nobody")
    assert caught.value.code is ErrorCode.USAGE


def test_every_shared_photo_loads(faces_dir):
    files = [p for p in sorted(faces_dir.rglob("*")) if p.suffix.lower() in
             {".jpg", ".png", ".gif", ".pgm"}]
    assert len(files) > 100
    for path in files:
        photo = load_photo(path)
        assert photo.image_linear.ndim == 3 and photo.image_linear.shape[2] == 3
        assert np.isfinite(photo.image_linear).all()
        assert 0.0 <= photo.image_linear.min() and photo.image_linear.max() <= 1.0
