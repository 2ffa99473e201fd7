"""End-to-end speed and memory: seconds per photo (whole run and per stage) and peak memory.

    FACEALBEDO_ASSETS=../shared/assets .venv/bin/python benchmarks/e2e.py [--limit N] [--resolution R]
        [--device auto|cpu|cuda] [--photos FILE ...]
    FACEALBEDO_ASSETS=../shared/assets .venv/bin/python benchmarks/e2e.py --batch [--workers W]

Default mode: each dev photo (the single-face photos of ../shared/assets/faces/photos, sorted, the first
--limit) is reconstructed by `facealbedo reconstruct` in a fresh process, as a user runs it. Per photo it
records the process's wall time (startup and model loading included), the pipeline's own seconds per stage
(manifest.json) and the process's peak resident memory (getrusage). Prints and saves medians and maxima
to benchmarks/results/e2e.json (targets: under 20 s median, under 4 GB).

--batch: one `facealbedo batch` over the whole photos/ and no_face/ folders; records the wall time,
seconds per photo, the summary's counts and error codes, and the peak memory of any one process; saves
to benchmarks/results/e2e_batch.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PROJECT = Path(__file__).resolve().parents[1]
MULTI_FACE_PHOTOS = {"two_people", "obama_and_biden", "kit_with_rose", "bald_guys"}
"""Dev photos with several faces: left out of the timing set (they time the same pipeline)."""
TARGET_MEDIAN_S, TARGET_PEAK_GB = 20.0, 4.0


def faces_dir() -> Path:
    assets = Path(os.environ.get("FACEALBEDO_ASSETS", PROJECT.parent / "shared" / "assets"))
    return assets / "faces"


def dev_photos(limit: int) -> list[Path]:
    suffixes = {".jpg", ".jpeg", ".png"}
    photos = sorted(p for p in (faces_dir() / "photos").rglob("*")
                    if p.suffix.lower() in suffixes and p.stem not in MULTI_FACE_PHOTOS)
    step = max(1, len(photos) // limit)  # spread over the folders rather than the first few of one
    return photos[::step][:limit]


def run_measured(command: list[str]) -> tuple[int, float, float, str]:
    """(exit status, wall seconds, peak RSS in MB of the process and its waited-for children, stdout)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, time.perf_counter() - start, usage.ru_maxrss / 1024.0, stdout


def summarise(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3),
            "min": round(min(values), 3)} if values else {}


def single_photos(args: argparse.Namespace) -> dict:
    photos = [Path(p) for p in args.photos] if args.photos else dev_photos(args.limit)
    records = []
    with tempfile.TemporaryDirectory(prefix="e2e-") as out:
        for photo in photos:
            status, wall, rss_mb, stdout = run_measured(
                [sys.executable, "-m", "inference_core", "reconstruct", str(photo), "--out", out, "--progress-json",
                 "--resolution", str(args.resolution), "--device", args.device, "--overwrite"])
            events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
            record = {"photo": str(photo.relative_to(faces_dir())), "exit_status": status,
                      "wall_seconds": round(wall, 3), "peak_rss_mb": round(rss_mb, 1)}
            if status == 0:
                manifest = json.loads((Path(events[-1]["result"]) / "manifest.json").read_text())
                record["stage_seconds"] = manifest["seconds"]
                record["albedo_source"] = manifest["albedo"]["source"]
            else:
                record["error"] = events[-1] if events else None
            records.append(record)
            print(f"{record['photo']:60s} {status:3d} {wall:7.1f} s {rss_mb:7.0f} MB", flush=True)
    ok = [r for r in records if r["exit_status"] == 0]
    stages = sorted({s for r in ok for s in r["stage_seconds"]})
    return {
        "photos": records,
        "succeeded": len(ok),
        "wall_seconds": summarise([r["wall_seconds"] for r in ok]),
        "pipeline_seconds": summarise([r["stage_seconds"]["total"] for r in ok]),
        "stage_seconds": {s: summarise([r["stage_seconds"][s] for r in ok if s in r["stage_seconds"]]) for s in stages},
        "peak_rss_mb": summarise([r["peak_rss_mb"] for r in records]),
        "targets": {"median_seconds": TARGET_MEDIAN_S, "peak_gb": TARGET_PEAK_GB},
    }


def batch(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="e2e-batch-") as out:
        status, wall, rss_mb, _ = run_measured(
            [sys.executable, "-m", "inference_core", "batch", str(faces_dir() / "photos"),
             str(faces_dir() / "no_face"), "--out", out, "--progress-json", "--resolution", str(args.resolution),
             "--device", args.device, "--workers", str(args.workers)])
        summary = json.loads((Path(out) / "summary.json").read_text())
    rows = summary["rows"]
    done = [r["seconds"] for r in rows if r["status"] == "ok"]
    return {"exit_status": status, "wall_seconds": round(wall, 1), "photos": len(rows), "counts": summary["counts"],
            "failures": summary["failures"], "seconds_per_photo": summarise(done), "peak_rss_mb": round(rss_mb, 1),
            "workers": args.workers, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=8, help="dev photos to time (default 8)")
    parser.add_argument("--photos", nargs="*", help="time these photos instead")
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", action="store_true", help="run the whole photos/ and no_face/ folders as a batch")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    figures = batch(args) if args.batch else single_photos(args)
    import torch

    figures["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    figures["settings"] = {"resolution": args.resolution, "device": args.device}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / ("e2e_batch.json" if args.batch else "e2e.json")
    path.write_text(json.dumps(figures, indent=1))
    headline = {k: v for k, v in figures.items() if k not in ("photos", "rows")}
    print(json.dumps(headline, indent=1))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
