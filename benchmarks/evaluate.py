"""Quality figures of the whole method on the shared evaluation sets, the three stages side by side.

    FACEALBEDO_ASSETS=../shared/assets .venv/bin/python benchmarks/evaluate.py [--limit N] [--resolution R]
        [--sets photos aflw2000 lighting] [--ablation NAME ...]

Runs `facealbedo evaluate` on ../shared/assets/faces/{photos,aflw2000,lighting} (the full sets unless
--limit is given; lighting = Yale B subjects with |azimuth| <= 50, |elevation| <= 40 degrees plus the
Yale faces), writes each report to benchmarks/results/evaluate/<set>/ and the headline figures (set
medians per stage, landmark NME, spread across lights, seconds per stage) to
benchmarks/results/evaluate.json, and prints them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inference_core.evaluation import evaluate
from inference_core.evaluation.report import json_ready
from inference_core.evaluation.ablations import ABLATIONS

RESULTS = Path(__file__).resolve().parent / "results"
SETS = ("photos", "aflw2000", "lighting")
HEADLINE_METRICS = ("psnr_db", "ssim", "si_mse", "completeness", "seam_strength")


def faces_dir() -> Path:
    assets = Path(os.environ.get("FACEALBEDO_ASSETS", Path(__file__).resolve().parents[2] / "shared" / "assets"))
    return assets / "faces"


def headline(run: dict[str, Any]) -> dict[str, Any]:
    """The figures the README quotes: per-stage medians, NME, spread ratios, stage seconds."""
    stages = {stage: {m: figures[m].get("median") for m in HEADLINE_METRICS if m in figures}
              for stage, figures in run["stages"].items()}
    lighting = {}
    for stage in ("raw", "prior", "refined"):
        spreads = [s["stages"][stage] for s in run["lighting"].values() if stage in s["stages"]]
        if spreads:
            lighting[stage] = {key: float(np.nanmedian([s[key] for s in spreads]))
                               for key in ("spread", "spread_normalised", "chromaticity_spread", "ratio_to_raw")}
    return {"counts": run["counts"], "stages": stages,
            "landmarks": {k: v.get("median") for k, v in run["landmarks"].items()},
            "lighting_median_over_subjects": lighting,
            "seconds_median": {k: v.get("median") for k, v in run["seconds"].items()},
            "regressions": run["regressions"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), metavar="SET",
                        help=f"folders under ../shared/assets/faces (default: {' '.join(SETS)}; a subfolder such as "
                             "lighting/yaleB27 is a subset)")
    parser.add_argument("--limit", type=int, help="photos per set (lighting: lights per subject)")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--ablation", nargs="+", default=[], choices=sorted(ABLATIONS))
    parser.add_argument("--set", nargs="+", default=[], dest="overrides", metavar="STAGE.FIELD=VALUE")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    figures: dict[str, Any] = {"command": "benchmarks/evaluate.py " + " ".join(sys.argv[1:]),
                               "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                                           "torch": torch.__version__, "device": args.device},
                               "resolution": args.resolution, "limit": args.limit, "sets": {}}
    for name in args.sets:
        if not (faces_dir() / name).is_dir():
            parser.error(f"no folder {faces_dir() / name}")
        start = time.perf_counter()
        out = RESULTS / "evaluate" / name
        print(f"== {name} -> {out}", flush=True)
        report = evaluate(faces_dir() / name, out, limit=args.limit, resolution=args.resolution,
                          ablations=args.ablation, overrides=args.overrides, device=args.device,
                          progress=lambda stage, fraction, message: print(f"  [{fraction:4.0%}] {message}",
                                                                          flush=True),
                          command=figures["command"])
        figures["sets"][name] = {run_name: headline(run) for run_name, run in report["runs"].items()}
        figures["sets"][name]["seconds_total"] = time.perf_counter() - start
        figures["sets"][name]["command"] = figures["command"]
        print(json.dumps(json_ready(figures["sets"][name]["defaults"]), indent=1), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "evaluate.json"
    if path.exists():  # sets run separately accumulate; each keeps the command that made it
        earlier = json.loads(path.read_text())
        figures["sets"] = {**earlier.get("sets", {}), **figures["sets"]}
    path.write_text(json.dumps(json_ready(figures), indent=1) + "\n")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
