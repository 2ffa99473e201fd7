"""Evaluation: metric functions on constructed cases with known answers, set parsing, a small real run."""
from __future__ import annotations

import math

import numpy as np
import pytest

from inference_core.evaluation import metrics
from inference_core.evaluation.datasets import lighting_groups, load_set
from inference_core.evaluation.rerender import SurfaceView, rerender, sample_uv_maps

RNG = np.random.default_rng(7)


def _image(height: int = 48, width: int = 40) -> np.ndarray:
    return RNG.uniform(0.1, 0.9, (height, width, 3)).astype(np.float32)


def _full_mask(image: np.ndarray) -> np.ndarray:
    return np.ones(image.shape[:2], bool)


# --- re-render metrics --------------------------------------------------------------------------------

def test_identical_images_are_perfect():
    image = _image()
    mask = _full_mask(image)
    assert metrics.psnr(image, image, mask) == math.inf
    assert metrics.ssim(image, image, mask) == pytest.approx(1.0)
    assert metrics.scale_invariant_mse(image, image, mask) == 0.0


def test_known_gain_is_free_for_the_scale_invariant_error_only():
    photo = _image()
    mask = _full_mask(photo)
    gains = np.array([0.5, 0.8, 1.25], np.float32)
    rendered = photo * gains
    expected_mse = np.mean((photo * (gains - 1)) ** 2)
    assert metrics.psnr(rendered, photo, mask) == pytest.approx(-10 * math.log10(expected_mse), rel=1e-5)
    assert metrics.scale_invariant_mse(rendered, photo, mask) == pytest.approx(0.0, abs=1e-12)
    assert metrics.channel_gains(rendered, photo, mask) == pytest.approx(1 / gains, rel=1e-5)


def test_known_offset_and_known_pixel_shift():
    photo = _image()
    mask = _full_mask(photo)
    assert metrics.psnr(photo + 0.1, photo, mask) == pytest.approx(20.0, rel=1e-4)  # MSE 0.01
    # A checkerboard of 0.3 / 0.7 shifted by one pixel differs by 0.4 everywhere: PSNR = -20 log10(0.4).
    yy, xx = np.mgrid[:32, :32]
    board = np.where((yy + xx) % 2 == 0, 0.3, 0.7)[..., None].repeat(3, axis=-1)
    shifted = np.roll(board, 1, axis=1)
    board_mask = _full_mask(board)
    assert metrics.psnr(shifted, board, board_mask) == pytest.approx(-20 * math.log10(0.4), rel=1e-9)
    assert metrics.ssim(shifted, board, board_mask) < 0.0  # anti-correlated structure
    assert metrics.scale_invariant_mse(shifted, board, board_mask) > 0.01


def test_metrics_look_only_inside_the_mask():
    photo = _image()
    rendered = photo.copy()
    rendered[:, :10] = 0.0  # garbage outside the face
    mask = _full_mask(photo)
    mask[:, :10] = False
    assert metrics.psnr(rendered, photo, mask) == math.inf
    assert metrics.ssim(rendered, photo, mask) > 0.9  # windows at the mask edge see a little garbage
    assert math.isnan(metrics.psnr(rendered, photo, np.zeros_like(mask)))


# --- SH shading and de-lighting -----------------------------------------------------------------------

def _sphere_view(size: int) -> tuple[SurfaceView, np.ndarray]:
    """A view of a hemisphere whose pixels sit exactly on the texel centres of a one-tile UV map."""
    rows, cols = np.mgrid[:size, :size]
    x = (cols + 0.5) / size * 2 - 1
    y = (rows + 0.5) / size * 2 - 1
    inside = x ** 2 + y ** 2 < 0.95
    normals = np.stack([x, y, -np.sqrt(np.clip(1 - x ** 2 - y ** 2, 0, 1))], axis=-1)[inside]  # towards camera
    uv = np.stack([(cols + 0.5) / size, 1 - (rows + 0.5) / size], axis=-1)[inside]
    view = SurfaceView(mask=inside, tile_index=np.zeros(inside.sum(), np.int64), uv=uv,
                       normals_camera=normals.astype(np.float32))
    return view, normals


def test_known_sh_light_rerenders_and_delights_exactly():
    size = 24
    view, normals = _sphere_view(size)
    # A white ambient light plus a reddish light from camera-space direction d (band 0 and 1 only):
    # shading = E/pi = c0 Y00 + (2/3) * 0.488603 * (c_y n_y + c_z n_z + c_x n_x), written out here
    # independently of render.sh so that the convention is checked, not repeated.
    c0 = np.array([3.0, 2.8, 2.6])
    d = np.array([0.3, -0.4, -0.866])
    c1 = np.outer(d, [0.9, 0.5, 0.4])  # rows x, y, z
    sh = np.zeros((9, 3))
    sh[0], sh[1], sh[2], sh[3] = c0, c1[1], c1[2], c1[0]
    expected_shading = c0 * 0.282095 + (2 / 3) * 0.488603 * (normals @ c1)
    assert expected_shading.min() > 0.1  # lit everywhere
    albedo_uv = RNG.uniform(0.2, 0.8, (1, size, size, 3))
    photo = albedo_uv[0][view.mask] * expected_shading

    lit = rerender(view, albedo_uv, sh)
    assert np.allclose(lit.image[view.mask], photo, atol=1e-5)
    # De-lighting the photo with the known shading gives the exact albedo back.
    delit = photo / lit.shading[view.mask]
    assert np.allclose(delit, albedo_uv[0][view.mask], atol=1e-5)
    photo_image = np.zeros_like(lit.image)
    photo_image[view.mask] = photo
    assert metrics.scale_invariant_mse(lit.image, photo_image, view.mask) < 1e-10
    assert metrics.psnr(lit.image, photo_image, view.mask) > 90


def test_per_texel_sh_map_overrides_the_global_light():
    size = 16
    view, normals = _sphere_view(size)
    ambient = np.zeros((9, 3))
    ambient[0] = 1 / 0.282095  # shading exactly 1
    sh_map = np.zeros((size, size, 9, 3))
    sh_map[..., 0, :] = 0.5 / 0.282095  # shading exactly 0.5 on every face-tile texel
    albedo_uv = np.full((1, size, size, 3), 0.6)
    assert np.allclose(rerender(view, albedo_uv, ambient).image[view.mask], 0.6)
    assert np.allclose(rerender(view, albedo_uv, ambient, sh_map).image[view.mask], 0.3)


def test_uv_lookup_is_bilinear_between_texel_centres():
    maps = np.arange(2 * 4 * 4, dtype=np.float64).reshape(2, 4, 4, 1)
    # Half-way between texel (1, 1) and (1, 2) of tile 1002: u = 1 + 2/4, v = 1 - 1.5/4.
    value = sample_uv_maps(maps, np.array([1]), np.array([[1.5, 1 - 1.5 / 4]]))
    assert value[0, 0] == pytest.approx((maps[1, 1, 1, 0] + maps[1, 1, 2, 0]) / 2)


# --- albedo maps --------------------------------------------------------------------------------------

def test_completeness_counts_filled_finite_texels():
    albedo = np.full((2, 8, 8, 3), 0.5)
    region = np.zeros((2, 8, 8), bool)
    region[0] = True  # 64 texels
    albedo[0, :2] = 0.0  # 16 unseen
    albedo[0, 2, :4] = np.nan  # 4 broken
    albedo[1] = 0.0  # outside the region: does not count
    assert metrics.completeness(albedo, region) == pytest.approx(44 / 64)


def test_symmetry_seam_strength_on_a_ramp_with_and_without_a_step():
    size = 16
    ramp = np.repeat((0.01 * np.arange(size))[None, :, None], size, axis=0).repeat(3, axis=-1) + 0.2
    region = np.ones((size, size), bool)
    assert metrics.symmetry_seam_strength(ramp, region) == pytest.approx(1.0)
    stepped = ramp.copy()
    stepped[:, size // 2:] += 0.2  # the mirrored half pasted 0.2 brighter
    assert metrics.symmetry_seam_strength(stepped, region) == pytest.approx(0.21 / 0.01)


def test_landmark_nme_against_a_known_offset():
    corners = np.array([[0, 0], [100, 0], [100, 100], [0, 100]], np.float64)
    truth = np.concatenate([corners, RNG.uniform(10, 90, (64, 2))])
    assert metrics.landmark_nme(truth + [3.0, 4.0], truth) == pytest.approx(0.05)


# --- illumination invariance --------------------------------------------------------------------------

def test_spread_across_lights_is_zero_for_a_constant_albedo_only():
    texels, lights = 200, 5
    albedo = RNG.uniform(0.2, 0.8, (texels, 3))
    shading = RNG.uniform(0.3, 1.5, (lights, texels, 1)) * np.array([1.0, 0.9, 0.7])  # coloured lights
    valid = np.ones(texels, bool)
    constant = np.repeat(albedo[None], lights, axis=0)
    assert metrics.per_texel_spread(constant, valid) == pytest.approx(0.0, abs=1e-12)
    assert metrics.chromaticity_spread(constant, valid) == pytest.approx(0.0, abs=1e-12)
    raw = albedo * shading
    assert metrics.per_texel_spread(raw, valid) > 0.2
    # A global exposure change per light costs nothing once normalised, the pattern still does.
    exposures = np.array([0.5, 1.0, 1.5, 2.0, 3.0])[:, None, None]
    assert metrics.per_texel_spread(constant * exposures, valid) > 0.3
    assert metrics.per_texel_spread(constant * exposures, valid, normalise_gain=True) == pytest.approx(0, abs=1e-12)
    tinted = constant * np.array([[[1.0, 1.0, 1.0]], [[1.2, 1.0, 0.8]]]).repeat(3, axis=0)[:lights]
    assert metrics.chromaticity_spread(tinted, valid) > 0.01


def test_summary_keeps_infinite_psnr_and_drops_nan():
    summary = metrics.summarise([20.0, 30.0, math.inf, math.nan])
    assert summary["count"] == 3 and summary["median"] == 30.0 and summary["max"] == math.inf


# --- evaluation sets ----------------------------------------------------------------------------------

def test_sets_parse_ground_truth_and_lighting_groups(faces_dir):
    aflw = load_set(faces_dir / "aflw2000")
    with_truth = [item for item in aflw if item.landmarks_gt is not None]
    assert len(with_truth) == len(list((faces_dir / "aflw2000").glob("*.mat")))
    assert all(item.landmarks_gt.shape == (68, 2) for item in with_truth)

    lighting = load_set(faces_dir / "lighting", max_azimuth_deg=50, max_elevation_deg=40)
    groups = lighting_groups(lighting)
    assert {"yaleB23", "yaleB27"} <= set(groups)
    for item in groups["yaleB23"]:
        assert abs(item.azimuth_deg) <= 50 and abs(item.elevation_deg) <= 40
        assert item.path.name == f"yaleB23_P00{item.light}.pgm"
    assert not any("Ambient" in item.name or "glasses" in item.name for item in lighting)

    limited = lighting_groups(load_set(faces_dir / "lighting", limit=3))
    assert all(len(group) <= 3 for group in limited.values())
    azimuths = [item.azimuth_deg for item in limited["yaleB27"]]
    assert min(azimuths) == -50 and max(azimuths) == 50  # spread over the allowed lights


# --- runner and report on a constructed run (no detector or fitter involved) ---------------------------

def _constructed_run(face_model, size: int = 96, texels: int = 64):
    """A head seen frontally, a photo that is exactly albedo x SH shading, and stage outputs around it."""
    from inference_core.evaluation.rerender import surface_view
    from inference_core.evaluation.runner import StageOutputs
    from inference_core.values import Camera, FaceFit, Landmarks, Photo, PriorAlbedo, RefinedAlbedo, UVTexture

    verts = face_model.neutral_cm
    centre = verts[face_model.part_vertices("face")].mean(axis=0)
    camera = Camera(fx=4.0 * size, fy=4.0 * size, cx=size / 2 - 0.5, cy=size / 2 - 0.5, image_size=(size, size),
                    rotation=np.diag([1.0, -1.0, -1.0]), translation_cm=np.array([centre[0], centre[1], 120.0]))
    sh = np.zeros((9, 3), np.float32)
    sh[0], sh[2] = 2.8, [0.8, 0.7, 0.6]  # ambient and a light from the camera's side (-z in camera)
    landmarks = np.zeros((68, 2), np.float32)
    fit = FaceFit(identity=np.zeros(60, np.float32), expression=np.zeros(57, np.float32), camera=camera,
                  sh_camera=sh, albedo_params=np.zeros((1, 3), np.float32), vertices_cm=verts,
                  face_mask=np.ones((size, size), bool), inlier_weight=np.ones((size, size), np.float32),
                  landmarks_2d=landmarks)
    albedo = np.clip(RNG.uniform(0.3, 0.7, (2, texels, texels, 3)), 0, 1).astype(np.float32)
    view = surface_view(fit, face_model)
    image = rerender(view, albedo, sh).image
    photo = Photo(image_linear=image, texture_linear=image, original_size=(size, size))
    coverage = np.ones((2, texels, texels), bool)
    uv = UVTexture(colour=albedo * 0.5, visibility=np.ones((2, texels, texels), np.float32),
                   normals_camera=np.zeros((2, texels, texels, 3), np.float32), coverage=coverage)
    prior = PriorAlbedo(parametric=albedo, completed=albedo, source=np.ones((2, texels, texels), np.uint8),
                        sh_camera=sh, kind="regions", coefficients=np.zeros(3, np.float32))
    noisy = np.clip(albedo + RNG.normal(0, 0.1, albedo.shape), 0, 1).astype(np.float32)
    refined = RefinedAlbedo(albedo=noisy, sh_map=np.repeat(np.repeat(sh[None, None], texels, 0), texels, 1),
                            sh_global=sh)
    marks = Landmarks(points=landmarks, detector="dlib", face_box=(0, 0, size, size), confidence=1.0)
    return StageOutputs(photo, marks, fit, uv, prior, refined, {"fit": 1.0})


def test_runner_ranks_stages_and_report_flags_a_worse_later_stage(face_model, tmp_path):
    from inference_core.evaluation.datasets import SetItem
    from inference_core.evaluation.report import write_contact_sheet, write_report
    from inference_core.evaluation.runner import measure_photo, regressions, summarise_stages

    outputs = _constructed_run(face_model)
    result = measure_photo(SetItem(path=tmp_path / "x.png", name="synthetic/x"), outputs, face_model)
    stages = result.record["stages"]
    assert result.record["face_pixels"] > 1000
    assert stages["prior"]["psnr_db"] > 60  # the exact albedo and light re-render the photo
    assert stages["raw"]["psnr_db"] < 30 and stages["raw"]["si_mse"] < 1e-8  # off by a gain of 0.5 only
    assert stages["refined"]["psnr_db"] < stages["prior"]["psnr_db"] - 20
    assert stages["prior"]["completeness"] == 1.0

    run = {"settings": {"resolution": 64, "device": "cpu"}, "photos": [result.record],
           "counts": {"photos": 1, "ok": 1, "failed": {}}, "stages": summarise_stages([result.record]),
           "landmarks": {}, "seconds": {}, "lighting": {}}
    medians = {s: {m: v["median"] for m, v in f.items()} for s, f in run["stages"].items()}
    run["regressions"] = regressions(medians)
    flagged = {(f["stage"], f["metric"], f["than"]) for f in run["regressions"]}
    assert ("refined", "psnr_db", "prior") in flagged and ("refined", "si_mse", "prior") in flagged
    assert not any(stage == "prior" for stage, _, _ in flagged)

    sheet = write_contact_sheet(tmp_path, result)
    json_path, md_path = write_report(tmp_path, {"set": "synthetic", "command": "test", "runs": {"defaults": run},
                                                 "seconds_total": 1.0})
    import cv2
    assert cv2.imread(str(sheet)).shape == (3 * 192, 5 * 192, 3)
    page = md_path.read_text()
    assert "**WORSE** " in page and "refined psnr_db" in page
    assert '"inf"' in json_path.read_text() or "Infinity" not in json_path.read_text()


# --- a small real run of `facealbedo evaluate` --------------------------------------------------------

SMALL_SET = ("aflw2000/image00081.jpg", "aflw2000/image00081.mat",
             "lighting/yaleB23/yaleB23_P00A+000E+00.pgm", "lighting/yaleB23/yaleB23_P00A+035E+15.pgm")
QUICK_SETTINGS = ("fit.rigid_iterations=20", "fit.landmark_iterations=40", "fit.photometric_iterations=10",
                  "refine.iterations=30")
"""Fewer iterations than the product's, to keep this test within its time budget on 2 shared cores."""


@pytest.fixture(scope="module")
def small_report(faces_dir, tmp_path_factory):
    """`facealbedo evaluate` on one AFLW2000 photo (with ground truth) and one Yale B subject under two lights."""
    from inference_core.cli import main

    set_dir = tmp_path_factory.mktemp("set")
    for name in SMALL_SET:  # links, so that no shared photo is copied
        (set_dir / name.split("/")[-1]).symlink_to(faces_dir / name)
    out = tmp_path_factory.mktemp("report")
    assert main(["evaluate", str(set_dir), "--out", str(out), "--resolution", "128", "--device", "cpu",
                 "--set", *QUICK_SETTINGS]) == 0
    return out


def test_evaluate_writes_report_tables_and_sheets(small_report):
    import json

    report = json.loads((small_report / "report.json").read_text())
    run = report["runs"]["defaults"]
    assert run["counts"] == {"photos": 3, "ok": 3, "failed": {}}
    page = (small_report / "report.md").read_text()
    assert "## Stages side by side" in page and "## Illumination invariance" in page and "## Landmarks" in page
    for record in run["photos"]:
        assert (small_report / "sheets" / (record["name"].replace("/", "__") + ".png")).is_file()
        assert set(record["seconds"]) >= {"load", "detect", "fit", "unwrap", "prior", "measure"}


def test_evaluate_measures_real_photos_sensibly(small_report):
    import json

    run = json.loads((small_report / "report.json").read_text())["runs"]["defaults"]
    prior, raw = run["stages"]["prior"], run["stages"]["raw"]
    assert prior["completeness"]["min"] == pytest.approx(1.0)  # the prior stage leaves no hole
    assert raw["completeness"]["max"] < 0.9  # the photo never shows the whole head
    assert run["landmarks"]["nme_fitted"]["max"] < 0.08
    spreads = run["lighting"]["yaleB23"]["stages"]
    assert spreads["prior"]["spread"] < spreads["raw"]["spread"]  # de-lighting removes light changes


def test_prior_re_render_beats_the_raw_texture(small_report):
    """Re-rendering the raw texture multiplies the photo's light in twice; the de-lit prior must not, and
    the refinement must not undo what the prior gained (no re-render flag against the raw texture)."""
    import json

    run = json.loads((small_report / "report.json").read_text())["runs"]["defaults"]
    assert run["stages"]["prior"]["psnr_db"]["median"] > run["stages"]["raw"]["psnr_db"]["median"]
    assert not [flag for flag in run["regressions"] if flag["metric"] == "psnr_db" and flag["than"] == "raw"]


def test_every_ablation_reaches_a_switch_of_the_stages():
    """Each ablation (and a --set override) changes the stage settings it names; a renamed field fails here."""
    from inference_core.errors import FaceAlbedoError
    from inference_core.evaluation.ablations import ABLATIONS
    from inference_core.evaluation.runner import stage_settings

    defaults = stage_settings(None)
    for name, ablation in ABLATIONS.items():
        changed = stage_settings(name)
        if ablation.skip_refine:
            assert changed[3] is False and defaults[3] is True
        for index, overrides in enumerate((ablation.fit, ablation.prior, ablation.refine)):
            for key, value in overrides.items():
                target = changed[index]
                for part in key.split("."):
                    target = getattr(target, part)
                assert target == value, (name, key)
    fit_settings = stage_settings("identity-20", ("fit.identity_modes=10", "refine.iterations=5"))
    assert fit_settings[0].identity_modes == 10 and fit_settings[2].iterations == 5
    with pytest.raises(FaceAlbedoError, match="no switch `nope`"):
        stage_settings(None, ("prior.nope=1",))
