"""The add-on's bpy-free parts: the core process and line protocol (runner.py), result reading
(result.py), and build.py's extension zip. The core itself is faked here except where stated."""
from __future__ import annotations

import json
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from addon_support import write_fake_core, write_synthetic_result
from facealbedo_addon import result, runner

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
import build  # noqa: E402  (the repo-root build script)


@pytest.fixture(scope="module")
def synthetic_result(tmp_path_factory, face_model) -> Path:
    return write_synthetic_result(tmp_path_factory.mktemp("synthetic"), face_model)


def test_protocol_lines_parse_and_logs_are_ignored():
    assert runner.CoreEvent.parse('{"event": "progress", "stage": "fit", "fraction": 0.42, "message": "m"}') == \
        runner.CoreEvent("progress", stage="fit", fraction=0.42, message="m")
    assert runner.CoreEvent.parse('{"event": "error", "code": "NO_FACE", "message": "none"}').code == "NO_FACE"
    assert runner.CoreEvent.parse('{"event": "done", "result": "/x/y"}').result == "/x/y"
    for noise in ("loading model...", "{not json", '{"event": "other"}', "[1, 2]", ""):
        assert runner.CoreEvent.parse(noise) is None


def test_overall_progress_rises_through_the_stages():
    stages = list(runner.STAGE_WEIGHTS)
    fractions = [runner.overall_fraction(runner.CoreEvent("progress", stage=s, fraction=f))
                 for s in stages for f in (0.0, 0.5, 1.0)]
    assert fractions[0] == 0.0 and fractions[-1] == pytest.approx(1.0)
    assert all(b >= a for a, b in zip(fractions, fractions[1:]))


def test_request_becomes_the_documented_command(tmp_path):
    request = runner.ReconstructRequest(photo=tmp_path / "me.jpg", out_dir=tmp_path / "out", resolution=256,
                                        device="cpu", face_index=1)
    argv = runner.core_command("/py", request.arguments())
    assert argv[:4] == ["/py", "-m", "inference_core", "reconstruct"]
    assert "--progress-json" in argv and argv[argv.index("--resolution") + 1] == "256"
    assert argv[argv.index("--face-index") + 1] == "1" and "--overwrite" in argv


def test_fake_core_run_reports_progress_then_the_result(tmp_path, synthetic_result):
    python = write_fake_core(tmp_path / "bin", synthetic_result)
    request = runner.ReconstructRequest(photo=tmp_path / "face.jpg", out_dir=tmp_path / "out")
    seen = []
    outcome = runner.reconstruct_blocking(python, request, on_progress=seen.append)
    assert outcome.ok and outcome.result == tmp_path / "out" / "face"
    assert (outcome.result / "head.obj").is_file()
    assert [e.stage for e in seen] == list(runner.STAGE_WEIGHTS)


def test_core_error_becomes_one_readable_line(tmp_path, synthetic_result):
    python = write_fake_core(tmp_path / "bin", synthetic_result, no_face=("wall",))
    outcome = runner.reconstruct_blocking(python, runner.ReconstructRequest(tmp_path / "wall.png", tmp_path / "o"))
    assert not outcome.ok and outcome.code == "NO_FACE"
    assert outcome.describe() == "No face found: no face found in wall.png"


def test_missing_python_and_crashing_core_are_reported(tmp_path):
    request = runner.ReconstructRequest(photo=tmp_path / "a.jpg", out_dir=tmp_path / "o")
    missing = runner.reconstruct_blocking(tmp_path / "no-such-python", request)
    assert missing.code == "SETUP" and "preferences" in missing.message
    crashing = tmp_path / "crash"
    crashing.write_text("#!/bin/sh\necho 'Traceback: boom' >&2\nexit 3\n")
    crashing.chmod(0o755)
    crashed = runner.reconstruct_blocking(crashing, request)
    assert crashed.code == "CRASHED" and "exit status 3" in crashed.message and "boom" in crashed.message


def test_cancel_kills_the_process_and_removes_its_output(tmp_path, synthetic_result):
    python = write_fake_core(tmp_path / "bin", synthetic_result, delay=5.0)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep_me").mkdir()  # not this run's: must survive
    process = runner.CoreProcess.reconstruct(python, runner.ReconstructRequest(tmp_path / "face.jpg", out))
    deadline = time.monotonic() + 30
    while not process.poll() and time.monotonic() < deadline:
        time.sleep(0.05)
    (out / ".face.tmp-123").mkdir()  # what a core leaves while writing
    process.cancel()
    assert process.process.poll() is not None
    assert process.outcome.code == "CANCELLED"
    assert sorted(p.name for p in out.iterdir()) == ["keep_me"]


def test_inference_python_detection_order(tmp_path, monkeypatch):
    monkeypatch.delenv(runner.PYTHON_ENV, raising=False)
    addon = tmp_path / "facealbedo"
    addon.mkdir()
    assert runner.find_inference_python(addon) is None
    (addon / "wheels").mkdir()
    (addon / "wheels" / "torch-2.13.0-cp311-none-any.whl").write_bytes(b"")
    assert runner.find_inference_python(addon) == Path(sys.executable)
    (addon / runner.BUILD_INFO_FILE).write_text(json.dumps({"source": str(PROJECT)}))
    assert runner.find_inference_python(addon) == runner.venv_python(PROJECT)
    monkeypatch.setenv(runner.PYTHON_ENV, "/opt/py/bin/python")
    assert runner.find_inference_python(addon) == Path("/opt/py/bin/python")


def test_check_setup_runs_the_cores_assets_status(tmp_path, monkeypatch, assets_root):
    python = runner.venv_python(PROJECT)
    fine = runner.check_setup(python)
    assert fine.ok and any("ICT-FaceKit" in fact for fact in fine.facts)
    monkeypatch.delenv("FACEALBEDO_ASSETS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # an empty user cache: the model is missing
    missing = runner.check_setup(python)
    assert not missing.ok and "ICT-FaceKit" in missing.problems[0] and "assets fetch" in missing.problems[0]
    assert not any("optional" in problem for problem in missing.problems)


def test_check_setup_says_what_to_fix(tmp_path):
    assert "preferences" in runner.check_setup(None).problems[0]
    assert "does not exist" in runner.check_setup(tmp_path / "nope").problems[0]
    base_python = Path(sys.base_prefix) / "bin" / "python3"  # the interpreter below the venv: no torch
    bare = runner.check_setup(base_python, addon_dir=PROJECT / "facealbedo_addon")
    assert not bare.ok and "lacks" in bare.problems[0] and "make setup" in bare.problems[0]


def test_obj_reader_keeps_vertex_order_uvs_and_groups(synthetic_result, face_model):
    from addon_support import SYNTHETIC_JAW_OPEN
    from inference_core.export.mesh import export_mesh

    mesh = result.read_obj(synthetic_result / "head.obj")
    exported = export_mesh(face_model)
    weights = np.zeros(len(face_model.expression_names), np.float32)
    weights[face_model.expression_names.index("jawOpen")] = SYNTHETIC_JAW_OPEN
    expected = face_model.vertices(expression=weights)[:exported.n_vertices] / 100.0
    np.testing.assert_allclose(mesh.vertices, expected, atol=1e-6)  # vertex i is the model's vertex i
    np.testing.assert_allclose(mesh.uvs, face_model.uvs, atol=1e-6)
    assert mesh.groups == tuple(exported.polygons)  # skin, eyes, teeth, gums
    for index, (group, polygons) in enumerate(exported.polygons.items()):
        corners = mesh.loop_vertex[mesh.loop_start[mesh.polygon_group == index]]
        assert sorted(corners.tolist()) == sorted(polygons[:, 0].tolist()), group


def test_blendshapes_reproduce_the_fitted_head(synthetic_result):
    mesh = result.read_obj(synthetic_result / "head.obj")
    shapes = result.read_shapes(synthetic_result, mesh)
    assert shapes is not None and len(shapes.names) == 57
    posed = shapes.neutral + np.tensordot(shapes.weights, shapes.deltas, axes=1)
    np.testing.assert_allclose(posed, mesh.vertices, atol=1e-5)


def test_shape_names_in_arkit_spelling():
    assert result.arkit_name("eyeBlink_L") == "eyeBlinkLeft"
    assert result.arkit_name("mouthSmile_R") == "mouthSmileRight"
    assert result.arkit_name("jawOpen") == "jawOpen"


def test_build_zip_holds_manifest_addon_and_core(tmp_path):
    zip_path = build.build(tmp_path)
    version = tomllib.loads((PROJECT / "blender_manifest.toml").read_text())["version"]
    assert zip_path.name == f"facealbedo-{version}.zip"
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
    assert {"__init__.py", "runner.py", "importer.py", "batch.py", "build_info.json"} <= names
    assert "core/inference_core/__main__.py" in names and "core/inference_core/export/manifest.schema.json" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert manifest["id"] == "facealbedo" and manifest["blender_version_min"] == "4.2.0"
    assert manifest["permissions"]["files"] == "read photos, write results"
    assert "wheels" not in manifest


def test_with_wheels_bundles_and_lists_them(tmp_path):
    wheels = tmp_path / "wheelhouse"
    wheels.mkdir()
    for name in ("torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl", "numpy-1.26.4-cp311-none-any.whl"):
        (wheels / name).write_bytes(b"PK")
    zip_path = build.build(tmp_path / "dist", with_wheels=True, wheels_from=wheels, blender_platform="linux-x64")
    with zipfile.ZipFile(zip_path) as archive:
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
        names = archive.namelist()
    assert manifest["wheels"] == ["./wheels/torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl"]  # numpy: Blender's
    assert manifest["platforms"] == ["linux-x64"]
    assert "wheels/torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl" in names
    command = build.pip_download_command(tmp_path, "linux-x64")
    assert command[1:4] == ["-m", "pip", "download"] and "--only-binary=:all:" in command
    assert any(r.startswith("torch") for r in command) and not any(r.startswith("numpy") for r in command)


def test_panel_figures_from_a_manifest():
    manifest = {"seconds": {"load": 0.1, "detect": 4.0, "fit": 20.0, "refine": 30.5, "export": 1.5, "total": 56.1},
                "residuals": {"landmark_nme": 0.0171, "photometric": 0.6}, "detector": {"name": "dlib"},
                "albedo": {"source": "refined", "resolution": 256}}
    assert result.summary_lines(manifest) == ["56.1 s (refine 30.5, fit 20.0, detect 4.0)",
                                              "landmark error: 1.7% of face size",
                                              "landmarks: dlib, albedo: refined, 256 px"]
    assert result.summary_lines({}) == []


def test_shapes_from_the_exporters_glb_land_on_the_obj_vertices(tmp_path, face_model):
    """Without blendshapes.npz the importer maps head.glb's morph targets back onto head.obj's vertices."""
    from export_fixtures import made_up_values
    from inference_core.export import write_result

    photo, landmarks, fit, uv, prior, refined = made_up_values(face_model, resolution=32)
    folder = write_result(tmp_path, "made_up", photo, landmarks, fit, uv, prior, refined, face_model, {"fit": 1.0})
    mesh = result.read_obj(folder / "head.obj")
    shapes = result.read_shapes(folder, mesh)
    assert shapes is not None and shapes.names == face_model.expression_names
    np.testing.assert_allclose(shapes.weights, fit.expression, atol=1e-6)
    identity = face_model.vertices(identity=fit.identity)[:len(mesh.vertices)] / 100.0
    np.testing.assert_allclose(shapes.neutral, identity, atol=1e-5)
    jaw = face_model.expression_names.index("jawOpen")
    np.testing.assert_allclose(shapes.deltas[jaw], face_model.expression_basis_cm[jaw, :len(mesh.vertices)] / 100.0,
                               atol=1e-5)
