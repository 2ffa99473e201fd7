"""The prior generation module: unwrap, visibility, prior albedo, completion, PCA basis.

Synthetic scenes (the neutral head rendered with a known albedo under known SH through a known camera)
give exact answers; real photos (detected landmarks, the real fit) check that the tiles come out whole
and that lighting is taken out (Yale B). Real fits here are landmark-only (FitSettings(photometric=False))
to keep the tests fast; the prior stage refits the global light itself.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch
from PIL import Image

from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.facemodel import SKIN_PARTS
from inference_core.facemodel.geometry import mirror_map, vertex_normals
from inference_core.render.camera import MODEL_TO_OPENCV, axis_angle_to_matrix, project
from inference_core.render.rasterize import rasterize
from inference_core.render.sh import shading
from inference_core.texture import PriorSettings, prior_albedo, unwrap
from inference_core.texture.completion import SOURCE_MIRRORED, SOURCE_SEEN
from inference_core.texture.layout import mirror_texels, texel_layout, tile_vertex_uvs
from inference_core.texture.pca import build_basis, load_basis, save_basis
from inference_core.texture.prior import region_albedo_at
from inference_core.texture.sampling import bilinear
from inference_core.values import Camera, FaceFit, Photo

R = 256
TRUE_SH = np.zeros((9, 3))
TRUE_SH[0] = [2.6, 2.5, 2.3]
TRUE_SH[1:4] = [[0.3] * 3, [-0.9] * 3, [0.8] * 3]  # light from above, in front, and the right
TRUE_SH[6] = 0.2
TRUE_REGION_COLOURS = np.array([[0.55, 0.38, 0.30], [0.50, 0.25, 0.22], [0.20, 0.13, 0.10], [0.48, 0.33, 0.27]])


# ---------------------------------------------------------------------------------------------- synthetic


def synthetic_fit(model, yaw_deg: float, size=(384, 384), focal=700.0, sh=TRUE_SH) -> FaceFit:
    """The neutral head turned by `yaw_deg` (positive: towards the subject's left) before a known camera."""
    yaw = axis_angle_to_matrix(torch.tensor([0.0, np.radians(yaw_deg), 0.0], dtype=torch.float64)).numpy()
    camera = Camera(fx=focal, fy=focal, cx=size[0] / 2 - 0.5, cy=size[1] / 2 - 0.5, image_size=size,
                    rotation=MODEL_TO_OPENCV @ yaw, translation_cm=np.array([0.0, -1.0, 70.0]))
    height_width = size[::-1]
    return FaceFit(identity=np.zeros(0, np.float32), expression=np.zeros(57, np.float32), camera=camera,
                   sh_camera=np.asarray(sh, np.float32), albedo_params=np.zeros((1, 3), np.float32),
                   vertices_cm=model.neutral_cm.copy(), face_mask=np.zeros(height_width, bool),
                   inlier_weight=np.zeros(height_width, np.float32), landmarks_2d=np.zeros((68, 2), np.float32))


def known_albedo(model, resolution: int = R) -> np.ndarray:
    """(T, R, R, 3) region colours times a fine left/right-symmetric pattern the light cannot explain."""
    rows, columns = np.mgrid[0:resolution, 0:resolution] / resolution
    pattern = 1 + 0.15 * np.cos(2 * np.pi * 23 * (columns - 0.5)) * np.sin(2 * np.pi * 19 * rows)
    return (region_albedo_at(model, resolution, TRUE_REGION_COLOURS) * pattern[None, ..., None]).astype(np.float32)


def render(model, fit: FaceFit, albedo: np.ndarray, sh: np.ndarray = TRUE_SH) -> Photo:
    """The skin (and grey eyeballs) of fit.vertices_cm with UV albedo under SH: Lambertian, linear RGB."""
    camera = fit.camera
    verts = torch.from_numpy(fit.vertices_cm.astype(np.float64))
    points = verts @ torch.from_numpy(camera.rotation).T + torch.from_numpy(camera.translation_cm)
    screen = torch.cat([project(points, camera.fx, camera.fy, camera.cx, camera.cy), points[:, 2:]], 1)
    drawn = model.part_triangles(*SKIN_PARTS, "eyeball_left", "eyeball_right")
    fragments = rasterize(screen, torch.from_numpy(model.triangles[drawn]), camera.image_size)
    hit = fragments.triangle_id.numpy() >= 0
    triangles = drawn[fragments.triangle_id.numpy()[hit]]
    bary = fragments.bary.numpy()[hit][..., None]
    uv = (model.uvs[model.triangle_uvs[triangles]] * bary).sum(1)
    normals = (vertex_normals(points, torch.from_numpy(model.triangles)).numpy()[model.triangles[triangles]] * bary).sum(1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    tile = np.clip(np.floor(uv[:, 0]).astype(int), 0, len(albedo) - 1)
    texel = np.stack([(uv[:, 0] - tile) * albedo.shape[1] - 0.5, (1 - uv[:, 1]) * albedo.shape[1] - 0.5], 1)
    colour = np.full((len(uv), 3), 0.8)
    for t in range(len(albedo)):
        colour[tile == t] = bilinear(albedo[t], texel[tile == t])
    colour[~np.isin(triangles, model.part_triangles(*SKIN_PARTS))] = 0.8
    image = np.zeros((*camera.image_size[::-1], 3), np.float32)
    image[hit] = colour * shading(torch.from_numpy(normals), torch.from_numpy(sh)).numpy()
    return Photo(image_linear=image, texture_linear=image, original_size=camera.image_size)


@pytest.fixture(scope="module")
def turned_scene(face_model):
    """(fit, albedo, UVTexture) of the head turned 35 degrees, unwrapped at R."""
    fit = synthetic_fit(face_model, 35.0)
    albedo = known_albedo(face_model)
    return fit, albedo, unwrap(render(face_model, fit, albedo), fit, face_model, R)


def test_uv_layout_is_mirror_symmetric(face_model):
    """Mirror vertices have UVs reflected about the tile centre line, so texel (i, j) mirrors (i, R-1-j)."""
    mirror = mirror_map(face_model)
    for tile in (1001, 1002):
        uvs = tile_vertex_uvs(face_model, tile)
        present = np.nonzero(~np.isnan(uvs[:, 0]) & (mirror >= 0))[0]
        partner = uvs[mirror[present]]
        reflected = np.stack([2 * (tile - 1001) + 1 - uvs[present, 0], uvs[present, 1]], 1)
        close = np.linalg.norm(partner - reflected, axis=1) < 1e-4
        assert close.mean() > 0.97, (tile, close.mean())  # the rest are seam vertices with a second UV
    coverage = texel_layout(face_model, R).coverage
    assert np.mean(coverage == mirror_texels(coverage)) > 0.995


def test_unwrap_then_delight_returns_the_known_albedo(turned_scene):
    fit, albedo, uv = turned_scene
    shade = shading(torch.from_numpy(uv.normals_camera.astype(np.float64)), torch.from_numpy(TRUE_SH)).numpy()
    delit = uv.colour / np.maximum(shade, 1e-6)
    well_seen = uv.visibility > 0.9
    assert well_seen[0].mean() > 0.3  # most of the face tile faces the camera
    error = np.abs(delit - albedo)[well_seen]
    assert np.median(error) < 0.005 and np.percentile(error, 95) < 0.03


def test_delit_skin_is_kept_when_a_channel_is_nearly_black_and_hair_is_not():
    """A deep orange skin (blue near 0, noisy) agrees with its prior; a brown hair texel does not."""
    from inference_core.render.sh import AMBIENT_WHITE
    from inference_core.texture.completion import delit_texture
    from inference_core.values import UVTexture

    size = 16
    rng = np.random.default_rng(0)
    skin = np.broadcast_to(np.array([0.5, 0.15, 0.004], np.float32), (1, size, size, 3)).copy()
    skin[..., 2] += rng.uniform(-0.004, 0.004, (1, size, size)).astype(np.float32)  # sensor noise
    hair = (0, 0, slice(0, 4))
    skin[hair] = (0.08, 0.05, 0.03)
    normals = np.broadcast_to(np.array([0.0, 0.0, -1.0], np.float32), (1, size, size, 3)).copy()
    light = np.zeros((9, 3), np.float32)
    light[0] = AMBIENT_WHITE  # shading 1 everywhere: the de-lit texture is the colour itself
    uv = UVTexture(colour=skin, visibility=np.ones((1, size, size), np.float32), normals_camera=normals,
                   coverage=np.ones((1, size, size), bool), tiles=(1001,))
    parametric = np.broadcast_to(np.array([0.5, 0.15, 0.004], np.float32), skin.shape)
    delit, confidence = delit_texture(uv, parametric, light)
    np.testing.assert_allclose(delit, skin, atol=1e-5)
    assert confidence[0, 1:].min() > 0.99
    assert confidence[hair].max() < 0.01


def test_completion_keeps_the_photo_exactly_deep_inside_the_seen_region():
    """The multiband blend may shift colours near a hole's edge, never deep inside the seen skin."""
    from inference_core.render.sh import AMBIENT_WHITE
    from inference_core.texture.completion import complete
    from inference_core.values import UVTexture

    size = 64
    rows, columns = np.mgrid[0:size, 0:size] / size
    skin = (0.5 + 0.1 * np.sin(9 * rows)[..., None] * np.cos(7 * columns)[..., None]) * np.array([1.0, 0.7, 0.55])
    colour = skin[None].astype(np.float32)
    visibility = np.ones((1, size, size), np.float32)
    visibility[0, :, :16] = 0.0  # unseen: filled from the mirror and the prior
    normals = np.broadcast_to(np.array([0.0, 0.0, -1.0], np.float32), (1, size, size, 3)).copy()
    light = np.zeros((9, 3), np.float32)
    light[0] = AMBIENT_WHITE
    uv = UVTexture(colour=colour * visibility[..., None], visibility=visibility, normals_camera=normals,
                   coverage=np.ones((1, size, size), bool), tiles=(1001,))
    parametric = np.broadcast_to(0.75 * colour.mean(axis=(1, 2), keepdims=True), colour.shape).copy()  # darker
    completed, source = complete(uv, parametric, light)
    interior = (slice(8, 56), slice(26, 56))
    np.testing.assert_allclose(completed[0][interior], colour[0][interior], atol=1e-6)
    assert (source[0][:, 16:] == SOURCE_SEEN).all()


def test_visibility_is_zero_where_hidden(turned_scene, face_model):
    fit, _, uv = turned_scene
    assert np.all((uv.visibility >= 0) & (uv.visibility <= 1)) and np.all(uv.visibility[~uv.coverage] == 0)
    # The camera looks along +z and sees the head within 12 degrees of its axis: n.z > 0.25 faces away.
    assert np.all(uv.visibility[uv.coverage & (uv.normals_camera[..., 2] > 0.25)] == 0)
    assert np.all(uv.colour[uv.visibility == 0] == 0)
    # Eye openings, the mouth opening and nostrils: excluded even where they face the camera.
    from inference_core.texture.regions import feature_exclusion

    excluded = feature_exclusion(face_model, R) > 0.99
    assert excluded[0].sum() > 200 and np.all(uv.visibility[excluded] == 0)
    # A camera that sees only the left half of the photo's width: the rest is outside the photo.
    half = Photo(image_linear=np.zeros((384, 192, 3), np.float32), texture_linear=np.zeros((384, 192, 3), np.float32),
                 original_size=(192, 384))
    cropped_fit = synthetic_fit(face_model, 35.0, size=(192, 384))
    cropped_fit = dataclasses.replace(cropped_fit, camera=dataclasses.replace(cropped_fit.camera, cx=191.5))
    cropped = unwrap(half, cropped_fit, face_model, 64)
    full = unwrap(half, synthetic_fit(face_model, 35.0), face_model, 64)
    assert 0 < (cropped.visibility > 0).sum() < 0.75 * (full.visibility > 0).sum()


def test_unwrap_prefilters_when_the_face_is_large():
    """A 1-pixel checkerboard sampled by big texels must come out as its average, not as aliasing."""
    from inference_core.texture.sampling import gaussian_pyramid, sample_trilinear

    rows, columns = np.mgrid[0:512, 0:512]
    board = np.repeat(((rows + columns) % 2).astype(np.float32)[..., None], 3, axis=2)
    rng = np.random.default_rng(0)
    pixels = rng.uniform(20, 490, size=(2000, 2))
    big = sample_trilinear(gaussian_pyramid(board), pixels, np.full(2000, 6.0))
    small = sample_trilinear(gaussian_pyramid(board), np.round(pixels), np.full(2000, 0.5))
    assert abs(big.mean() - 0.5) < 0.02 and big.std() < 0.02
    assert small.std() > 0.45  # one texel per pixel: the pattern is kept


def test_prior_recovers_region_colours_and_light(turned_scene, face_model):
    fit, albedo, uv = turned_scene
    prior = prior_albedo(uv, fit, face_model, PriorSettings(use_learned_basis=False))
    assert prior.kind == "regions" and prior.coefficients.shape == (4, 3)
    # Skin and lips are well seen; brows and eye area are small: looser.
    assert np.abs(prior.coefficients[:2] - TRUE_REGION_COLOURS[:2]).max() < 0.03
    assert np.abs(prior.coefficients - TRUE_REGION_COLOURS).max() < 0.06
    normals = torch.from_numpy(uv.normals_camera[uv.visibility > 0.5].astype(np.float64))
    fitted, true = (shading(normals, torch.from_numpy(sh.astype(np.float64))).numpy() for sh in (prior.sh_camera, TRUE_SH))
    assert np.median(np.abs(fitted / true - 1)) < 0.03
    seen = prior.source == SOURCE_SEEN
    assert np.median(np.abs(prior.completed - albedo)[seen]) < 0.02


def test_prior_light_keeps_its_colour_on_a_deep_orange_face(face_model):
    """Colour the region albedo cannot explain (a deep orange skin, greener towards the chin) must stay in
    the albedo: no channel's light may drift to a shape of its own (a tint wherever the light is not at
    its peak). The light has one colour, as the fit's light has (slightly cool here)."""
    light = np.outer([2.2, 0.45, -0.95, 0.85, 0.0, 0.0, 0.2, 0.0, 0.0], [0.95, 1.0, 1.1])
    fit = synthetic_fit(face_model, 35.0, sh=light)
    albedo = known_albedo(face_model) * np.array([1.0, 0.35, 0.03], np.float32)
    rows = np.linspace(0.0, 1.0, R)[None, :, None]
    albedo[..., 1] *= 0.6 + 0.8 * rows  # greener towards the chin (a beard shade): no region colour explains it
    uv = unwrap(render(face_model, fit, albedo, light), fit, face_model, R)
    prior = prior_albedo(uv, fit, face_model, PriorSettings(use_learned_basis=False))
    normals = torch.from_numpy(uv.normals_camera[uv.visibility > 0.5].astype(np.float64))
    fitted, true = (shading(normals, torch.from_numpy(sh.astype(np.float64))).numpy() for sh in (prior.sh_camera, light))
    tint, true_tint = (values / values.mean(-1, keepdims=True) for values in (fitted, true))
    assert np.percentile(np.abs(tint - true_tint), 95) < 0.01


def test_profile_hidden_cheek_is_mirrored_from_the_seen_one(face_model):
    fit = synthetic_fit(face_model, 70.0)
    albedo = known_albedo(face_model)
    uv = unwrap(render(face_model, fit, albedo), fit, face_model, R)
    prior = prior_albedo(uv, fit, face_model, PriorSettings(use_learned_basis=False))
    mirrored = prior.source[0] == SOURCE_MIRRORED
    assert mirrored.sum() > 0.15 * uv.coverage[0].sum()
    # The synthetic albedo is symmetric, so the mirrored texels must show it.
    assert np.median(np.abs(prior.completed[0] - albedo[0])[mirrored]) < 0.03
    assert np.isfinite(prior.completed).all() and prior.completed.min() >= 0 and prior.completed.max() <= 1


# ---------------------------------------------------------------------------------------------- PCA basis


def test_pca_basis_round_trip_and_use(tmp_path, turned_scene, face_model):
    fit, albedo, uv = turned_scene
    rng = np.random.default_rng(1)
    textures = np.stack([albedo * rng.uniform(0.8, 1.2, size=3).astype(np.float32) for _ in range(5)])
    basis = build_basis(textures, n_components=3)
    assert basis.components.shape == (3, *albedo.shape) and np.all(np.diff(basis.stddev) <= 0)
    flat = basis.components.reshape(3, -1)
    assert np.allclose(flat @ flat.T, np.eye(3), atol=1e-4)
    path = save_basis(basis, tmp_path / "prior" / "albedo_pca.safetensors")
    loaded = load_basis(path)
    assert np.array_equal(loaded.mean, basis.mean) and np.array_equal(loaded.stddev, basis.stddev)
    prior = prior_albedo(uv, fit, face_model, PriorSettings(basis_path=path))
    assert prior.kind == "pca" and prior.coefficients.shape == (3,)
    seen = uv.visibility > 0.9
    assert np.median(np.abs(prior.parametric - albedo)[seen]) < 0.05
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(FaceAlbedoError) as error:
        load_basis(tmp_path / "bad.safetensors")
    assert error.value.code is ErrorCode.ASSETS_CORRUPT


def test_prior_build_cli_writes_a_basis_the_pipeline_finds(tmp_path, faces_dir, monkeypatch, turned_scene,
                                                           face_model):
    from inference_core.cli import main

    images = tmp_path / "images"
    images.mkdir()
    for light in ("+000E+00", "+020E-10"):  # small photos: quick fits
        (images / f"light{light}.pgm").symlink_to(faces_dir / "lighting" / "yaleB23" / f"yaleB23_P00A{light}.pgm")
    out = tmp_path / "assets" / "prior" / "albedo_pca.safetensors"
    assert main(["prior", "build", "--images", str(images), "--out", str(out), "--resolution", "64",
                 "--landmark-fit", "--device", "cpu"]) == 0
    basis = load_basis(out)
    assert basis.components.shape == (1, 2, 64, 64, 3) and np.isfinite(basis.mean).all()
    assert 0.02 < np.median(basis.mean[0]) < 1  # a de-lit face, not an empty map
    monkeypatch.setenv("FACEALBEDO_ASSETS", str(tmp_path / "assets"))
    fit, _, uv = turned_scene
    assert prior_albedo(uv, fit, face_model).kind == "pca"  # found in the assets folder without being named
    assert prior_albedo(uv, fit, face_model, PriorSettings(use_learned_basis=False)).kind == "regions"
    assert main(["prior", "build", "--images", str(tmp_path / "none"), "--out", str(out)]) == ErrorCode.USAGE.value


# ---------------------------------------------------------------------------------------------- real photos


def fitted_photo(path, model):
    """(Photo, FaceFit) through the real pipeline pieces: load, detect, landmark fit."""
    from inference_core.fitting import FitSettings, fit
    from inference_core.landmarks import detect
    from inference_core.photo import load_photo

    photo = load_photo(path)
    return photo, fit(photo, detect(photo), model, FitSettings(photometric=False))


DEV_PHOTOS = ("photos/astronaut.png", "photos/face_recognition/obama.jpg")


@pytest.mark.parametrize("name", DEV_PHOTOS)
def test_real_photo_tiles_are_whole_and_in_range(name, faces_dir, face_model, tmp_path):
    photo, fit = fitted_photo(faces_dir / name, face_model)
    uv = unwrap(photo, fit, face_model, R)
    prior = prior_albedo(uv, fit, face_model)
    for maps in (uv.colour, uv.visibility, prior.parametric, prior.completed):
        assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    assert (prior.source[0] == SOURCE_SEEN).mean() > 0.15  # the face; the tile also holds scalp and ears
    assert (prior.completed.max(-1) > 0.01).all()  # no black holes, off the mesh included
    # Written as 8-bit sRGB PNG tiles, they read back whole.
    from inference_core.photo import linear_to_srgb

    for t, tile in enumerate(prior.tiles):
        path = tmp_path / f"albedo.{tile}.png"
        Image.fromarray(np.round(linear_to_srgb(prior.completed[t]) * 255).astype(np.uint8)).save(path)
        assert np.asarray(Image.open(path)).shape == (R, R, 3)


SEAM_GRADIENT_RATIO = 2.0
"""Across the symmetry line the completed albedo may change at most this many times as fast as it does
between neighbouring columns on either side (mean |horizontal difference| over the face rows)."""


def test_real_profile_hidden_cheek_filled_without_seam(faces_dir, face_model):
    photo, fit = fitted_photo(faces_dir / "photos/dlib/2007_007763.jpg", face_model)  # turned about 55 degrees
    uv = unwrap(photo, fit, face_model, R)
    prior = prior_albedo(uv, fit, face_model)
    face_tile, source = prior.completed[0], prior.source[0]
    hidden = uv.coverage[0] & (uv.visibility[0] == 0) & (mirror_texels(uv.visibility)[0] > 0.5)
    assert hidden.sum() > 0.1 * uv.coverage[0].sum()
    assert (source[hidden] == SOURCE_MIRRORED).mean() > 0.6
    rows = np.nonzero(uv.coverage[0, :, R // 2 - 3:R // 2 + 3].all(1) & (uv.visibility[0, :, R // 2] > 0.5))[0]
    steps = np.abs(np.diff(face_tile[rows][:, R // 2 - 4:R // 2 + 4], axis=1)).mean(axis=(0, 2))  # 7 column steps
    across, beside = steps[3], np.delete(steps, 3).mean()
    print(f"symmetry line: mean |d/du| across {across:.4f}, beside {beside:.4f}")
    assert across <= SEAM_GRADIENT_RATIO * beside


YALE_LIGHTS = ("+000E+00", "+020E-10", "-020E+10", "+035E+15", "-035E-20", "+050E+00", "-050E-40", "+000E-35")


def test_yale_prior_albedo_spreads_less_than_the_raw_texture(faces_dir, face_model):
    """One person, one camera, several lights: the de-lit prior-stage albedo must vary much less.

    The head and camera are the same in every photo of the set, so the head is fitted once (frontal
    light) and reused; each photo is unwrapped and its prior (albedo + light) fitted on its own.
    """
    from inference_core.evaluation.metrics import per_texel_spread
    from inference_core.photo import load_photo

    folder = faces_dir / "lighting" / "yaleB23"
    _, fit = fitted_photo(folder / "yaleB23_P00A+000E+00.pgm", face_model)
    raw, delit, visibility = [], [], []
    for light in YALE_LIGHTS:
        azimuth, elevation = map(int, re.match(r"([+-]\d+)E([+-]\d+)", light).groups())
        assert abs(azimuth) <= 50 and abs(elevation) <= 40
        uv = unwrap(load_photo(folder / f"yaleB23_P00A{light}.pgm"), fit, face_model, 128)
        prior = prior_albedo(uv, fit, face_model)
        raw.append(uv.colour[0].reshape(-1, 3))
        delit.append(prior.completed[0].reshape(-1, 3))
        visibility.append(uv.visibility[0].reshape(-1))
    well_seen = np.min(visibility, axis=0) > 0.8
    raw_spread, delit_spread = per_texel_spread(np.stack(raw), well_seen), per_texel_spread(np.stack(delit), well_seen)
    print(f"Yale B23, {len(YALE_LIGHTS)} lights, {well_seen.sum()} texels: raw spread {raw_spread:.3f}, "
          f"de-lit prior-stage spread {delit_spread:.3f} (ratio {delit_spread / raw_spread:.2f})")
    assert well_seen.sum() > 1000
    assert delit_spread <= 0.6 * raw_spread
