"""Assets: the OBJ packer against the shared model, fetching from a local archive, checksums, status."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

from inference_core import assets
from inference_core.cli import main
from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.facemodel.pack import EXPRESSION_NAMES, content_sha256, pack_face_model

SAMPLE_IDENTITIES, SAMPLE_EXPRESSIONS = ("identity000",), ("jawOpen",)


@pytest.fixture(scope="module")
def ict_dir(assets_root) -> Path:
    return assets_root / "ict_facekit"


@pytest.fixture(scope="module")
def shared_model(ict_dir) -> dict[str, np.ndarray]:
    with np.load(ict_dir / "ict_facekit_light_model.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def expected_sample(shared_model) -> dict[str, np.ndarray]:
    """The rows of the shared model that the three sample OBJ files must reproduce."""
    jaw_open = list(shared_model["expression_names"]).index("jawOpen")
    return {
        "neutral_vertices": shared_model["neutral_vertices"],
        "face_vertex_indices_quadpad": shared_model["face_vertex_indices_quadpad"],
        "face_uv_indices_quadpad": shared_model["face_uv_indices_quadpad"],
        "uv_coords": shared_model["uv_coords"],
        "identity_names": np.array(SAMPLE_IDENTITIES),
        "identity_deltas": shared_model["identity_deltas"][:1],
        "expression_names": np.array(SAMPLE_EXPRESSIONS),
        "expression_deltas": shared_model["expression_deltas"][jaw_open:jaw_open + 1],
    }


@pytest.fixture(scope="module")
def sample_plan(expected_sample) -> assets.PackPlan:
    return assets.PackPlan(SAMPLE_IDENTITIES, SAMPLE_EXPRESSIONS, content_sha256(expected_sample))


def repository_files(ict_dir: Path) -> dict[str, bytes]:
    """The files of the pinned commit that we have, by their path in the repository."""
    files = {f"FaceXModel/{p.name}": p.read_bytes() for p in (ict_dir / "obj_sample").glob("*.obj")}
    files["FaceXModel/vertex_indices.json"] = (ict_dir / "vertex_indices.json").read_bytes()
    files["LICENSE"] = (ict_dir / "LICENSE").read_bytes()
    return files


def make_archive(path: Path, files: dict[str, bytes]) -> Path:
    """A GitHub-style archive (one top folder) as zip or tar.gz, by the suffix of `path`."""
    top = f"ICT-FaceKit-{assets.ICT_COMMIT}"
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
            for name, data in files.items():
                archive.writestr(f"{top}/{name}", data)
    else:
        with tarfile.open(path, "w:gz", compresslevel=1) as archive:
            for name, data in files.items():
                info = tarfile.TarInfo(f"{top}/{name}")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


def no_network(url):
    raise AssertionError(f"tried to download {url}")


def test_packer_reproduces_the_shared_model_rows(ict_dir, expected_sample):
    sample = ict_dir / "obj_sample"
    packed = pack_face_model(lambda name: (sample / name).read_bytes(), SAMPLE_IDENTITIES, SAMPLE_EXPRESSIONS)
    assert packed.keys() == expected_sample.keys()
    for key, expected in expected_sample.items():
        assert packed[key].dtype.kind == expected.dtype.kind and packed[key].shape == expected.shape, key
        assert np.array_equal(packed[key], expected), key  # bit-exact float32, not just close


def test_pinned_hashes_describe_the_shared_files(ict_dir, shared_model):
    assert content_sha256(shared_model) == assets.PACKED_MODEL_SHA256
    assert tuple(shared_model["expression_names"]) == EXPRESSION_NAMES
    for repo_path, data in repository_files(ict_dir).items():
        assert hashlib.sha256(data).hexdigest() == assets.ICT_SOURCE_SHA256[repo_path], repo_path


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_fetch_downloads_verifies_packs_and_caches(tmp_path, ict_dir, expected_sample, sample_plan, suffix):
    archive = make_archive(tmp_path / f"ict{suffix}", repository_files(ict_dir))
    archive_sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    path = assets.fetch_face_model(url=archive.as_uri(), archive_sha256=archive_sha256, cache_dir=cache,
                                   plan=sample_plan)
    assert path == cache / assets.FACE_MODEL_RELPATH
    with np.load(path) as packed:
        for key, expected in expected_sample.items():
            assert np.array_equal(packed[key], expected), key
    source = json.loads((path.parent / "SOURCE.json").read_text())
    assert source["archive_sha256"] == archive_sha256 and source["commit"] == assets.ICT_COMMIT
    assert (path.parent / "LICENSE").read_bytes() == (ict_dir / "LICENSE").read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == ["ict_facekit"]  # no temporary files left
    # Cached: a second fetch does not download, and the loader finds the model in the cache.
    assert assets.fetch_face_model(url="https://example.invalid/x.zip", cache_dir=cache, opener=no_network) == path


def test_model_is_found_in_the_user_cache(tmp_path, monkeypatch, ict_dir, sample_plan):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(assets.ASSETS_ENV)
    with pytest.raises(FaceAlbedoError) as caught:
        assets.face_model_path()
    assert caught.value.code is ErrorCode.ASSETS_MISSING and "facealbedo assets fetch" in caught.value.message
    archive = make_archive(tmp_path / "ict.zip", repository_files(ict_dir))
    installed = assets.fetch_face_model(archive=archive, plan=sample_plan)
    assert installed.is_relative_to(tmp_path / "xdg") and assets.face_model_path() == installed
    monkeypatch.setenv(assets.ASSETS_ENV, str(ict_dir.parent))  # FACEALBEDO_ASSETS comes first
    assert assets.face_model_path() == ict_dir / "ict_facekit_light_model.npz"


def test_wrong_archive_checksum_installs_nothing(tmp_path, ict_dir, sample_plan):
    archive = make_archive(tmp_path / "ict.zip", repository_files(ict_dir))
    with pytest.raises(FaceAlbedoError) as caught:
        assets.fetch_face_model(archive=archive, archive_sha256="0" * 64, cache_dir=tmp_path / "cache",
                                plan=sample_plan)
    assert caught.value.code is ErrorCode.ASSETS_CORRUPT
    assert list((tmp_path / "cache").iterdir()) == []


def test_altered_source_file_is_refused(tmp_path, ict_dir, sample_plan):
    files = repository_files(ict_dir)
    files["FaceXModel/jawOpen.obj"] = files["FaceXModel/jawOpen.obj"].replace(b"\nv 0 ", b"\nv 0.5 ", 1)
    archive = make_archive(tmp_path / "ict.zip", files)
    with pytest.raises(FaceAlbedoError) as caught:
        assets.fetch_face_model(archive=archive, cache_dir=tmp_path / "cache", plan=sample_plan)
    assert caught.value.code is ErrorCode.ASSETS_CORRUPT and "jawOpen.obj" in caught.value.message


def test_archive_without_the_model_is_refused(tmp_path):
    archive = make_archive(tmp_path / "other.zip", {"README.md": b"not ICT-FaceKit"})
    with pytest.raises(FaceAlbedoError) as caught:
        assets.fetch_face_model(archive=archive, cache_dir=tmp_path / "cache")
    assert caught.value.code is ErrorCode.ASSETS_CORRUPT and "generic_neutral_mesh.obj" in caught.value.message


def test_download_failure(tmp_path):
    def offline(url):
        raise urllib.error.URLError("Name or service not known")

    with pytest.raises(FaceAlbedoError) as caught:
        assets.fetch_face_model(cache_dir=tmp_path, opener=offline)
    assert caught.value.code is ErrorCode.DOWNLOAD_FAILED and "--archive" in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_cli_fetch_of_an_incomplete_archive_exits_with_assets_corrupt(tmp_path, ict_dir, capsys):
    archive = make_archive(tmp_path / "ict.zip", repository_files(ict_dir))  # 1 of 100 identities
    status = main(["assets", "fetch", "--archive", str(archive), "--cache-dir", str(tmp_path / "cache")])
    assert status == ErrorCode.ASSETS_CORRUPT.exit_status
    assert "identity001.obj" in capsys.readouterr().err


def test_status_says_what_is_present_and_missing(tmp_path, monkeypatch, capsys, ict_dir):
    assert main(["assets", "status"]) == 0
    out = capsys.readouterr().out
    assert str(ict_dir / "ict_facekit_light_model.npz") in out and "shape_predictor_68" in out
    assert "FAN" in out
    monkeypatch.setenv(assets.ASSETS_ENV, str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert main(["assets", "status"]) == ErrorCode.ASSETS_MISSING.exit_status
    out = capsys.readouterr().out
    assert "[MISSING] ICT-FaceKit" in out and "facealbedo assets fetch" in out
