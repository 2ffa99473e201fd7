"""Evaluate a set of photos: run the stage functions, measure every stage's albedo, baselines side by side.

For each photo the chain load -> detect -> fit -> unwrap -> prior -> refine runs once, and three albedos
of that same run are measured with the same re-render through the same fitted mesh (STAGES):
    raw      the unwrapped photo texture used as if it were albedo (with the fit's global SH),
    prior    PriorAlbedo.completed with the prior's SH,
    refined  RefinedAlbedo.albedo with its per-texel SH map (absent in the no-refine ablation).
Ablations re-run the chain with one part switched off through the stages' settings dataclasses.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.evaluation import metrics
from inference_core.evaluation.ablations import ABLATIONS, Ablation, with_overrides
from inference_core.evaluation.datasets import SetItem, lighting_groups
from inference_core.evaluation.rerender import Rerender, SurfaceView, rerender, surface_view, trusted_pixels
from inference_core.facemodel import FaceModel
from inference_core.progress import ProgressCallback, ignore_progress
from inference_core.values import FaceFit, Landmarks, Photo, PriorAlbedo, RefinedAlbedo, UVTexture

STAGES = ("raw", "prior", "refined")
"""The albedo of each stage, in pipeline order: a later one should never measure worse than an earlier."""

HIGHER_IS_BETTER = {"psnr_db": True, "psnr_db_face": True, "ssim": True, "si_mse": False, "completeness": True,
                    "completeness_face": True, "seam_strength": False, "spread": False,
                    "spread_normalised": False, "chromaticity_spread": False}
"""Direction of each per-stage metric, for flagging a later stage that is worse than an earlier one."""

FLAG_TOLERANCE = {"psnr_db": (0.1, 0.0), "ssim": (0.002, 0.0),
                  "si_mse": (1e-4, 0.02), "completeness": (0.001, 0.0), "completeness_face": (0.001, 0.0),
                  "seam_strength": (0.05, 0.0), "spread": (0.005, 0.02), "spread_normalised": (0.005, 0.02),
                  "chromaticity_spread": (0.005, 0.02)}
"""(absolute, relative) margin by which a later stage must be worse than an earlier one to be flagged:
the larger of the absolute margin and the relative one times the earlier value. Metrics without an entry
are reported, not flagged: psnr_db_face also counts the hair, hats and hands over the face, which the raw
texture copies and a de-lit albedo must not (it is the reference for the trusted-pixel PSNR)."""

NO_SEAM = 1.0
"""Seam strength at or below which there is no seam to speak of (steps across the line are as usual)."""

WELL_VISIBLE = 0.5
"""Visibility above which a texel counts as well seen (for the illumination-invariance spread)."""


@dataclass(frozen=True)
class RunSettings:
    """What every photo of an evaluation run goes through."""

    resolution: int = 256  # UV texels per side
    device: str = "cpu"
    detector: str = "auto"
    ablation: str | None = None  # a key of ABLATIONS, None for the product's defaults
    overrides: tuple[str, ...] = ()  # STAGE.FIELD=VALUE settings for every run (ablations.parse_overrides)


@dataclass
class StageOutputs:
    """Everything one photo's run produced, with the seconds each stage took."""

    photo: Photo
    landmarks: Landmarks
    fit: FaceFit
    uv: UVTexture
    prior: PriorAlbedo
    refined: RefinedAlbedo | None
    seconds: dict[str, float]


@dataclass
class PhotoResult:
    """One photo's figures (JSON-ready) and the pictures for its contact sheet."""

    record: dict[str, Any]
    renders: dict[str, Rerender] = field(default_factory=dict)  # per stage
    photo_linear: np.ndarray | None = None  # (H, W, 3)
    trusted: np.ndarray | None = None  # (H, W) bool, the pixels the re-render metrics look at
    face_tiles: dict[str, np.ndarray] = field(default_factory=dict)  # per stage (R, R, 3) albedo
    visibility_face: np.ndarray | None = None  # (R, R) of the face tile


# --- settings -----------------------------------------------------------------------------------------

def _override(settings: Any, overrides: dict[str, Any], what: str) -> Any:
    """A copy of a settings dataclass with (possibly dotted) fields replaced; USAGE error if one is missing."""
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if not any(f.name == head for f in dataclasses.fields(settings)):
            raise FaceAlbedoError(ErrorCode.USAGE, f"{type(settings).__name__} has no switch `{head}` "
                                  f"(asked for by {what}); see its fields in the stage's settings")
        value = _override(getattr(settings, head), {rest: value}, what) if rest else value
        settings = dataclasses.replace(settings, **{head: value})
    return settings


def stage_settings(ablation: str | None, overrides: tuple[str, ...] = ()) -> tuple[Any, Any, Any, bool]:
    """(FitSettings, PriorSettings, RefineSettings, run_refine) for an ablation name (None: the defaults)
    with STAGE.FIELD=VALUE overrides on top."""
    from inference_core.fitting import FitSettings
    from inference_core.refine import RefineSettings
    from inference_core.texture import PriorSettings

    spec = with_overrides(ABLATIONS[ablation] if ablation else Ablation("defaults"), overrides)
    what = f"ablation {ablation}" if ablation else "--set"
    return (_override(FitSettings(), spec.fit, what), _override(PriorSettings(), spec.prior, what),
            _override(RefineSettings(), spec.refine, what), not spec.skip_refine)


# --- running the stages -------------------------------------------------------------------------------

def _cached(shared: dict[str, Any], seconds: dict[str, float], stage: str, key: tuple,
            call: Callable[[], Any]) -> Any:
    """The stage's value from `shared` when an earlier run of this photo made it with the same inputs
    (its seconds are copied), else computed now and stored there."""
    full_key = repr((stage, *key))
    if full_key not in shared:
        start = time.perf_counter()
        shared[full_key] = (call(), time.perf_counter() - start)
    value, seconds[stage] = shared[full_key]
    return value


def run_stages(item: SetItem, model: FaceModel, settings: RunSettings,
               shared: dict[str, Any] | None = None) -> StageOutputs:
    """Run the chain of stage functions on one photo with the settings of `settings.ablation`.

    `shared` (one dict per photo, kept across its runs) lets ablations reuse the stages they do not
    change: a stage is recomputed only when its own settings or an earlier stage's differ.
    """
    from inference_core import landmarks as landmark_stage
    from inference_core import texture
    from inference_core.fitting import fit
    from inference_core.photo import load_photo
    from inference_core.refine import refine

    shared = {} if shared is None else shared
    fit_settings, prior_settings, refine_settings, run_refine = stage_settings(settings.ablation, settings.overrides)
    seconds: dict[str, float] = {}
    key: tuple = (settings.detector,)
    photo = _cached(shared, seconds, "load", (), lambda: load_photo(item.path))
    marks = _cached(shared, seconds, "detect", key, lambda: landmark_stage.detect(photo, detector=settings.detector))
    key += (fit_settings, settings.device)
    fitted = _cached(shared, seconds, "fit", key, lambda: fit(photo, marks, model, fit_settings,
                                                              device=settings.device))
    key += (settings.resolution,)
    uv = _cached(shared, seconds, "unwrap", key,
                 lambda: texture.unwrap(photo, fitted, model, resolution=settings.resolution))
    key += (prior_settings,)
    prior = _cached(shared, seconds, "prior", key, lambda: texture.prior_albedo(uv, fitted, model, prior_settings))
    refined = None
    if run_refine:
        refined = _cached(shared, seconds, "refine", key + (refine_settings,), lambda: refine(
            uv, prior, fitted, model, refine_settings, device=settings.device))
    return StageOutputs(photo, marks, fitted, uv, prior, refined, seconds)


# --- measuring one photo ------------------------------------------------------------------------------

def stage_albedos(outputs: StageOutputs) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Per stage: (albedo (T, R, R, 3), global SH (9, 3), per-texel face SH map or None)."""
    albedos = {
        "raw": (outputs.uv.colour, outputs.fit.sh_camera, None),
        "prior": (outputs.prior.completed, outputs.prior.sh_camera, None),
    }
    if outputs.refined is not None:
        albedos["refined"] = (outputs.refined.albedo, outputs.refined.sh_global, outputs.refined.sh_map)
    return albedos


def albedo_metrics(albedo: np.ndarray, uv: UVTexture) -> dict[str, float]:
    """Completeness over both skin tiles and the face tile, and the symmetry-seam strength of the face tile."""
    face = uv.tiles.index(1001)
    return {
        "completeness": metrics.completeness(albedo, uv.coverage),
        "completeness_face": metrics.completeness(albedo[face], uv.coverage[face]),
        "seam_strength": metrics.symmetry_seam_strength(albedo[face], uv.coverage[face]),
    }


def seen_kept(prior: PriorAlbedo, uv: UVTexture) -> float:
    """Share of the well-visible texels (visibility > WELL_VISIBLE) that the prior stage filled from the
    photo (source 1) rather than from its mirror or the parametric prior: low values mean the de-lit
    photo was thrown away where it was plainly seen."""
    well_seen = uv.visibility > WELL_VISIBLE
    return float((prior.source[well_seen] == 1).mean()) if well_seen.any() else math.nan


def landmark_metrics(item: SetItem, outputs: StageOutputs) -> dict[str, float]:
    """NME of the detected and of the fitted landmarks against the ground truth (empty without it)."""
    if item.landmarks_gt is None:
        return {}
    truth = item.landmarks_gt * outputs.photo.processing_scale  # file pixels -> processing pixels
    return {"nme_detected": metrics.landmark_nme(outputs.landmarks.points, truth),
            "nme_fitted": metrics.landmark_nme(outputs.fit.landmarks_2d, truth)}


def measure_photo(item: SetItem, outputs: StageOutputs, model: FaceModel) -> PhotoResult:
    """All per-photo figures of one run: per stage re-render and albedo metrics, landmarks, timings."""
    start = time.perf_counter()
    view: SurfaceView = surface_view(outputs.fit, model)
    trusted = trusted_pixels(view, outputs.uv, outputs.fit)
    photo = outputs.photo.image_linear
    face = outputs.uv.tiles.index(1001)
    result = PhotoResult(record={}, photo_linear=photo, trusted=trusted,
                         visibility_face=outputs.uv.visibility[face])
    stages: dict[str, dict[str, float]] = {}
    for stage, (albedo, sh, sh_map) in stage_albedos(outputs).items():
        rendered = rerender(view, albedo, sh, sh_map)
        stages[stage] = {**metrics.rerender_metrics(rendered.image, photo, trusted),
                         "psnr_db_face": metrics.psnr(rendered.image, photo, view.mask),
                         **albedo_metrics(albedo, outputs.uv)}
        result.renders[stage] = rendered
        result.face_tiles[stage] = albedo[face]
    stages["prior"]["seen_kept"] = seen_kept(outputs.prior, outputs.uv)
    seconds = dict(outputs.seconds)
    seconds["measure"] = time.perf_counter() - start
    result.record = {
        "name": item.name, "path": str(item.path), "status": "ok", "stages": stages,
        "landmarks": landmark_metrics(item, outputs), "seconds": seconds,
        "face_pixels": int(view.mask.sum()), "trusted_pixels": int(trusted.sum()),
        "trusted_share": float(trusted.sum() / max(1, view.mask.sum())),
        "face_count": outputs.landmarks.face_count,
        "fit_residuals": {k: float(v) for k, v in outputs.fit.residuals.items()},
        **({"subject": item.subject, "light": item.light} if item.subject else {}),
    }
    return result


# --- a whole set --------------------------------------------------------------------------------------

def lighting_metrics(results: dict[str, PhotoResult], items: list[SetItem]) -> dict[str, Any]:
    """Per subject of the lighting groups: spread of each stage's face-tile albedo across lights.

    Texels count when well visible (visibility > WELL_VISIBLE) under every light of the subject, so all
    stages are compared on the same texels; `ratio_to_raw` is each stage's spread over the raw texture's.
    """
    subjects: dict[str, Any] = {}
    for subject, group in lighting_groups(items).items():
        done = [results[item.name] for item in group if item.name in results]
        if len(done) < 2:
            continue
        valid = np.all([r.visibility_face > WELL_VISIBLE for r in done], axis=0).reshape(-1)
        per_stage = {}
        for stage in STAGES:
            if not all(stage in r.face_tiles for r in done):
                continue
            maps = np.stack([r.face_tiles[stage].reshape(-1, 3) for r in done])
            per_stage[stage] = {
                "spread": metrics.per_texel_spread(maps, valid),
                "spread_normalised": metrics.per_texel_spread(maps, valid, normalise_gain=True),
                "chromaticity_spread": metrics.chromaticity_spread(maps, valid),
            }
        raw = per_stage.get("raw", {}).get("spread", math.nan)
        for stage_figures in per_stage.values():
            stage_figures["ratio_to_raw"] = stage_figures["spread"] / raw if raw > 0 else math.nan
        subjects[subject] = {"lights": len(done), "texels": int(valid.sum()), "stages": per_stage}
    return subjects


def summarise_stages(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float | int]]]:
    """Per stage and metric: median / mean / min / max over the photos that ran."""
    ok = [r for r in records if r["status"] == "ok"]
    return {stage: metrics.summarise_records([r["stages"][stage] for r in ok if stage in r["stages"]])
            for stage in STAGES if any(stage in r["stages"] for r in ok)}


def regressions(stage_figures: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """Each (metric, later stage) whose figure is worse than an earlier stage's beyond FLAG_TOLERANCE.

    `stage_figures` maps stage -> metric -> value (e.g. set medians). Stages compare in STAGES order.
    """
    flags = []
    present = [s for s in STAGES if s in stage_figures]
    for metric, higher_better in HIGHER_IS_BETTER.items():
        if metric not in FLAG_TOLERANCE:
            continue
        for later_index, later in enumerate(present):
            for earlier in present[:later_index]:
                a, b = stage_figures[earlier].get(metric), stage_figures[later].get(metric)
                if a is None or b is None or math.isnan(a) or math.isnan(b) or a == b:
                    continue
                absolute, relative = FLAG_TOLERANCE[metric]
                margin = max(absolute, relative * abs(a))
                # A smoother-than-usual symmetry line is no better than no seam at all.
                reference = max(a, NO_SEAM) if metric == "seam_strength" else a
                worse = b < reference - margin if higher_better else b > reference + margin
                if worse:
                    flags.append({"metric": metric, "stage": later, "than": earlier, "value": b, "earlier": a})
    return flags


def evaluate_runs(items: list[SetItem], model: FaceModel, runs: dict[str, RunSettings],
                  progress: ProgressCallback = ignore_progress,
                  on_result: Callable[[str, PhotoResult], None] | None = None) -> dict[str, dict[str, Any]]:
    """Run and measure every item under every run's settings; a failed photo is a record, never fatal.

    Photo by photo, all runs in turn, so that ablations reuse the stages they leave unchanged (a fit
    shared by the prior ablations is made once) and only one photo's images are in memory at a time.
    `on_result(run_name, result)` sees each PhotoResult as it is made (the report writes contact sheets
    then). Returns, per run name, the JSON-ready run of `summarise_run`.
    """
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
    kept: dict[str, dict[str, PhotoResult]] = {name: {} for name in runs}
    grouped = {item.name for group in lighting_groups(items).values() for item in group}
    for index, item in enumerate(items):
        progress("evaluate", index / len(items), item.name)
        shared: dict[str, Any] = {}
        for name, settings in runs.items():
            try:
                result = measure_photo(item, run_stages(item, model, settings, shared), model)
            except FaceAlbedoError as error:
                if error.code is ErrorCode.USAGE:
                    raise
                records[name].append({"name": item.name, "path": str(item.path), "status": error.code.name,
                                      "message": error.message})
                continue
            records[name].append(result.record)
            if on_result is not None:
                on_result(name, result)
            if item.name in grouped:  # keep only what the lighting spread needs
                kept[name][item.name] = PhotoResult(record={}, face_tiles=result.face_tiles,
                                                    visibility_face=result.visibility_face)
    progress("evaluate", 1.0, "done")
    return {name: summarise_run(settings, records[name], kept[name], items) for name, settings in runs.items()}


def summarise_run(settings: RunSettings, records: list[dict[str, Any]], kept: dict[str, PhotoResult],
                  items: list[SetItem]) -> dict[str, Any]:
    """One run as JSON: per photo, counts, stage summaries, landmarks, seconds, lighting, regressions."""
    summary = summarise_stages(records)
    medians = {stage: {m: s["median"] for m, s in figures.items() if "median" in s}
               for stage, figures in summary.items()}
    lighting = lighting_metrics(kept, items)
    lighting_flags = [dict(flag, subject=subject) for subject, figures in lighting.items()
                      for flag in regressions(figures["stages"])]
    ok = [r for r in records if r["status"] == "ok"]
    return {
        "settings": dataclasses.asdict(settings),
        "photos": records,
        "counts": {"photos": len(records), "ok": len(ok),
                   "failed": {code: sum(r["status"] == code for r in records)
                              for code in sorted({r["status"] for r in records} - {"ok"})}},
        "stages": summary,
        "landmarks": metrics.summarise_records([r["landmarks"] for r in ok]),
        "seconds": metrics.summarise_records([r["seconds"] for r in ok]),
        "trusted_share": metrics.summarise(r["trusted_share"] for r in ok),
        "lighting": lighting,
        "regressions": regressions(medians) + lighting_flags,
    }
