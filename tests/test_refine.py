"""Detail refinement: the refined albedo must be closer to the truth than the prior's, with the local
lighting moved into the illumination map, detail kept, and the photo still re-rendered."""
from __future__ import annotations

import dataclasses

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
    assert dataclasses.asdict(RefineSettings())["iterations"] > 0
