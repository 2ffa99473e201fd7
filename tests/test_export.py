"""The result folder on made-up stage values with known answers: files, formats, agreement, atomicity."""
from __future__ import annotations

import errno
import json
import math
import os

import cv2
import numpy as np
import pygltflib
import pytest

from export_fixtures import check_blender_report, made_up_values, run_blender_checks
from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.export import folder as folder_module
from inference_core.export import manifest, write_result
from inference_core.export.camera import project_world_points
from inference_core.export.images import read_srgb_png
from inference_core.export.lighting import blender_equirect_directions, irradiance
from inference_core.export.obj import read_obj
from inference_core.facemodel import LANDMARK_VERTICES
from inference_core.render import sh as sh_module

RESOLUTION = 64
SCALE = 0.5  # processing pixels per original pixel of the made-up photo


@pytest.fixture(scope="module")
def values(face_model):
    return made_up_values(face_model, RESOLUTION, scale=SCALE)


@pytest.fixture(scope="module")
def result(values, face_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    return write_result(out, "made_up", *values, face_model, {"fit": 1.0}, {"resolution": RESOLUTION})


def original_pixels(points: np.ndarray) -> np.ndarray:
    return (points + 0.5) / SCALE - 0.5


def test_every_contract_file_exists_and_the_manifest_is_valid(result):
    document = json.loads((result / "manifest.json").read_text())
    manifest.validate(document)
    for name, path in manifest.result_paths(result).items():
        assert path.is_file() and path.stat().st_size > 0, name
    assert document["albedo"] == {"resolution": RESOLUTION, "tiles": [1001, 1002], "source": "refined",
                                  "prior_kind": "regions"}
    assert document["seconds"]["total"] >= document["seconds"]["fit"] + document["seconds"]["export"] - 1e-3
    assert not [p for p in result.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_obj_is_the_fitted_head_in_metres_with_uvs_on_the_albedo_tiles(result, values):
    fit = values[2]
    vertices, uvs, faces = read_obj(result / "head.obj")
    np.testing.assert_allclose(vertices, fit.vertices_cm[: len(vertices)] / 100, atol=1e-6)
    skin_uvs = uvs[np.array([uv for face in faces["skin"] for _, uv in face])]
    tiles = 1001 + np.floor(skin_uvs[:, 0]).astype(int)
    assert set(np.unique(tiles)) == {1001, 1002} and (skin_uvs[:, 1] >= 0).all() and (skin_uvs[:, 1] <= 1).all()
    assert "map_Kd albedo.<UDIM>.png" in (result / "head.mtl").read_text()
    for tile in (1001, 1002):
        albedo = read_srgb_png(result / f"albedo.{tile}.png")
        np.testing.assert_allclose(albedo, values[5].albedo[tile - 1001], atol=0.01)  # 8-bit sRGB round trip


def test_camera_json_puts_landmark_vertices_on_the_fit_and_the_detections(result, values):
    photo, landmarks, fit = values[:3]
    document = json.loads((result / "camera.json").read_text())
    assert document["image_size"] == list(photo.original_size)
    vertices, _, _ = read_obj(result / "head.obj")
    pixels = project_world_points(document, vertices[LANDMARK_VERTICES])
    assert np.abs(pixels - original_pixels(fit.landmarks_2d)).max() < 0.5
    detected = original_pixels(landmarks.points)
    assert np.linalg.norm(pixels - detected, axis=1).mean() < 2 * 1.5 / SCALE  # noise: 1 px per axis


def test_lighting_is_in_the_world_frame(result, values):
    fit = values[2]
    lighting_doc = json.loads((result / "lighting.json").read_text())
    sh_world = np.array(lighting_doc["sh_radiance"])
    assert lighting_doc["frame"] == "world" and lighting_doc["basis"] == sh_module.BASIS_DESCRIPTION
    # A surface shades the same whether its normal and the light are both in camera or both in world space.
    normals_world = np.random.default_rng(1).normal(size=(50, 3))
    normals_world /= np.linalg.norm(normals_world, axis=1, keepdims=True)
    normals_camera = normals_world @ fit.camera.rotation.T
    np.testing.assert_allclose(irradiance(sh_world, normals_world), irradiance(fit.sh_camera, normals_camera),
                               rtol=1e-4, atol=1e-5)
    with np.load(result / "illumination.npz") as data:
        np.testing.assert_allclose(data["sh_global"], sh_world, atol=1e-6)
        assert data["sh_map_1001"].shape == (RESOLUTION, RESOLUTION, 9, 3)
        refined_map = values[5].sh_map
        texel = (5, 40)
        expected = irradiance(refined_map[texel], normals_camera)
        got = irradiance(data["sh_map_1001"][texel].astype(np.float64), normals_world)
        np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3)  # float16 storage


def test_light_detail_is_the_detailed_over_the_global_shading(result, values):
    """light_detail.1001.hdr = shading of the per-texel SH / shading of the global SH; 1002 adds nothing."""
    uv, refined = values[3], values[5]
    detail = cv2.imread(str(result / "light_detail.1001.hdr"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert detail.shape == (RESOLUTION, RESOLUTION, 3) and detail.min() >= 0
    seen = np.argwhere(uv.visibility[0] > 0.5)
    for texel in map(tuple, seen[:: max(1, len(seen) // 50)]):
        normal = uv.normals_camera[0][texel].astype(np.float64)[None]
        expected = irradiance(refined.sh_map[texel].astype(np.float64), normal) / irradiance(
            refined.sh_global.astype(np.float64), normal)
        np.testing.assert_allclose(detail[texel], expected[0], rtol=0.02)  # RGBE keeps ~1 % precision
    head_tile = cv2.imread(str(result / "light_detail.1002.hdr"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(head_tile, 1.0)


def test_environment_map_integrates_to_the_lighting_irradiance(result):
    """Sum of radiance x cos over the equirectangular pixels (solid-angle weighted) = lighting.json's E(n)."""
    from inference_core.export.camera import OBJ_TO_BLENDER

    radiance = cv2.imread(str(result / "environment.hdr"), cv2.IMREAD_UNCHANGED)[..., ::-1].astype(np.float64)
    height, width = radiance.shape[:2]
    directions = blender_equirect_directions(width, height) @ OBJ_TO_BLENDER  # in head.obj's frame
    solid_angle = np.cos((0.5 - (np.arange(height) + 0.5) / height) * math.pi) * (2 * math.pi / width) * (math.pi / height)
    lighting_doc = json.loads((result / "lighting.json").read_text())
    assert lighting_doc["environment"]["exact"] and lighting_doc["environment"]["irradiance_error_sphere"] < 3e-3
    sh = np.array(lighting_doc["sh_radiance"])
    for normal in np.eye(3).tolist() + (-np.eye(3)).tolist():
        cosine = np.clip(directions @ np.array(normal), 0, None)
        integral = np.einsum("hw,hwc,h->c", cosine, radiance, solid_angle)
        np.testing.assert_allclose(integral, irradiance(sh, np.array(normal)), rtol=0.02)


def test_glb_has_tiles_materials_and_expression_morph_targets(result, values, face_model):
    gltf = pygltflib.GLTF2().load(str(result / "head.glb"))
    mesh = gltf.meshes[0]
    assert [gltf.materials[p.material].name for p in mesh.primitives] == ["skin_1001", "skin_1002", "eyes",
                                                                           "teeth", "gums"]
    assert all(len(p.targets) == 57 for p in mesh.primitives)
    assert mesh.extras["targetNames"] == list(face_model.expression_names)
    np.testing.assert_allclose(mesh.weights, values[2].expression, atol=1e-7)
    textured = [gltf.materials[p.material].pbrMetallicRoughness.baseColorTexture for p in mesh.primitives[:2]]
    assert [gltf.images[gltf.textures[t.index].source].name for t in textured] == ["albedo.1001", "albedo.1002"]
    def dense(index: int, width: int) -> np.ndarray:
        view = gltf.bufferViews[gltf.accessors[index].bufferView]
        data = gltf.binary_blob()[view.byteOffset:view.byteOffset + view.byteLength]
        return np.frombuffer(data, np.float32).reshape(-1, width)

    identity_m = face_model.vertices(identity=values[2].identity) / 100
    for primitive in mesh.primitives:
        vertex_ids = dense(primitive.attributes._VERTEX_ID, 1)[:, 0].astype(np.int64)
        np.testing.assert_allclose(dense(primitive.attributes.POSITION, 3), identity_m[vertex_ids], atol=1e-6)
    for primitive in mesh.primitives[:2]:  # UVs shifted into [0, 1]
        uv = dense(primitive.attributes.TEXCOORD_0, 2)
        assert uv.min() >= 0 and uv.max() <= 1


def test_sh_with_negative_lobes_gets_a_non_negative_environment_close_in_front():
    """Radiance SH that dips below zero (no light can) gets a fitted non-negative map, its fidelity reported."""
    from inference_core.export.lighting import environment_image, environment_irradiance, radiance
    from inference_core.render.sh import fibonacci_sphere

    sh = np.zeros((9, 3))
    sh[0], sh[3], sh[6] = [1.0, 0.9, 0.8], 0.3, -1.0  # radiance < 0 towards +-Z, irradiance > 0 everywhere
    assert radiance(sh, fibonacci_sphere(500)).min() < -0.3
    toward_camera = np.array([0.0, 0.0, 1.0])
    image, report = environment_image(sh, toward_camera)
    assert not report["exact"] and image.min() >= 0
    normals = fibonacci_sphere(200)
    front = normals @ toward_camera > 0.3
    expected = irradiance(sh, normals[front])
    error = np.abs(environment_irradiance(image, normals[front]) - expected).mean() / np.abs(expected).mean()
    assert error < 0.05 and report["irradiance_error_front"] < 0.05


def test_without_refinement_the_prior_albedo_and_a_constant_map_are_shipped(values, face_model, tmp_path):
    photo, landmarks, fit, uv, prior, _ = values
    folder = write_result(tmp_path, "prior_only", photo, landmarks, fit, uv, prior, None, face_model, {}, {})
    assert json.loads((folder / "manifest.json").read_text())["albedo"]["source"] == "prior"
    np.testing.assert_allclose(read_srgb_png(folder / "albedo.1001.png"), prior.completed[0], atol=0.01)
    with np.load(folder / "illumination.npz") as data:
        assert np.ptp(data["sh_map_1001"].astype(np.float32), axis=(0, 1)).max() == 0
        np.testing.assert_allclose(data["sh_map_1001"][0, 0], data["sh_global"], atol=2e-3)
    np.testing.assert_allclose(cv2.imread(str(folder / "light_detail.1001.hdr"), cv2.IMREAD_UNCHANGED), 1.0)


@pytest.mark.blender
def test_blender_reads_the_result_as_the_contract_says(result, values, tmp_path):
    """camera.json's Blender block, head.glb's import and environment.hdr in Cycles (subprocess, ~15 s)."""
    report = run_blender_checks(result, tmp_path, LANDMARK_VERTICES.tolist())
    check_blender_report(report, result, original_pixels(values[2].landmarks_2d))


# --- atomicity and failures -----------------------------------------------------------------------------

def _write(values, face_model, out, name="atomic", **kwargs):
    return write_result(out, name, *values, face_model, {}, {}, **kwargs)


def _leftovers(out):
    return sorted(p.name for p in out.iterdir())


def test_disk_full_fails_cleanly_and_leaves_nothing(values, face_model, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("inference_core.export.result.write_glb", full)
    with pytest.raises(FaceAlbedoError) as caught:
        _write(values, face_model, tmp_path)
    assert caught.value.code is ErrorCode.DISK_FULL
    assert _leftovers(tmp_path) == []


def test_interrupt_while_writing_leaves_nothing(values, face_model, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("inference_core.export.result.write_hdr", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _write(values, face_model, tmp_path)
    assert _leftovers(tmp_path) == []


def test_existing_result_is_kept_unless_overwrite_and_never_half_replaced(values, face_model, tmp_path, monkeypatch):
    first = _write(values, face_model, tmp_path)
    created = json.loads((first / "manifest.json").read_text())["created"]
    with pytest.raises(FaceAlbedoError) as caught:
        _write(values, face_model, tmp_path)
    assert caught.value.code is ErrorCode.OUTPUT_EXISTS

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr("inference_core.export.result.write_glb", full)
        with pytest.raises(FaceAlbedoError):
            _write(values, face_model, tmp_path, overwrite=True)
    assert _leftovers(tmp_path) == ["atomic"] and (first / "head.glb").is_file()  # old result intact
    (first / "marker").write_text("old")
    _write(values, face_model, tmp_path, overwrite=True)
    assert _leftovers(tmp_path) == ["atomic"] and not (first / "marker").exists()
    assert json.loads((first / "manifest.json").read_text())["created"] >= created


def test_unwritable_output_folder_is_reported(values, face_model, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(FaceAlbedoError) as caught:
        folder_module.prepare_out_root(blocker / "out")
    assert caught.value.code is ErrorCode.OUTPUT_NOT_WRITABLE
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(FaceAlbedoError) as caught:
            _write(values, face_model, locked)
        assert caught.value.code is ErrorCode.OUTPUT_NOT_WRITABLE


def test_stale_temporary_folders_of_dead_processes_are_removed(tmp_path):
    host = folder_module._host()
    dead = tmp_path / f".x{folder_module.TEMP_MARKER}{host}-999999999-abcd1234"
    alive = tmp_path / f".y{folder_module.TEMP_MARKER}{host}-{os.getpid()}-abcd1234"
    other_host = tmp_path / f".z{folder_module.TEMP_MARKER}elsewhere-999999999-abcd1234"
    for path in (dead, alive, other_host):
        path.mkdir()
    assert folder_module.remove_stale_temp_folders(tmp_path) == [dead]
    assert _leftovers(tmp_path) == sorted([alive.name, other_host.name])
