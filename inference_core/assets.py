"""Where model files live, how they are fetched, and what is there.

Resolution order: the folder named by FACEALBEDO_ASSETS, then the user cache folder (platformdirs), else
an ASSETS_MISSING error that names the command which fetches them (`facealbedo assets fetch`).
The layout inside either folder is that of the shared assets: `ict_facekit/ict_facekit_light_model.npz`.

`fetch_face_model()` downloads ICT-FaceKit (MIT) from its public repository at a pinned commit, checks
sha256 sums (the archive's when one is pinned, the source files we know, and the packed arrays), packs the
FaceXModel OBJ files into the .npz (`facemodel.pack`), and renames the finished folder into the cache, so
an interrupted fetch leaves nothing half-written. A machine without network can fetch the archive
elsewhere and pass it with `--archive FILE`.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

import numpy as np
import platformdirs

from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.progress import ProgressCallback, ignore_progress

ASSETS_ENV = "FACEALBEDO_ASSETS"
FACE_MODEL_RELPATH = Path("ict_facekit") / "ict_facekit_light_model.npz"

ICT_REPOSITORY = "USC-ICT/ICT-FaceKit"
ICT_COMMIT = "da5f95a607f5e6b37755b38d3385d7f2853732e5"
ICT_ARCHIVE_URL = f"https://github.com/{ICT_REPOSITORY}/archive/{ICT_COMMIT}.zip"
ICT_ARCHIVE_SHA256: str | None = None
"""sha256 of the archive GitHub serves for ICT_COMMIT. Not recorded yet: the project was written offline.
Until it is, the checks below stand in for it; `assets fetch` prints the sum it saw so it can be pinned."""
ICT_SOURCE_SHA256 = {
    "FaceXModel/generic_neutral_mesh.obj": "eedbc2576d8e5ea57f55255b8f98263213a1efb5431d8bfceed1d7aef10271f9",
    "FaceXModel/identity000.obj": "918160cf82d541336b4c367cf93199c9827832bde02511b8fbdf9019d6f1a773",
    "FaceXModel/jawOpen.obj": "8d84355e10f48b05550980cee385bcd426f4797090da76a20de0535bb2f99f4a",
    "FaceXModel/vertex_indices.json": "4f9b35306299980dd46bee4a6b79bb95dfae1953693b74b35a64f7febfd081a5",
    "LICENSE": "b20a78d8fc51657e14f3e00c8abb538d786ad00aa63210328c22565e583167e1",
}
"""sha256 of files of the pinned commit, taken from the unchanged copies in ../shared/assets/ict_facekit."""
PACKED_MODEL_SHA256 = "13dead3253851a1e8a6a2366e5302d66400f59154cdd87ecbdfc36e83c9f7e6f"
"""`facemodel.pack.content_sha256` of the fully packed model (equal to the shared .npz's)."""
COPIED_FILES = ("LICENSE", "FaceXModel/vertex_indices.json")
"""Files copied next to the packed model (the licence travels with the data)."""

Opener = Callable[[str], BinaryIO]
"""Opens a URL for reading (urllib's `urlopen` by default; tests pass file:// URLs or their own)."""
DOWNLOAD_CHUNK = 1 << 20


def user_cache_dir() -> Path:
    """The per-user folder where `facealbedo assets fetch` puts what it downloads."""
    return Path(platformdirs.user_cache_dir("facealbedo", appauthor=False))


def asset_roots() -> list[Path]:
    """The folders searched for assets, in order of preference."""
    roots = []
    if os.environ.get(ASSETS_ENV):
        roots.append(Path(os.environ[ASSETS_ENV]).expanduser())
    roots.append(user_cache_dir())
    return roots


def find_asset(relpath: Path | str) -> Path:
    """The first existing `root/relpath` over `asset_roots()`, else ASSETS_MISSING."""
    for root in asset_roots():
        candidate = root / relpath
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(r) for r in asset_roots())
    raise FaceAlbedoError(
        ErrorCode.ASSETS_MISSING,
        f"model file {relpath} not found (searched: {searched}); run `facealbedo assets fetch` "
        f"or set {ASSETS_ENV} to a folder that holds it",
    )


def face_model_path() -> Path:
    """The packed ICT-FaceKit light model."""
    return find_asset(FACE_MODEL_RELPATH)


# ---------------------------------------------------------------------------------------------- fetch


@dataclass(frozen=True)
class PackPlan:
    """What to pack and what the packed arrays must hash to (the full model unless a test says less)."""

    identity_names: Sequence[str]
    expression_names: Sequence[str]
    packed_sha256: str | None


def full_pack_plan() -> PackPlan:
    from inference_core.facemodel.pack import EXPRESSION_NAMES, IDENTITY_NAMES

    return PackPlan(IDENTITY_NAMES, EXPRESSION_NAMES, PACKED_MODEL_SHA256)


def fetch_face_model(
    *,
    url: str = ICT_ARCHIVE_URL,
    archive: Path | None = None,
    archive_sha256: str | None = ICT_ARCHIVE_SHA256,
    cache_dir: Path | None = None,
    force: bool = False,
    opener: Opener | None = None,
    plan: PackPlan | None = None,
    progress: ProgressCallback = ignore_progress,
) -> Path:
    """Download (or take `archive`), verify, pack and install ICT-FaceKit; returns the packed model's path.

    Nothing is downloaded when the cache already holds a model (unless `force`). Errors: DOWNLOAD_FAILED,
    ASSETS_CORRUPT (a checksum or the archive's content is wrong), OUTPUT_NOT_WRITABLE.
    """
    cache_dir = Path(cache_dir) if cache_dir else user_cache_dir()
    target = cache_dir / FACE_MODEL_RELPATH
    if target.is_file() and not force:
        progress("assets", 1.0, f"already present: {target}")
        return target
    plan = plan or full_pack_plan()
    _make_writable_dir(cache_dir)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=cache_dir) as work:
        work = Path(work)
        if archive is None:
            archive = work / "ict-facekit-archive"
            seen_sha256 = _download(url, archive, opener or urllib.request.urlopen, progress)
        else:
            seen_sha256 = _file_sha256(Path(archive))
        if archive_sha256 and seen_sha256 != archive_sha256.lower():
            raise FaceAlbedoError(
                ErrorCode.ASSETS_CORRUPT,
                f"the ICT-FaceKit archive's sha256 is {seen_sha256}, expected {archive_sha256}; "
                "the download is damaged or not the pinned commit: run `facealbedo assets fetch` again",
            )
        progress("assets", 0.6, "packing the FaceXModel OBJ files")
        staged = work / "ict_facekit"
        _pack_archive(Path(archive), staged, plan, source={"url": url, "commit": ICT_COMMIT,
                                                           "archive_sha256": seen_sha256})
        _install(staged, cache_dir / FACE_MODEL_RELPATH.parent)
    progress("assets", 1.0, f"installed {target}")
    return target


def _make_writable_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FaceAlbedoError(ErrorCode.OUTPUT_NOT_WRITABLE,
                              f"cannot create the assets folder {folder}: {exc}") from exc


def _download(url: str, destination: Path, opener: Opener, progress: ProgressCallback) -> str:
    """Stream `url` into `destination`; returns the sha256 of what arrived."""
    digest = hashlib.sha256()
    try:
        with opener(url) as response, open(destination, "wb") as out:
            total = int(getattr(response, "headers", {}).get("Content-Length") or 0)
            received = 0
            while chunk := response.read(DOWNLOAD_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                fraction = 0.5 * received / total if total else 0.0
                progress("assets", fraction, f"downloading ICT-FaceKit: {received / 1e6:.0f} MB")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise FaceAlbedoError(
            ErrorCode.DOWNLOAD_FAILED,
            f"could not download {url} ({exc}); check the network, or download it elsewhere and run "
            "`facealbedo assets fetch --archive FILE`",
        ) from exc
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as stream:
            while chunk := stream.read(DOWNLOAD_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise FaceAlbedoError(ErrorCode.ASSETS_MISSING, f"cannot read the archive {path}: {exc}") from exc
    return digest.hexdigest()


class _ArchiveReader:
    """Members of a GitHub repository archive (zip or tar.gz, one top folder) by repository path."""

    def __init__(self, path: Path):
        try:
            if zipfile.is_zipfile(path):
                self._zip = zipfile.ZipFile(path)
                names = [n for n in self._zip.namelist() if not n.endswith("/")]
                self._tar = None
            else:
                self._tar = tarfile.open(path, "r:*")
                names = [m.name for m in self._tar.getmembers() if m.isfile()]
                self._zip = None
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
            raise _corrupt(f"the ICT-FaceKit archive {path} cannot be opened ({exc})") from exc
        # GitHub puts everything under "<repo>-<commit>/": index members by the path below it.
        self._members = {name.split("/", 1)[1]: name for name in names if "/" in name}

    def read(self, repo_path: str) -> bytes:
        name = self._members.get(repo_path)
        if name is None:
            raise _corrupt(f"the ICT-FaceKit archive lacks {repo_path}; it is not the pinned commit")
        try:
            data = self._zip.read(name) if self._zip else self._tar.extractfile(name).read()
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
            raise _corrupt(f"cannot read {repo_path} from the ICT-FaceKit archive ({exc})") from exc
        expected = ICT_SOURCE_SHA256.get(repo_path)
        if expected and hashlib.sha256(data).hexdigest() != expected:
            raise _corrupt(f"{repo_path} in the ICT-FaceKit archive does not match the pinned commit's file")
        return data

    def close(self) -> None:
        (self._zip or self._tar).close()


def _corrupt(what: str) -> FaceAlbedoError:
    return FaceAlbedoError(ErrorCode.ASSETS_CORRUPT, f"{what}; run `facealbedo assets fetch --force` again")


def _pack_archive(archive: Path, staged: Path, plan: PackPlan, source: dict) -> None:
    """Pack the archive's FaceXModel into `staged/` (npz, licence, vertex indices, SOURCE.json)."""
    from inference_core.facemodel.pack import ObjFormatError, content_sha256, pack_face_model

    reader = _ArchiveReader(archive)
    try:
        arrays = pack_face_model(lambda name: reader.read(f"FaceXModel/{name}"),
                                 plan.identity_names, plan.expression_names)
        staged.mkdir()
        for repo_path in COPIED_FILES:
            (staged / Path(repo_path).name).write_bytes(reader.read(repo_path))
    except ObjFormatError as exc:
        raise _corrupt(f"the ICT-FaceKit archive holds an unexpected OBJ file ({exc})") from exc
    finally:
        reader.close()
    packed_sha256 = content_sha256(arrays)
    if plan.packed_sha256 and packed_sha256 != plan.packed_sha256:
        raise _corrupt(f"the packed model's content sha256 is {packed_sha256}, expected {plan.packed_sha256}")
    np.savez(staged / FACE_MODEL_RELPATH.name, **arrays)
    (staged / "SOURCE.json").write_text(json.dumps({**source, "repository": ICT_REPOSITORY,
                                                    "packed_sha256": packed_sha256}, indent=2) + "\n")


def _install(staged: Path, destination: Path) -> None:
    """Put the staged folder in place with renames: a reader sees the old folder or the new one."""
    old = destination.with_name(destination.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    try:
        if destination.exists():
            destination.rename(old)
        staged.rename(destination)
    except OSError as exc:
        raise FaceAlbedoError(ErrorCode.OUTPUT_NOT_WRITABLE,
                              f"cannot install the model into {destination}: {exc}") from exc
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------------------------- status


@dataclass(frozen=True)
class AssetState:
    """One thing the pipeline can use: whether it is there, where, and what to do if it is not."""

    name: str
    present: bool
    path: Path | None
    note: str


def asset_status() -> list[AssetState]:
    """The morphable model and both landmark detectors' weights, as this machine has them now."""
    from inference_core.landmarks.dlib_predictor import PREDICTOR_FILE, predictor_path
    from inference_core.landmarks.fan import FAN_WEIGHTS_FILE, fan_available, fan_weights_path

    states = []
    model = next((root / FACE_MODEL_RELPATH for root in asset_roots() if (root / FACE_MODEL_RELPATH).is_file()),
                 None)
    states.append(AssetState(
        "ICT-FaceKit light model", model is not None, model,
        f"{model.stat().st_size / 1e6:.1f} MB" if model else
        f"missing (searched {', '.join(str(r) for r in asset_roots())}): run `facealbedo assets fetch`"))
    dlib_path = predictor_path()
    states.append(AssetState(
        "dlib 68-point landmarks", dlib_path is not None, dlib_path,
        "offline landmark detector" if dlib_path else
        f"missing {PREDICTOR_FILE}: `pip install face-recognition-models`"))
    fan_path, fan_ok = fan_weights_path(), fan_available()
    states.append(AssetState(
        "face-alignment FAN landmarks (optional)", fan_ok, fan_path,
        "used by --detector auto" if fan_ok else
        f"{FAN_WEIGHTS_FILE} not in {fan_path.parent}; the dlib detector is used instead"))
    return states


def describe_status(states: list[AssetState]) -> str:
    """Human-readable lines for `facealbedo assets status`."""
    lines = [f"asset folders searched: {', '.join(str(r) for r in asset_roots())}",
             f"`assets fetch` writes to: {user_cache_dir()}"]
    for state in states:
        if state.present:
            lines.append(f"[ok]      {state.name}: {state.path} ({state.note})")
        else:
            lines.append(f"[MISSING] {state.name}: {state.note}")
    return "\n".join(lines)


__all__ = [
    "ASSETS_ENV", "FACE_MODEL_RELPATH", "ICT_ARCHIVE_URL", "ICT_COMMIT", "AssetState", "PackPlan",
    "asset_roots", "asset_status", "describe_status", "face_model_path", "fetch_face_model", "find_asset",
    "user_cache_dir",
]
