"""Median seconds of `refine()` (default settings) at UV resolutions 256, 512 and 1024, on CPU.

Inputs are the synthetic face of `inference_core.refine.synthetic` (known albedo and local shadow), so
the benchmark needs no photo and measures the refinement alone; the albedo error against the truth is
saved beside the timing so that a speed-up that breaks the result shows. Also reports process-CPU
seconds, which a machine shared with other jobs disturbs less than wall time. Saves
benchmarks/results/refine.json.

    FACEALBEDO_ASSETS=../shared/assets .venv/bin/python benchmarks/refine.py [--repeats 3] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from inference_core.refine import RefineSettings, refine
from inference_core.refine.synthetic import synthetic_face

RESULTS = Path(__file__).resolve().parent / "results" / "refine.json"
RESOLUTIONS = (256, 512, 1024)


def measure(resolution: int, repeats: int, settings: RefineSettings) -> dict[str, float]:
    """Median wall and CPU seconds of refine() at one resolution, and the albedo error it reaches."""
    face = synthetic_face(resolution)
    wall, cpu, result = [], [], None
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        result = refine(face.uv, face.prior, None, None, settings)
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    shadowed = (face.shadow > 0.5) & face.seen
    return {
        "median_s": statistics.median(wall),
        "median_cpu_s": statistics.median(cpu),
        "shadow_albedo_error_prior": float(np.abs(face.prior.completed[0] - face.albedo)[shadowed].mean()),
        "shadow_albedo_error_refined": float(np.abs(result.albedo[0] - face.albedo)[shadowed].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = RefineSettings()
    figures = {}
    for resolution in RESOLUTIONS:
        figures[str(resolution)] = measure(resolution, args.repeats, settings)
        row = figures[str(resolution)]
        print(f"refine at {resolution:4d}: median {row['median_s']:.2f} s wall, {row['median_cpu_s']:.2f} s CPU; "
              f"shadow albedo error {row['shadow_albedo_error_prior']:.4f} -> {row['shadow_albedo_error_refined']:.4f}")
    report = {
        "benchmark": "refine", "device": "cpu", "threads": torch.get_num_threads(), "repeats": args.repeats,
        "machine": platform.platform(), "processor": platform.processor(),
        "settings": {"iterations": settings.iterations, "working_resolution": settings.working_resolution,
                     "grid_resolution": settings.grid_resolution},
        "resolutions": figures,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
