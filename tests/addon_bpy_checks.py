"""The add-on inside Blender (bpy module). Run by tests/test_addon_blender.py in a child pytest whose
HOME, XDG_CACHE_HOME and BLENDER_USER_RESOURCES are temporary folders, so that Blender's user files and
the installed extension never touch the real ones (and the parent session's caches stay as they were).

Inputs from the parent (environment): FACEALBEDO_TEST_RESULT (the session's `reconstructed_result`),
FACEALBEDO_TEST_PHOTO (a dev photo for the operator), FACEALBEDO_TEST_NO_FACE, FACEALBEDO_TEST_OUT.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

PROJECT = Path(__file__).resolve().parents[1]
if "BLENDER_USER_RESOURCES" not in os.environ:
    raise pytest.UsageError("run through tests/test_addon_blender.py (needs Blender's user folders in a sandbox)")

import bpy  # noqa: E402

from addon_support import write_synthetic_result  # noqa: E402

ADDON_MODULE = "bl_ext.user_default.facealbedo"
PSNR_MIN_DB = 22.0
RENDER_SIDE = 256


def _env_path(name: str) -> Path:
    return Path(os.environ[name])


@pytest.fixture(scope="module")
def addon():
    """The extension built by build.py, installed from its zip and enabled; returns its package."""
    sys.path.insert(0, str(PROJECT))
    import build

    zip_path = build.build(_env_path("FACEALBEDO_TEST_OUT") / "dist")
    result = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                      enable_on_install=True)
    assert result == {"FINISHED"}
    assert ADDON_MODULE in bpy.context.preferences.addons
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.output_dir = str(_env_path("FACEALBEDO_TEST_OUT") / "results")
    prefs.device = "cpu"
    return sys.modules[ADDON_MODULE]


def _submodule(name: str):
    return sys.modules[f"{ADDON_MODULE}.{name}"]


@pytest.fixture()
def empty_scene(addon):
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy.context.scene


def render(scene: bpy.types.Scene, path: Path, samples: int) -> np.ndarray:
    """Cycles render of the scene camera at RENDER_SIDE px (longer side) -> (H, W, 4) sRGB floats."""
    from PIL import Image

    scene.render.engine = "CYCLES"
    scene.cycles.samples = samples
    scene.cycles.device = "CPU"
    width, height = scene.render.resolution_x, scene.render.resolution_y
    scale = RENDER_SIDE / max(width, height)
    scene.render.resolution_x, scene.render.resolution_y = round(width * scale), round(height * scale)
    scene.render.filepath = str(path)
    scene.render.image_settings.file_format = "PNG"
    bpy.ops.render.render(write_still=True)
    scene.render.resolution_x, scene.render.resolution_y = width, height
    return np.asarray(Image.open(path).convert("RGBA"), np.float32) / 255


def _emission_material(name: str, visibility: Path | None) -> bpy.types.Material:
    """Emission = the core's texel visibility on the face tile (UV u < 1) when given, else 0 (black)."""
    material = bpy.data.materials.new(name)
    if material.node_tree is None:  # Blender < 5 makes node trees on request
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    output, emission = nodes.new("ShaderNodeOutputMaterial"), nodes.new("ShaderNodeEmission")
    links.new(emission.outputs[0], output.inputs["Surface"])
    emission.inputs["Strength"].default_value = 0.0
    if visibility is not None:
        coords, split = nodes.new("ShaderNodeTexCoord"), nodes.new("ShaderNodeSeparateXYZ")
        less, times = nodes.new("ShaderNodeMath"), nodes.new("ShaderNodeMath")
        texture = nodes.new("ShaderNodeTexImage")
        texture.image = bpy.data.images.load(str(visibility), check_existing=True)
        texture.image.colorspace_settings.name = "Non-Color"
        texture.extension = "CLIP"
        less.operation, less.inputs[1].default_value, times.operation = "LESS_THAN", 1.0, "MULTIPLY"
        links.new(coords.outputs["UV"], split.inputs[0])
        links.new(coords.outputs["UV"], texture.inputs["Vector"])
        links.new(split.outputs[0], less.inputs[0])
        links.new(less.outputs[0], times.inputs[0])
        links.new(texture.outputs["Color"], times.inputs[1])
        links.new(times.outputs[0], emission.inputs["Strength"])
    return material


def face_mask(scene: bpy.types.Scene, face, path: Path) -> np.ndarray:
    """(H, W) bool: pixels showing face-tile skin that the core saw well (visibility.1001.png > 0.5);
    not eyes, teeth, the head tile or the background."""
    head, materials = face.head, list(face.head.data.materials)
    visible = _emission_material("mask", face.result.folder / "visibility.1001.png")
    black = _emission_material("black", None)
    world = scene.world
    try:
        for index, material in enumerate(materials):
            head.data.materials[index] = visible if material.name.endswith(" skin") else black
        scene.world = None
        image = render(scene, path, samples=4)
    finally:
        scene.world = world
        for index, material in enumerate(materials):
            head.data.materials[index] = material
    return image[..., 0] > 0.735  # the sRGB encoding of visibility 0.5


def photo_at(path: Path, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image, ImageOps

    photo = ImageOps.exif_transpose(Image.open(path)).convert("RGB").resize(size, Image.LANCZOS)
    return np.asarray(photo, np.float32) / 255


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


# --------------------------------------------------------------------------- installed extension, real core


def test_installed_operator_reconstructs_a_dev_photo(addon, empty_scene):
    photo = _env_path("FACEALBEDO_TEST_PHOTO")
    assert bpy.ops.facealbedo.reconstruct(photo=str(photo), resolution=256) == {"FINISHED"}
    scene = bpy.context.scene
    collection = bpy.data.collections[photo.stem]
    head = next(o for o in collection.objects if o.type == "MESH")
    mesh = head.data
    assert mesh.uv_layers and len(mesh.vertices) > 20000
    uvs = np.zeros(len(mesh.loops) * 2, np.float32)
    mesh.uv_layers[0].data.foreach_get("uv", uvs)
    assert uvs[0::2].max() > 1.0  # UDIM: the head and neck tile 1002 is used
    assert all(p.use_smooth for p in mesh.polygons[:100])
    keys = [k.name for k in mesh.shape_keys.key_blocks]
    assert {"jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft", "FittedExpression"} <= set(keys)
    assert len(keys) == 1 + 1 + 57
    skin = next(m for m in mesh.materials if m.name.endswith(" skin"))
    bsdf = next(n for n in skin.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    multiply = bsdf.inputs["Base Color"].links[0].from_node
    assert multiply.name == _submodule("relight").LIGHT_DETAIL_NODE and multiply.blend_type == "MULTIPLY"
    assert multiply.inputs["Factor"].default_value == 1.0  # imported under the photo's light
    albedo_node, detail_node = (multiply.inputs[name].links[0].from_node for name in ("A", "B"))
    image, detail = albedo_node.image, detail_node.image
    assert albedo_node.type == "TEX_IMAGE" and image.source == "TILED"
    assert {t.number for t in image.tiles} == {1001, 1002} and image.colorspace_settings.name == "sRGB"
    assert detail.source == "TILED" and detail.colorspace_settings.name == "Non-Color"
    assert Path(detail.filepath).name == "light_detail.<UDIM>.hdr"
    assert 0.3 <= bsdf.inputs["Roughness"].default_value <= 0.7
    assert 0.05 <= bsdf.inputs["Subsurface Weight"].default_value <= 0.3
    assert {"eye", "teeth", "gums"} <= {m.name.split()[-1] for m in mesh.materials}
    camera = scene.camera
    assert camera is not None and camera.name in collection.objects
    assert Path(camera.data.background_images[0].image.filepath).resolve() == photo.resolve()
    environment = next(n for n in scene.world.node_tree.nodes if n.type == "TEX_ENVIRONMENT")
    assert Path(environment.image.filepath).name == "environment.hdr"
    result = Path(scene.facealbedo.last_result)
    assert result.parent == _env_path("FACEALBEDO_TEST_OUT") / "results" and (result / "manifest.json").is_file()


def test_no_face_photo_gives_one_readable_error(addon, empty_scene):
    no_face = _env_path("FACEALBEDO_TEST_NO_FACE")
    with pytest.raises(RuntimeError) as error:  # bpy turns an operator's ERROR report into this
        bpy.ops.facealbedo.reconstruct(photo=str(no_face), resolution=256)
    message = str(error.value).strip()
    assert message.startswith("Error: No face found:") and no_face.name in message
    assert "\n" not in message and "Traceback" not in message
    assert no_face.stem not in bpy.data.collections
    assert not (_env_path("FACEALBEDO_TEST_OUT") / "results" / no_face.stem).exists()


def test_cancel_kills_the_core_and_leaves_nothing(addon, empty_scene, tmp_path):
    operators, runner = _submodule("operators"), _submodule("runner")
    photo = _env_path("FACEALBEDO_TEST_PHOTO")
    out = tmp_path / "cancelled"
    request = runner.ReconstructRequest(photo=photo, out_dir=out, resolution=256, device="cpu")
    process = runner.CoreProcess.reconstruct(runner.find_inference_python(), request)
    job = operators.ReconstructJob(process, photo)
    state = bpy.context.window_manager.facealbedo_job
    deadline = time.monotonic() + 120
    while state.stage in ("", "start") and job.step(bpy.context) == job.RUNNING:
        assert time.monotonic() < deadline, "the core reported no progress in 120 s"
        time.sleep(0.1)
    assert job.state == job.RUNNING, job.message  # the core is working on it
    job.cancel(bpy.context)
    assert process.process.poll() is not None  # the process is gone
    assert job.state == job.CANCELLED and not state.running
    assert not out.exists() or not any(photo.stem in p.name for p in out.iterdir())
    assert photo.stem not in bpy.data.collections


# --------------------------------------------------------------------------- modal path, fake process


class FakeProcess:
    """Stands in for runner.CoreProcess: a scripted list of events, one batch per poll()."""

    def __init__(self, runner, batches, outcome):
        self.runner, self.batches, self.final = runner, list(batches), outcome
        self.outcome, self.last_progress, self.cancelled = None, runner.CoreEvent("progress", stage="start"), False

    def poll(self):
        events = self.batches.pop(0) if self.batches else []
        for event in events:
            self.last_progress = event
        if not self.batches:
            self.outcome = self.final
        return events

    @property
    def finished(self):
        return self.outcome is not None

    def cancel(self):
        self.cancelled = True


def _progress(runner, stage, fraction):
    return runner.CoreEvent("progress", stage=stage, fraction=fraction, message=f"{stage} work")


def test_timer_callback_shows_progress_then_imports(addon, empty_scene, tmp_path, face_model):
    operators, runner = _submodule("operators"), _submodule("runner")
    folder = write_synthetic_result(tmp_path, face_model, stem="timer_face")
    batches = [[_progress(runner, "detect", 1.0)], [_progress(runner, "fit", 0.5)], [_progress(runner, "refine", 0.2)],
               []]
    process = FakeProcess(runner, batches, runner.RunOutcome(result=folder, seconds=3.0))
    job = operators.ReconstructJob(process, Path("/photos/timer_face.jpg"))
    state = bpy.context.window_manager.facealbedo_job
    seen = []
    while job.step(bpy.context) == job.RUNNING:
        seen.append((state.stage, state.fraction))
    assert [s for s, _ in seen] == ["detect", "fit", "refine"]
    assert all(b[1] > a[1] for a, b in zip(seen, seen[1:]))  # the bar only moves forward
    assert job.state == job.DONE and "timer_face" in bpy.data.collections and not state.running
    assert bpy.context.scene.facealbedo.last_result == str(folder)


def test_timer_callback_reports_a_core_error_once(addon, empty_scene):
    operators, runner = _submodule("operators"), _submodule("runner")
    outcome = runner.RunOutcome(code="ASSETS_MISSING", message="model file not found; run `facealbedo assets fetch`")
    job = operators.ReconstructJob(FakeProcess(runner, [[_progress(runner, "load", 1.0)]], outcome), Path("x.jpg"))
    while job.step(bpy.context) == job.RUNNING:
        pass
    assert job.state == job.FAILED
    assert job.message == "Model files missing: model file not found; run `facealbedo assets fetch`"
    assert bpy.context.window_manager.facealbedo_job.error == job.message


def test_import_face_result_operator(addon, empty_scene, tmp_path, face_model):
    folder = write_synthetic_result(tmp_path, face_model, stem="imported_face")
    assert bpy.ops.facealbedo.import_result(directory=str(folder)) == {"FINISHED"}
    assert "imported_face" in bpy.data.collections
    with pytest.raises(RuntimeError) as error:
        bpy.ops.facealbedo.import_result(directory=str(tmp_path))
    assert "not a complete FaceAlbedo result" in str(error.value)
    damaged = write_synthetic_result(tmp_path, face_model, stem="damaged")
    camera = json.loads((damaged / "camera.json").read_text())
    del camera["blender"]["lens_mm"]
    (damaged / "camera.json").write_text(json.dumps(camera))
    with pytest.raises(RuntimeError) as error:  # one report line, not a traceback
        bpy.ops.facealbedo.import_result(directory=str(damaged))
    assert "lens_mm" in str(error.value) and "Traceback" not in str(error.value)
    assert "damaged" not in bpy.data.collections  # the half-made import was removed


class RecordingLayout:
    """Stands in for bpy's UILayout (panels are not drawn without a window): records every call."""

    def __init__(self, calls: list):
        self.calls = calls

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return self
        return record


def test_panel_draws_photo_progress_and_figures(addon, empty_scene, tmp_path, face_model):
    panel_module = _submodule("panel")
    settings, job = bpy.context.scene.facealbedo, bpy.context.window_manager.facealbedo_job
    settings.photo = os.environ["FACEALBEDO_TEST_PHOTO"]
    settings.last_result = str(write_synthetic_result(tmp_path, face_model, stem="drawn"))
    job.running, job.stage, job.fraction = True, "fit", 0.4
    calls = []
    panel_module.FACEALBEDO_PT_face.draw(type("Panel", (), {"layout": RecordingLayout(calls)})(), bpy.context)
    names = [name for name, _, _ in calls]
    thumbnail = panel_module._thumbnails[settings.photo]  # icon ids stay 0 without a window; the pixels load
    assert thumbnail.image_size[0] > 0 and "prop" in names
    progress = next(kwargs for name, _, kwargs in calls if name == "progress")
    assert progress["factor"] == pytest.approx(0.4) and progress["text"] == "fit"
    operators = [args[0] for name, args, _ in calls if name == "operator"]
    assert "facealbedo.cancel" in operators and "facealbedo.reconstruct" not in operators
    labels = [kwargs.get("text", "") for name, _, kwargs in calls if name == "label"]
    assert any(label.startswith("3.0 s") for label in labels)  # the synthetic manifest's seconds
    job.running = False


def test_preferences_find_the_project_python_and_check_setup_passes(addon, empty_scene):
    preferences = _submodule("preferences")
    prefs = preferences.get_preferences(bpy.context)
    prefs.python_path = ""
    assert preferences.inference_python(prefs) == PROJECT / ".venv" / "bin" / "python"  # via build_info.json
    calls = []
    preferences.FaceAlbedoPreferences.draw(type("Prefs", (), {"layout": RecordingLayout(calls),
                                                              **{k: getattr(prefs, k) for k in
                                                                 ("python_path", "device", "resolution",
                                                                  "output_dir")}})(), bpy.context)
    assert ("operator", ("facealbedo.check_setup",), {"icon": "CHECKBOX_HLT"}) in calls
    assert bpy.ops.facealbedo.check_setup() == {"FINISHED"}
    prefs.python_path = "/nonexistent/python"
    with pytest.raises(RuntimeError) as error:
        bpy.ops.facealbedo.check_setup()
    assert "does not exist" in str(error.value)
    prefs.python_path = ""


# --------------------------------------------------------------------------- re-rendering a real result


@pytest.fixture(scope="module")
def imported_real(addon):
    bpy.ops.wm.read_homefile(use_empty=True)
    face = _submodule("importer").import_result(_env_path("FACEALBEDO_TEST_RESULT"), bpy.context)
    return face


def test_render_under_the_imported_world_reproduces_the_photo(imported_real, tmp_path):
    scene, face = bpy.context.scene, imported_real
    image = render(scene, tmp_path / "photo_light.png", samples=64)
    mask = face_mask(scene, face, tmp_path / "mask.png")
    photo = photo_at(face.result.photo, (image.shape[1], image.shape[0]))
    assert mask.sum() > 1000  # the face covers a good part of the frame
    value = psnr(image[..., :3][mask], photo[mask])
    print(f"re-render PSNR in the face mask: {value:.2f} dB")
    assert value >= PSNR_MIN_DB


def test_relight_presets_change_the_render_in_cycles_and_eevee(imported_real, tmp_path):
    scene, face = bpy.context.scene, imported_real
    relight = _submodule("relight")
    mask = face_mask(scene, face, tmp_path / "mask.png")
    relight.apply_preset(scene, face.collection, relight.PHOTO)
    photo_light = render(scene, tmp_path / "photo_light.png", samples=16)[..., :3][mask]
    relight.apply_preset(scene, face.collection, relight.STUDIO)
    assert len([o for o in face.collection.all_objects if o.type == "LIGHT"]) == 3
    skin = next(m for m in face.head.data.materials if m.name.endswith(" skin"))
    detail_factor = skin.node_tree.nodes[relight.LIGHT_DETAIL_NODE].inputs["Factor"]
    assert detail_factor.default_value == 0.0  # the photo's shadows do not belong under another light
    studio = render(scene, tmp_path / "studio.png", samples=16)[..., :3][mask]
    relight.apply_preset(scene, face.collection, relight.RIM)
    rim = render(scene, tmp_path / "rim.png", samples=16)[..., :3][mask]
    for relit in (studio, rim):
        assert np.abs(relit - photo_light).mean() > 0.05 and psnr(relit, photo_light) < 20
    assert rim.mean() < studio.mean()  # rim light leaves the front of the face dark
    scene.render.engine = "BLENDER_EEVEE"
    scene.render.resolution_percentage = 100
    width, height = scene.render.resolution_x, scene.render.resolution_y
    scene.render.resolution_x, scene.render.resolution_y = 64, 64 * height // width
    scene.render.filepath = str(tmp_path / "eevee.png")
    bpy.ops.render.render(write_still=True)
    from PIL import Image

    eevee = np.asarray(Image.open(tmp_path / "eevee.png").convert("RGB"), np.float32) / 255
    assert eevee.max() > 0.2  # the rim lights reach the head in EEVEE too
    scene.render.resolution_x, scene.render.resolution_y = width, height
    relight.apply_preset(scene, face.collection, relight.PHOTO)
    assert detail_factor.default_value == 1.0
    calls = []  # the panel offers the factor as a slider
    _submodule("panel").FACEALBEDO_PT_face.draw(type("Panel", (), {"layout": RecordingLayout(calls)})(), bpy.context)
    sliders = [args[0] for name, args, kwargs in calls if name == "prop" and kwargs.get("text") == "Photo shadows"]
    assert sliders and sliders[0] == detail_factor
    assert not [o for o in face.collection.all_objects if o.type == "LIGHT"]
    assert scene.world.name == face.collection["facealbedo_world"]
