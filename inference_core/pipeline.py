"""reconstruct(): the chain of DESIGN.md's data flow, one plain stage function after another.

    photo ─load─▶ Photo ─detect─▶ Landmarks ─fit─▶ FaceFit ─unwrap─▶ UVTexture ─prior─▶ PriorAlbedo
          ─refine─▶ RefinedAlbedo ─export─▶ result folder

Nothing here computes anything itself: it resolves settings, times the stages, reports progress and
hands the values on. The output folder is checked before the expensive stages run, so a wrong --out or an
existing result fails in a second, not after the fit.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from inference_core.device import resolve_device
from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.export.folder import check_target_free, prepare_out_root, remove_stale_temp_folders
from inference_core.export.manifest import result_paths
from inference_core.progress import ProgressCallback, ignore_progress
from inference_core.values import Photo

STAGES = ("load", "detect", "fit", "unwrap", "prior", "refine", "export")
"""The stages in order, as they appear in progress reports and in manifest.json's `seconds`."""
QUALITIES = ("full", "preview")
"""full: every stage. preview: landmark-only fit (no photometric stage) and no refinement, for a quick look
(the albedo is the prior's completed one; roughly a fifth of the time on CPU)."""

T = TypeVar("T")


@dataclass(frozen=True)
class ReconstructionResult:
    """What `reconstruct()` made: the result folder, its files, and the figures of the run."""

    folder: Path
    paths: dict[str, Path]  # "manifest", "head_obj", "albedo_1001", ... (export.manifest.result_paths)
    seconds: dict[str, float]  # per stage, plus "total"
    residuals: dict[str, float]  # the fit's final loss terms
    detector: str
    albedo_source: str  # "refined" or "prior"
    manifest: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_folder(cls, folder: Path | str) -> "ReconstructionResult":
        """Read a finished result folder (e.g. one that a batch skips)."""
        folder = Path(folder)
        document = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        return cls(folder=folder, paths=result_paths(folder), seconds=document["seconds"],
                   residuals=document["residuals"], detector=document["detector"]["name"],
                   albedo_source=document["albedo"]["source"], manifest=document)


def result_name(photo: str | Path | Photo, name: str | None) -> str:
    """The result folder's name: `name`, else the photo file's stem, else 'photo'."""
    if name:
        return name
    path = photo.path if isinstance(photo, Photo) else Path(photo)
    return Path(path).stem if path is not None else "photo"


def _prepare_output(photo: str | Path | Photo, out: str | Path, name: str | None, overwrite: bool, quality: str,
                    resolution: int) -> tuple[Path, str]:
    """Check the request and the output folder before any expensive import or stage: (out root, result name)."""
    if quality not in QUALITIES:
        raise FaceAlbedoError(ErrorCode.USAGE, f"unknown quality {quality!r}: use one of {', '.join(QUALITIES)}")
    if resolution < 16:
        raise FaceAlbedoError(ErrorCode.USAGE, f"--resolution {resolution} is too small; use at least 16 (default 1024)")
    out_root = prepare_out_root(Path(out))
    remove_stale_temp_folders(out_root)
    stem = result_name(photo, name)
    check_target_free(out_root / stem, overwrite)
    return out_root, stem


class _StageClock:
    """Times each stage and reports its start and end to the progress callback."""

    def __init__(self, progress: ProgressCallback):
        self.progress, self.seconds = progress, {}

    def run(self, stage: str, message: str, call: Callable[[], T]) -> T:
        self.progress(stage, 0.0, message)
        start = time.perf_counter()
        value = call()
        self.seconds[stage] = time.perf_counter() - start
        self.progress(stage, 1.0, "done")
        return value


def reconstruct(photo: str | Path | Photo, out: str | Path = "out", *, resolution: int = 1024, device: str = "auto",
                detector: str = "auto", face_index: int = 0, weights: str | Path | None = None,
                overwrite: bool = False, progress: ProgressCallback | None = None, name: str | None = None,
                quality: str = "full", fit_settings: Any = None, prior_settings: Any = None,
                refine_settings: Any = None) -> ReconstructionResult:
    """Reconstruct a relightable head from one photo into the folder `out/<photo stem>` (or `out/<name>`).

    photo: a file path or an already loaded `Photo`. resolution: UV tile side (texels). device: auto, cpu or
    cuda. detector: auto, dlib or fan. face_index: which face (0 = largest). weights: refinement network
    (safetensors). quality: "full" or "preview" (QUALITIES). progress(stage, fraction, message) is called
    as the stages advance (STAGES).
    Raises FaceAlbedoError (NO_FACE, OUTPUT_EXISTS, OUTPUT_NOT_WRITABLE, DISK_FULL, ...).
    """
    out_root, stem = _prepare_output(photo, out, name, overwrite, quality, resolution)

    from inference_core import landmarks, photo as photo_module, texture
    from inference_core.export import write_result
    from inference_core.facemodel import load_face_model
    from inference_core.fitting import FitSettings, fit
    from inference_core.refine import RefineSettings, refine

    device = resolve_device(device)
    progress = progress or ignore_progress
    if quality == "preview" and fit_settings is None:
        fit_settings = FitSettings(photometric=False)
    clock = _StageClock(progress)
    loaded = photo if isinstance(photo, Photo) else clock.run("load", "loading the photo",
                                                             lambda: photo_module.load_photo(photo))
    model = load_face_model()
    marks = clock.run("detect", "finding the face",
                      lambda: landmarks.detect(loaded, detector=detector, face_index=face_index))
    fitted = clock.run("fit", "fitting the head", lambda: fit(loaded, marks, model, fit_settings, device=device,
                                                               progress=progress))
    uv = clock.run("unwrap", "unwrapping the texture", lambda: texture.unwrap(loaded, fitted, model, resolution))
    prior = clock.run("prior", "estimating the prior albedo",
                      lambda: texture.prior_albedo(uv, fitted, model, prior_settings))
    refined = None
    if quality == "full":
        refine_settings = refine_settings or RefineSettings()
        if weights is not None:
            refine_settings = dataclasses.replace(refine_settings, weights=Path(weights))
        refined = clock.run("refine", "refining albedo and illumination",
                            lambda: refine(uv, prior, fitted, model, refine_settings, device=device,
                                           progress=progress))
    settings = {"resolution": resolution, "device": device, "detector": detector, "face_index": face_index,
                "quality": quality, "weights": None if weights is None else str(weights),
                "refine": refined is not None}
    progress("export", 0.0, "writing the result folder")
    folder = write_result(out_root, stem, loaded, marks, fitted, uv, prior, refined, model, clock.seconds,
                          settings, overwrite=overwrite)
    progress("export", 1.0, "done")
    return ReconstructionResult.from_folder(folder)
