"""Headless batch: reconstruct every photo of a folder, import each into its own scene, write one file
per face and a summary (summary.csv and summary.json; failed photos get their error code, e.g. NO_FACE).

    blender -b --python facealbedo_addon/batch.py -- --input DIR --output DIR --format blend
    .venv/bin/python facealbedo_addon/batch.py -- --input DIR --output DIR --format blend,glb

Result folders go to OUTPUT/results/<photo stem>/, scene files to OUTPUT/<photo stem>.<format>.
The core runs in its own process per photo (the add-on never imports torch), with --python or the
auto-detected inference Python.
"""
from __future__ import annotations

import argparse
import csv
import importlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import bpy

if globals().get("__package__"):  # imported as part of the add-on (Blender's --python may not set it)
    from . import importer, runner
else:  # run as a script: import the add-on's modules by its folder's name
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    _package = Path(__file__).resolve().parent.name
    importer = importlib.import_module(f"{_package}.importer")
    runner = importlib.import_module(f"{_package}.runner")

FORMATS = ("blend", "glb", "fbx", "usd")
SUMMARY_FIELDS = ("photo", "status", "message", "result", "files", "seconds")


@dataclass
class SummaryRow:
    """One photo's line in the summary: status OK or the core's error code."""

    photo: str
    status: str
    message: str = ""
    result: str = ""
    files: str = ""
    seconds: float = 0.0


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """Arguments after `--` (Blender passes its own before it)."""
    if "--" in argv:
        argv = argv[argv.index("--") + 1:]
    parser = argparse.ArgumentParser(prog="batch.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="folder of photos")
    parser.add_argument("--output", type=Path, required=True, help="folder for scene files, results, summary")
    parser.add_argument("--format", action="append", default=[], metavar="FORMAT",
                        help="blend, glb, fbx or usd; repeat or separate by commas (default blend)")
    parser.add_argument("--resolution", type=int, default=1024, help="UV tile size in texels (default 1024)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--python", type=Path, default=None, help="inference Python (default: auto-detect)")
    parser.add_argument("--overwrite", action="store_true",
                        help="reconstruct again photos whose result folder exists (default: reuse it, so that "
                             "an interrupted batch resumes where it stopped)")
    args = parser.parse_args(argv)
    formats = [f.strip().lower() for value in (args.format or ["blend"]) for f in value.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        parser.error(f"unknown format {', '.join(unknown)}: choose from {', '.join(FORMATS)}")
    args.format = list(dict.fromkeys(formats))
    return args


def export_scene(path: Path, fmt: str) -> None:
    """Write the current scene as `fmt` (Blender's own exporters)."""
    if fmt == "blend":
        bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    elif fmt == "glb":
        bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB", export_cameras=True, export_lights=True)
    elif fmt == "fbx":
        bpy.ops.export_scene.fbx(filepath=str(path), path_mode="ABSOLUTE")  # FBX has no UDIM: refer to the tiles
    elif fmt == "usd":
        bpy.ops.wm.usd_export(filepath=str(path))


def scene_file(output: Path, stem: str, fmt: str) -> Path:
    return output / f"{stem}.{'usdc' if fmt == 'usd' else fmt}"


def process_photo(photo: Path, args: argparse.Namespace, python: Path) -> SummaryRow:
    """Reconstruct one photo, import it into an empty scene and write it in every requested format."""
    started = time.monotonic()
    request = runner.ReconstructRequest(photo=photo, out_dir=args.output / "results", resolution=args.resolution,
                                        device=args.device)
    existing = request.out_dir / photo.stem
    reused = (existing / "manifest.json").is_file() and not args.overwrite  # the core writes it last
    if reused:
        outcome = runner.RunOutcome(result=existing)
    else:
        outcome = runner.reconstruct_blocking(python, request)
    if not outcome.ok:
        return SummaryRow(str(photo), outcome.code, outcome.message, seconds=round(time.monotonic() - started, 2))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    try:
        importer.import_result(outcome.result, bpy.context, photo_name=photo.stem)
        files = []
        for fmt in args.format:
            path = scene_file(args.output, photo.stem, fmt)
            export_scene(path, fmt)
            files.append(path.name)
    except importer.IMPORT_ERRORS as exc:
        return SummaryRow(str(photo), "IMPORT_FAILED", importer.describe_import_error(outcome.result, exc),
                          str(outcome.result),
                          seconds=round(time.monotonic() - started, 2))
    note = "existing result reused" if reused else ""
    return SummaryRow(str(photo), "OK", note, str(outcome.result), ";".join(files),
                      round(time.monotonic() - started, 2))


def write_summary(output: Path, rows: list[SummaryRow]) -> None:
    """summary.csv (one row per photo) and summary.json (the same rows)."""
    with open(output / "summary.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    (output / "summary.json").write_text(json.dumps([asdict(row) for row in rows], indent=1), encoding="utf-8")


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    python = args.python or runner.find_inference_python() or Path(sys.executable)
    if not args.input.is_dir():
        print(f"batch.py: error: --input {args.input} is not a folder", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    rows = []
    for photo in runner.iter_photos(args.input):
        row = process_photo(photo, args, python)
        print(f"FaceAlbedo batch: {photo.name}: {row.status} {row.message} ({row.seconds:.1f} s)", flush=True)
        rows.append(row)
        write_summary(args.output, rows)  # after each photo, so an interrupted batch still has one
    write_summary(args.output, rows)
    failed = sum(row.status != "OK" for row in rows)
    print(f"FaceAlbedo batch: {len(rows) - failed} of {len(rows)} photos done; summary in "
          f"{args.output / 'summary.csv'}", flush=True)
    return 0


if __name__ == "__main__":
    status = main(sys.argv)
    if bpy.app.background:
        sys.exit(status)
