"""The evaluation report: report.json (every figure), report.md (tables) and contact sheets (PNG).

A contact sheet has one row per stage (raw, prior, refined) and the columns photo | re-render | shading |
error heat map (grey: face pixels the metrics leave out) | face-tile albedo, so that a look tells what
the numbers say.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inference_core.evaluation.ablations import ABLATIONS
from inference_core.evaluation.runner import HIGHER_IS_BETTER, STAGES, PhotoResult
from inference_core.photo import linear_to_srgb

SHEET_CELL_PX = 192
"""Height and width of one contact-sheet cell."""
HEAT_MAP_MAX_ERROR = 0.2
"""Per-pixel RMS linear-RGB error shown at the top of the heat map's colour scale."""
CROP_MARGIN = 0.15
"""Margin around the face mask's box, as a share of its size, for the contact-sheet crops."""
SHEET_FOLDER = "sheets"

STAGE_TABLE_METRICS = ("psnr_db", "ssim", "si_mse", "psnr_db_face", "completeness", "completeness_face",
                       "seam_strength", "seen_kept")
METRIC_LABELS = {"psnr_db": "re-render PSNR (dB)", "ssim": "re-render SSIM", "si_mse": "re-render si-MSE",
                 "psnr_db_face": "re-render PSNR, whole face mask (dB)",
                 "seen_kept": "well-seen texels kept from the photo",
                 "completeness": "completeness, both tiles", "completeness_face": "completeness, face tile",
                 "seam_strength": "symmetry-seam strength (1 = none)", "spread": "spread across lights",
                 "spread_normalised": "spread, exposure-normalised", "chromaticity_spread": "chromaticity spread",
                 "nme_detected": "NME detected landmarks", "nme_fitted": "NME fitted landmarks"}


# --- JSON ---------------------------------------------------------------------------------------------

def json_ready(value: Any) -> Any:
    """The value with numpy scalars as Python numbers, +-inf as "inf"/"-inf" and NaN as null (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(json_ready(report), indent=1) + "\n")


# --- contact sheets -----------------------------------------------------------------------------------

def _crop_box(mask: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return slice(None), slice(None)
    height, width = rows.ptp() + 1, cols.ptp() + 1
    pad_y, pad_x = int(CROP_MARGIN * height), int(CROP_MARGIN * width)
    return (slice(max(0, rows.min() - pad_y), min(mask.shape[0], rows.max() + 1 + pad_y)),
            slice(max(0, cols.min() - pad_x), min(mask.shape[1], cols.max() + 1 + pad_x)))


def _cell(image_srgb8: np.ndarray, label: str) -> np.ndarray:
    """A square cell: the image fitted inside with its aspect ratio kept, a label at the top left."""
    height, width = image_srgb8.shape[:2]
    scale = SHEET_CELL_PX / max(height, width)
    resized = cv2.resize(image_srgb8, (max(1, round(width * scale)), max(1, round(height * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    cell = np.full((SHEET_CELL_PX, SHEET_CELL_PX, 3), 32, np.uint8)
    top, left = (SHEET_CELL_PX - resized.shape[0]) // 2, (SHEET_CELL_PX - resized.shape[1]) // 2
    cell[top:top + resized.shape[0], left:left + resized.shape[1]] = resized
    cv2.putText(cell, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(cell, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return cell


def _srgb8(linear: np.ndarray) -> np.ndarray:
    return np.round(np.clip(linear_to_srgb(np.clip(np.nan_to_num(linear), 0, 1)), 0, 1) * 255).astype(np.uint8)


UNTRUSTED_GREY = 96
"""Grey of face pixels that the re-render metrics leave out (hair, glasses, grazing views) in the heat map."""


def _heat_map(error: np.ndarray, mask: np.ndarray, trusted: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB inferno colours of the error on trusted pixels, grey on the rest of the mask."""
    scaled = np.round(np.clip(error / HEAT_MAP_MAX_ERROR, 0, 1) * 255).astype(np.uint8)
    colours = cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO)[..., ::-1]
    grey = np.where(mask[..., None], UNTRUSTED_GREY, 0)
    return np.where(trusted[..., None], colours, grey).astype(np.uint8)


def contact_sheet(result: PhotoResult) -> np.ndarray:
    """(rows * cell, 5 * cell, 3) uint8 RGB: per stage photo | re-render | shading | error | albedo tile."""
    rows = []
    for stage, rendered in result.renders.items():
        box = _crop_box(rendered.mask)
        figures = result.record["stages"][stage]
        error = np.sqrt(np.mean((rendered.image - result.photo_linear) ** 2, axis=-1))
        shading = rendered.shading / max(float(np.percentile(rendered.shading[rendered.mask], 99)), 1e-6) \
            if rendered.mask.any() else rendered.shading
        rows.append(np.concatenate([
            _cell(_srgb8(result.photo_linear[box]), f"{stage}: photo"),
            _cell(_srgb8(rendered.image[box]), f"re-render {figures['psnr_db']:.1f} dB"),
            _cell(_srgb8(shading[box]), "shading (normalised)"),
            _cell(_heat_map(error, rendered.mask, result.trusted)[box], f"error 0-{HEAT_MAP_MAX_ERROR}"),
            _cell(_srgb8(result.face_tiles[stage]), "albedo, face tile"),
        ], axis=1))
    return np.concatenate(rows, axis=0)


def sheet_path(out_dir: Path, name: str) -> Path:
    return out_dir / SHEET_FOLDER / (name.replace("/", "__") + ".png")


def write_contact_sheet(out_dir: Path, result: PhotoResult) -> Path:
    path = sheet_path(out_dir, result.record["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), contact_sheet(result)[..., ::-1]):
        raise OSError(f"could not write {path}")
    return path


# --- Markdown -----------------------------------------------------------------------------------------

def _number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-2 else f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows), ""]


def _flagged(run: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["metric"], f["stage"]) for f in run["regressions"] if "subject" not in f}


def _stage_rows(run: dict[str, Any]) -> list[list[str]]:
    flagged = _flagged(run)
    stages = [s for s in STAGES if s in run["stages"]]
    rows = []
    for metric in STAGE_TABLE_METRICS:
        direction = {True: " ↑", False: " ↓"}.get(HIGHER_IS_BETTER.get(metric), "")
        cells = [METRIC_LABELS[metric] + direction]
        for stage in stages:
            summary = run["stages"][stage].get(metric, {})
            text = f"{_number(summary.get('median'))} ({_number(summary.get('mean'))})" if summary else "–"
            cells.append(("**WORSE** " if (metric, stage) in flagged else "") + text)
        rows.append(cells)
    return rows


def _regression_lines(run: dict[str, Any]) -> list[str]:
    if not run["regressions"]:
        return ["No later stage measures worse than an earlier one.", ""]
    lines = []
    for flag in run["regressions"]:
        where = f" (lighting, {flag['subject']})" if "subject" in flag else " (set median)"
        lines.append(f"- **WORSE**: {flag['stage']} {flag['metric']} = {_number(flag['value'])} vs "
                     f"{flag['than']} {_number(flag['earlier'])}{where}")
    return lines + [""]


def _lighting_rows(run: dict[str, Any]) -> list[list[str]]:
    rows = []
    for subject, figures in run["lighting"].items():
        stages = figures["stages"]
        row = [subject, str(figures["lights"]), str(figures["texels"])]
        for stage in STAGES:
            s = stages.get(stage)
            row.append("–" if s is None else f"{_number(s['spread'])} / {_number(s['spread_normalised'])} / "
                       f"{_number(s['chromaticity_spread'])} (×{_number(s['ratio_to_raw'], 2)})")
        rows.append(row)
    return rows


def _ablation_rows(runs: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for name, run in runs.items():
        final = next((s for s in reversed(STAGES) if s in run["stages"]), None)
        figures = run["stages"].get(final, {}) if final else {}
        spreads = [f["stages"][final]["ratio_to_raw"] for f in run["lighting"].values() if final in f["stages"]]
        finite = [s for s in spreads if s is not None and math.isfinite(s)]
        description = ABLATIONS[name].description if name in ABLATIONS else "the product's defaults"
        trusted = run.get("trusted_share", {}).get("median")
        rows.append([name, description, final or "–", f"{run['counts']['ok']}/{run['counts']['photos']}",
                     _number(trusted, 2),
                     *(_number(figures.get(m, {}).get("median")) for m in STAGE_TABLE_METRICS),
                     _number(float(np.median(finite))) if finite else "–"])
    return rows


def _photo_rows(run: dict[str, Any], out_dir: Path) -> list[list[str]]:
    rows = []
    for record in run["photos"]:
        if record["status"] != "ok":
            rows.append([record["name"], record["status"], "", "", ""])
            continue
        psnr = " / ".join(_number(record["stages"][s]["psnr_db"], 2) for s in STAGES if s in record["stages"])
        ssim = " / ".join(_number(record["stages"][s]["ssim"]) for s in STAGES if s in record["stages"])
        nme = _number(record["landmarks"].get("nme_fitted"))
        sheet = sheet_path(out_dir, record["name"])
        link = f"[sheet]({sheet.relative_to(out_dir).as_posix()})" if sheet.exists() else ""
        rows.append([record["name"], "ok", psnr, ssim, nme + " " + link])
    return rows


def markdown(report: dict[str, Any], out_dir: Path) -> str:
    """The report page: stage table, regressions, landmarks, lighting, timings, ablations, per photo."""
    run = report["runs"]["defaults"]
    stages = [s for s in STAGES if s in run["stages"]]
    counts = run["counts"]
    settings = run["settings"]
    changed = f"; settings changed: {' '.join(settings['overrides'])}" if settings.get("overrides") else ""
    failures = f"; failures: {counts['failed']}" if counts["failed"] else ""
    lines = [f"# FaceAlbedo evaluation: {report['set']}", "",
             f"Command: `{report['command']}`  ",
             f"Photos: {counts['ok']} of {counts['photos']} reconstructed{failures}  ",
             f"UV resolution {settings['resolution']}, device {settings['device']}{changed}; "
             f"{report['seconds_total']:.0f} s in all.", "",
             "## Stages side by side (median (mean) over the photos)", "",
             "raw = unwrapped photo texture used as albedo; prior = PriorAlbedo.completed; refined = "
             "RefinedAlbedo.albedo. Re-render figures compare albedo x shading with the photo on the "
             "trusted skin pixels (texel visibility and fit inlier weight >= 0.5; hair, glasses, hands and "
             "grazing views left out), the 'whole face mask' PSNR on every fitted face pixel (for reference, "
             "never flagged: the raw texture copies the hair over a forehead, a de-lit albedo must not). "
             "↑ higher is better, ↓ lower is better.", ""]
    lines += _table(["metric", *stages], _stage_rows(run))
    share = run.get("trusted_share", {})
    if "median" in share:
        lines += [f"Trusted pixels: median {share['median']:.0%} of the fitted face mask.", ""]
    lines += ["## Regressions (a later stage worse than an earlier one)", ""] + _regression_lines(run)
    if run["landmarks"]:
        lines += ["## Landmarks (NME, mean error / sqrt(w h) of the ground-truth box)", ""]
        lines += _table(["landmarks", "median", "mean", "max", "photos"],
                        [[METRIC_LABELS.get(k, k), _number(v.get("median")), _number(v.get("mean")),
                          _number(v.get("max")), str(v["count"])] for k, v in run["landmarks"].items()])
    if run["lighting"]:
        lines += ["## Illumination invariance across lights (face tile, well-visible texels)", "",
                  "Per cell: spread std/mean per texel / the same after dividing each light's map by its "
                  "mean / chromaticity spread (× ratio of spread to the raw texture's). Lower is better.", ""]
        lines += _table(["subject", "lights", "texels", *STAGES], _lighting_rows(run))
    lines += ["## Seconds per stage", ""]
    lines += _table(["stage", "median", "max"], [[k, _number(v.get("median"), 2), _number(v.get("max"), 2)]
                                                  for k, v in run["seconds"].items()])
    if len(report["runs"]) > 1:
        lines += ["## Ablations (final stage, set medians; spread ratio = median over subjects)", ""]
        lines += _table(["run", "what", "final stage", "ok", "trusted share",
                         *(METRIC_LABELS[m] for m in STAGE_TABLE_METRICS),
                         "spread / raw"], _ablation_rows(report["runs"]))
    lines += ["## Per photo", "", f"PSNR and SSIM per stage ({' / '.join(stages)}).", ""]
    lines += _table(["photo", "status", "PSNR dB", "SSIM", "NME fitted, contact sheet"], _photo_rows(run, out_dir))
    return "\n".join(lines)


def write_report(out_dir: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    """Write report.json and report.md into out_dir (sheets are written during the run)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    write_json(json_path, report)
    md_path.write_text(markdown(report, out_dir) + "\n")
    return json_path, md_path
