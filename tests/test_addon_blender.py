"""The Blender extension end to end, with the bpy module and the real inference core.

Everything that imports bpy runs in a child process whose HOME, XDG_CACHE_HOME and
BLENDER_USER_RESOURCES are temporary folders: tests/addon_bpy_checks.py (installed extension, operator,
modal path, re-render, relight) under child pytests (the re-render quality apart, so that it fails alone),
and facealbedo_addon/batch.py as a script.
The core runs on as few photos as the checks need, at resolution 256; the session's
`reconstructed_result` is reused for rendering and, with the operator's result, to seed the batch.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
OPERATOR_PHOTO = Path("photos/face_recognition/obama.jpg")
BATCH_PHOTOS = (Path("photos/astronaut.png"), OPERATOR_PHOTO, Path("photos/deca/exp_0.jpg"))
NO_FACE_PHOTO = Path("no_face/brick.png")

pytestmark = pytest.mark.blender


def sandbox_environment(root: Path, **extra: str) -> dict[str, str]:
    """Our environment with Blender's user folders (and the caches bpy writes) under `root`."""
    env = dict(os.environ, **extra)
    for name in ("BLENDER_USER_RESOURCES", "HOME", "XDG_CACHE_HOME"):
        folder = root / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        env[name] = str(folder)
    return env


@pytest.fixture(scope="module")
def addon_out(tmp_path_factory) -> Path:
    """Where the child processes write: the built zip, the operator's results, the batch."""
    return tmp_path_factory.mktemp("addon")


def run_bpy_checks(selection: str, reconstructed_result: Path, faces_dir: Path, addon_out: Path, sandbox: str) -> None:
    """Run the tests of tests/addon_bpy_checks.py matching `selection` in a sandboxed child pytest."""
    env = sandbox_environment(addon_out / sandbox, FACEALBEDO_TEST_RESULT=str(reconstructed_result),
                              FACEALBEDO_TEST_PHOTO=str(faces_dir / OPERATOR_PHOTO),
                              FACEALBEDO_TEST_NO_FACE=str(faces_dir / NO_FACE_PHOTO),
                              FACEALBEDO_TEST_OUT=str(addon_out))
    env.pop("FACEALBEDO_PYTHON", None)  # the installed add-on must find the project's .venv by itself
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-s", "-k", selection,
         str(PROJECT / "tests" / "addon_bpy_checks.py")],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=1500)
    print(completed.stdout[-4000:])
    assert completed.returncode == 0, completed.stdout[-8000:] + completed.stderr[-3000:]


def test_extension_installs_reconstructs_imports_and_relights(reconstructed_result, faces_dir, addon_out):
    """Installed zip, operator on a real photo, no-face error, Cancel, modal timer path, panel, relight."""
    run_bpy_checks("not reproduces_the_photo", reconstructed_result, faces_dir, addon_out, "sandbox")


def test_cycles_render_under_the_imported_world_reproduces_the_photo(reconstructed_result, faces_dir, addon_out):
    """The loop closed: the imported head, camera and World render the photo back (PSNR in the face mask)."""
    run_bpy_checks("reproduces_the_photo", reconstructed_result, faces_dir, addon_out, "render_sandbox")


def _seed(results: Path, stem: str, source: Path) -> None:
    """Put an earlier real result where the batch looks for it, so that it is reused, not recomputed."""
    if (source / "manifest.json").is_file():
        shutil.copytree(source, results / stem)


def test_batch_script_writes_scene_files_and_summary(reconstructed_result, faces_dir, addon_out):
    photos = addon_out / "batch_photos"
    photos.mkdir()
    for photo in BATCH_PHOTOS + (NO_FACE_PHOTO,):
        (photos / photo.name).symlink_to(faces_dir / photo)
    output = addon_out / "batch"
    _seed(output / "results", "astronaut", reconstructed_result)
    _seed(output / "results", OPERATOR_PHOTO.stem, addon_out / "results" / OPERATOR_PHOTO.stem)
    env = sandbox_environment(addon_out / "batch_sandbox")
    completed = subprocess.run(
        [sys.executable, str(PROJECT / "facealbedo_addon" / "batch.py"), "--", "--input", str(photos),
         "--output", str(output), "--format", "blend,glb", "--resolution", "256", "--device", "cpu",
         "--python", sys.executable],
        cwd=addon_out, env=env, capture_output=True, text=True, timeout=1200)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    stems = [p.stem for p in BATCH_PHOTOS]
    assert sorted(p.stem for p in output.glob("*.blend")) == sorted(stems)
    assert sorted(p.stem for p in output.glob("*.glb")) == sorted(stems)
    assert all(p.stat().st_size > 100_000 for p in output.glob("*.glb"))
    with open(output / "summary.csv", newline="") as file:
        rows = {Path(row["photo"]).name: row for row in csv.DictReader(file)}
    assert rows[NO_FACE_PHOTO.name]["status"] == "NO_FACE" and rows[NO_FACE_PHOTO.name]["message"]
    assert sorted(row["status"] for row in rows.values()) == ["NO_FACE", "OK", "OK", "OK"]
    assert len(json.loads((output / "summary.json").read_text())) == 4
    assert not (output / "results" / NO_FACE_PHOTO.stem).exists()
