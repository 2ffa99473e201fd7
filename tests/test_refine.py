"""Detail refinement: the refined albedo must be closer to the truth than the prior's, with the local
lighting moved into the illumination map, detail kept, and the photo still re-rendered."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.refine import RefineSettings, refine
from inference_core.refine.synthetic import SyntheticFace, synthetic_face
from inference_core.render import sh


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensors: one thread is faster than two fighting over a shared, loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def face() -> SyntheticFace:
    return synthetic_face(128)


@pytest.fixture(scope="module")
def refined(face: SyntheticFace):
    return refine(face.uv, face.prior, None, None)


def albedo_error(albedo: np.ndarray, face: SyntheticFace, where: np.ndarray) -> float:
    """Mean absolute error against the true albedo over the texels `where`."""
    return float(np.abs(albedo - face.albedo)[where].mean())


def high_pass(albedo: np.ndarray) -> np.ndarray:
    brightness = albedo.mean(-1)
    return brightness - gaussian_filter(brightness, 2)


def test_local_shadow_moves_from_albedo_to_illumination(face, refined):
    shadowed = (face.shadow > 0.5) & face.seen
    covered = face.uv.coverage[0]
    prior_error = albedo_error(face.prior.completed[0], face, shadowed)
    refined_error = albedo_error(refined.albedo[0], face, shadowed)
    assert refined_error < 0.25 * prior_error, (refined_error, prior_error)
    assert albedo_error(refined.albedo[0], face, covered) < albedo_error(face.prior.completed[0], face, covered)
    # The illumination map holds the shadow: the shading at its centre is darkened as in the truth.
    centre = np.unravel_index(np.argmax(face.shadow), face.shadow.shape)
    normal = torch.from_numpy(face.uv.normals_camera[0][centre])
    darkening = sh.shading(normal, torch.from_numpy(refined.sh_map[centre])) / sh.shading(
        normal, torch.from_numpy(refined.sh_global))
    np.testing.assert_allclose(darkening.numpy(), 1 - 0.45, atol=0.1)


def test_a_shadow_kept_out_of_the_albedo_still_shapes_the_illumination(face):
    """Where the prior stage rejected a deep shadow (and filled the albedo from the mirror), the shadow is
    still seen: the illumination map must darken there while the albedo keeps the fill."""
    import dataclasses

    core = face.shadow > 0.5
    mirror_fill = np.where(core[..., None], face.prior.completed[0][:, ::-1], face.prior.completed[0])
    source = np.where(core, 2, face.prior.source[0]).astype(np.uint8)
    prior = dataclasses.replace(face.prior, completed=np.stack([mirror_fill, face.prior.completed[1]]),
                                source=np.stack([source, face.prior.source[1]]))
    result = refine(face.uv, prior, None, None)
    centre = np.unravel_index(np.argmax(face.shadow), face.shadow.shape)
    normal = torch.from_numpy(face.uv.normals_camera[0][centre])
    darkening = sh.shading(normal, torch.from_numpy(result.sh_map[centre])) / sh.shading(
        normal, torch.from_numpy(result.sh_global))
    np.testing.assert_allclose(darkening.numpy(), 1 - 0.45, atol=0.1)
    filled = core & face.seen
    assert np.abs(result.albedo[0] - mirror_fill)[filled].mean() < 0.03  # the shadow stayed out of the albedo


def test_hair_kept_out_of_the_albedo_does_not_tint_the_illumination(face):
    """Ginger hair over a rejected patch may change the local light's brightness, never its hue."""
    import dataclasses

    u = np.linspace(0, 1, face.uv.colour.shape[1])
    hair = face.seen & (u[:, None] < 0.3) & (u[None, :] > 0.35) & (u[None, :] < 0.65)  # forehead band
    colour = face.uv.colour.copy()
    colour[0][hair] = (0.5, 0.2, 0.05)  # about as bright as the skin there, far from its hue
    source = np.where(hair, 0, face.prior.source[0]).astype(np.uint8)
    uv = dataclasses.replace(face.uv, colour=colour)
    prior = dataclasses.replace(face.prior, source=np.stack([source, face.prior.source[1]]))
    result = refine(uv, prior, None, None)
    centre = (int(0.15 * len(u)), len(u) // 2)
    normal = torch.from_numpy(face.uv.normals_camera[0][centre])
    light = sh.shading(normal, torch.from_numpy(result.sh_map[centre])) / sh.shading(
        normal, torch.from_numpy(result.sh_global))
    assert light.max() / light.min() < 1.15, light
    assert albedo_error(result.albedo[0], face, hair) < 0.05


def test_high_frequency_detail_is_kept(face, refined):
    freckled = (face.freckles > 0.3) & face.seen
    truth = high_pass(face.albedo)[freckled]
    ours = high_pass(refined.albedo[0])[freckled]
    assert np.corrcoef(truth, ours)[0, 1] > 0.95
    np.testing.assert_allclose(np.abs(ours).mean(), np.abs(truth).mean(), rtol=0.15)


def test_refined_maps_re_render_the_photo(face, refined):
    seen = face.seen
    normals = torch.from_numpy(face.uv.normals_camera[0])
    shading = sh.shading(normals, torch.from_numpy(refined.sh_map)).numpy()
    rerendered = refined.albedo[0] * shading
    error = np.abs(rerendered - face.uv.colour[0])[seen].mean()
    assert error < 0.005, error
    assert refined.losses["rerender_refined"] < 0.005


def test_output_contract(face, refined):
    resolution = face.uv.colour.shape[1]
    assert refined.albedo.shape == face.prior.completed.shape
    assert refined.sh_map.shape == (resolution, resolution, 9, 3)
    assert np.isfinite(refined.albedo).all() and refined.albedo.min() >= 0 and refined.albedo.max() <= 1
    np.testing.assert_array_equal(refined.sh_global, face.prior.sh_camera)
    assert refined.tiles == face.prior.tiles
    assert {"photometric", "albedo_symmetry", "rerender_prior", "rerender_refined"} <= set(refined.losses)


def test_without_detailed_illumination_the_shadow_stays(face):
    settings = RefineSettings(detailed_illumination=False)
    global_only = refine(face.uv, face.prior, None, None, settings)
    shadowed = (face.shadow > 0.5) & face.seen
    prior_error = albedo_error(face.prior.completed[0], face, shadowed)
    assert albedo_error(global_only.albedo[0], face, shadowed) > 0.6 * prior_error
    assert np.allclose(global_only.sh_map, face.prior.sh_camera)


def test_working_resolution_below_uv_resolution_keeps_full_detail():
    face = synthetic_face(256)
    result = refine(face.uv, face.prior, None, None, RefineSettings(working_resolution=128))
    shadowed = (face.shadow > 0.5) & face.seen
    assert albedo_error(result.albedo[0], face, shadowed) < 0.3 * albedo_error(face.prior.completed[0], face, shadowed)
    freckled = (face.freckles > 0.3) & face.seen
    assert np.corrcoef(high_pass(face.albedo)[freckled], high_pass(result.albedo[0])[freckled])[0, 1] > 0.95


def test_mismatched_inputs_are_refused(face):
    small = synthetic_face(64)
    with pytest.raises(FaceAlbedoError) as error:
        refine(face.uv, small.prior, None, None)
    assert error.value.code is ErrorCode.USAGE


def test_cuda_without_a_device_is_refused(face):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(FaceAlbedoError) as error:
        refine(face.uv, face.prior, None, None, RefineSettings(iterations=1), device="cuda")
    assert error.value.code is ErrorCode.DEVICE_UNAVAILABLE


def test_zero_iterations_return_the_prior(face):
    result = refine(face.uv, face.prior, None, None, RefineSettings(iterations=0))
    covered = face.uv.coverage[0]
    np.testing.assert_allclose(result.albedo[0][covered], face.prior.completed[0][covered], atol=1e-6)


# --- the refinement network and its self-supervised training -------------------------------------------

@pytest.fixture(scope="module")
def tiny_dataset():
    from inference_core.refine.inputs import face_tile_inputs
    from inference_core.train import FaceTileDataset

    faces = [synthetic_face(64, seed=seed) for seed in range(2)]
    return FaceTileDataset(items=[face_tile_inputs(f.uv, f.prior) for f in faces]), faces


def test_training_steps_lower_the_loss_and_weights_drive_refine(tiny_dataset, tmp_path):
    from inference_core.refine.inputs import face_tile_inputs
    from inference_core.refine.losses import refined_albedo
    from inference_core.refine.network import load_network, save_weights
    from inference_core.train import TrainSettings, train

    dataset, faces = tiny_dataset
    settings = TrainSettings(batch_size=2, learning_rate=3e-4, base_channels=8, mirror_probability=0.0)
    network, losses = train(dataset, settings, steps=4)
    assert len(losses) == 4 and np.isfinite(losses).all()
    assert losses[-1] < losses[0], losses

    path = tmp_path / "refine.safetensors"
    save_weights(network, path)
    loaded = load_network(path)
    inputs = face_tile_inputs(faces[0].uv, faces[0].prior)
    with torch.no_grad():
        log_ratio, grid = loaded(inputs)
        expected = refined_albedo(inputs, log_ratio)[0].numpy()
    assert grid.shape == (1, 8, 8, 9, 3)
    # With the weights and no test-time steps, refine() returns the network's prediction.
    result = refine(faces[0].uv, faces[0].prior, None, None, RefineSettings(weights=path, iterations=0))
    covered = faces[0].uv.coverage[0]
    np.testing.assert_allclose(result.albedo[0][covered], np.clip(expected, 0, 1)[covered], atol=1e-5)
    assert not np.allclose(result.albedo[0][covered], faces[0].prior.completed[0][covered], atol=1e-6)


def test_mirrored_inputs_are_the_mirror_face(tiny_dataset):
    """The training flip must map the face onto its own mirror image: the same loss (no new physics)."""
    from inference_core.refine.illumination import zero_grid
    from inference_core.refine.losses import refinement_loss
    from inference_core.refine.settings import LossWeights

    batch = tiny_dataset[0][0]
    mirrored = batch.mirrored()
    shading = batch.global_shading()
    np.testing.assert_allclose(mirrored.global_shading().numpy(), shading.flip(2).numpy(), atol=1e-5)
    zero = torch.zeros_like(batch.colour)
    loss, _ = refinement_loss(batch, zero, zero_grid(1, 8), LossWeights())
    loss_mirrored, _ = refinement_loss(mirrored, zero, zero_grid(1, 8), LossWeights())
    assert float(loss_mirrored) == pytest.approx(float(loss), rel=1e-4)


def test_missing_or_foreign_weights_are_reported(face, tmp_path):
    with pytest.raises(FaceAlbedoError) as missing:
        refine(face.uv, face.prior, None, None, RefineSettings(weights=tmp_path / "none.safetensors"))
    assert missing.value.code is ErrorCode.ASSETS_MISSING
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(b"not a safetensors file")
    with pytest.raises(FaceAlbedoError) as corrupt:
        refine(face.uv, face.prior, None, None, RefineSettings(weights=foreign))
    assert corrupt.value.code is ErrorCode.ASSETS_CORRUPT


# --- real photos through the real stages ----------------------------------------------------------------

YALE_LIGHTS = ("yaleB23_P00A+000E+00", "yaleB23_P00A+025E+00", "yaleB23_P00A-025E+00")
REAL_RESOLUTION = 128


@pytest.fixture(scope="module")
def yale_stages(faces_dir, face_model):
    """(uv, prior, fit) of one Yale B subject under three lights (|azimuth| <= 25 degrees), res 128."""
    from inference_core.train.dataset import photo_stages

    folder = faces_dir / "lighting" / "yaleB23"
    return [photo_stages(folder / f"{name}.pgm", face_model, REAL_RESOLUTION) for name in YALE_LIGHTS]


@pytest.fixture(scope="module")
def yale_refined(yale_stages, face_model):
    return [refine(uv, prior, fit, face_model) for uv, prior, fit in yale_stages]


def test_real_photo_re_render_is_no_worse_than_the_prior(yale_stages, yale_refined):
    for (uv, prior, _), refined in zip(yale_stages, yale_refined):
        trusted = (uv.visibility[0] > 0.5) & (prior.source[0] == 1)
        normals = torch.from_numpy(uv.normals_camera[0])
        prior_render = prior.completed[0] * sh.shading(normals, torch.from_numpy(prior.sh_camera)).numpy()
        refined_render = refined.albedo[0] * sh.shading(normals, torch.from_numpy(refined.sh_map)).numpy()
        prior_error = np.abs(prior_render - uv.colour[0])[trusted].mean()
        refined_error = np.abs(refined_render - uv.colour[0])[trusted].mean()
        assert refined_error <= prior_error, (refined_error, prior_error)
        assert np.isfinite(refined.albedo).all() and refined.albedo.max() <= 1


def test_real_refined_albedo_varies_less_across_lights_than_the_prior(yale_stages, yale_refined):
    from inference_core.evaluation.metrics import per_texel_spread

    valid = np.all([uv.visibility[0].reshape(-1) > 0.5 for uv, _, _ in yale_stages], axis=0)
    prior_maps = np.stack([prior.completed[0].reshape(-1, 3) for _, prior, _ in yale_stages])
    refined_maps = np.stack([refined.albedo[0].reshape(-1, 3) for refined in yale_refined])
    for normalise_gain in (False, True):
        prior_spread = per_texel_spread(prior_maps, valid, normalise_gain=normalise_gain)
        refined_spread = per_texel_spread(refined_maps, valid, normalise_gain=normalise_gain)
        print(f"lighting spread (gain normalised: {normalise_gain}): prior {prior_spread:.4f}, "
              f"refined {refined_spread:.4f}")
        assert refined_spread <= prior_spread
    assert per_texel_spread(refined_maps, valid, True) < 0.9 * per_texel_spread(prior_maps, valid, True)


def test_training_cache_keeps_face_tiles_and_skips_photos_without_faces(faces_dir, face_model, yale_stages,
                                                                        tmp_path, monkeypatch):
    from inference_core.train import dataset

    real_stages = dataset.photo_stages

    def stages(path, model, resolution, device="cpu"):
        # The face photo's stages already ran in `yale_stages` (same function): reuse them, run the rest.
        return yale_stages[0] if path.name == "face.pgm" else real_stages(path, model, resolution, device)

    monkeypatch.setattr(dataset, "photo_stages", stages)
    images = tmp_path / "images"
    images.mkdir()
    (images / "face.pgm").symlink_to(faces_dir / "lighting" / "yaleB23" / f"{YALE_LIGHTS[0]}.pgm")
    (images / "brick.png").symlink_to(faces_dir / "no_face" / "brick.png")
    cached, skipped = dataset.build_cache(images, tmp_path / "cache", face_model, resolution=REAL_RESOLUTION)
    assert skipped == {"brick.png": "NO_FACE"}
    assert [p.name for p in cached] == [f"face_{REAL_RESOLUTION}_v{dataset.CACHE_VERSION}.npz"]
    inputs = dataset.load_inputs(cached[0])
    uv, prior, _ = yale_stages[0]
    np.testing.assert_array_equal(inputs.colour[0].numpy(), uv.colour[0])
    np.testing.assert_array_equal(inputs.completed[0].numpy(), prior.completed[0])
    assert inputs.sh_global.shape == (1, 9, 3) and float(inputs.visibility.max()) > 0.5
    assert bool((inputs.light_visibility >= inputs.visibility).all())
