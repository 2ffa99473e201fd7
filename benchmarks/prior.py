"""Median seconds per photo of the prior generation module at UV resolution 1024 (CPU).

Per photo: unwrap (UV rasterisation is cached per resolution, so it is warmed up first), prior_albedo
(region colours + SH fit, completion included) and, separately, the completion alone. The fits (not
timed) are landmark-only. Wall-clock medians move with the machine's load; the process CPU-time medians
are steadier.

Also the lighting check on every Yale B light with |azimuth| <= 50 and |elevation| <= 40 degrees (the
test uses 8 of them): per-texel spread across lights (std/mean, evaluation.metrics.per_texel_spread)
over face-tile texels with visibility > 0.8 under every light, of the raw unwrapped texture and of the
de-lit prior-stage albedo (PriorAlbedo.completed); the head is fitted once on the frontal light.
Saves benchmarks/results/prior.json.

    FACEALBEDO_ASSETS=../shared/assets .venv/bin/python benchmarks/prior.py [--repeats 3] [--resolution 1024]
"""
from __future__ import annotations

import argparse
import json
import re
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from inference_core.evaluation.metrics import per_texel_spread
from inference_core.facemodel import load_face_model
from inference_core.fitting import FitSettings, fit
from inference_core.landmarks import detect
from inference_core.photo import load_photo
from inference_core.texture import prior_albedo, unwrap
from inference_core.texture.completion import complete
from inference_core.texture.layout import texel_layout
from inference_core.texture.regions import feature_exclusion, region_weights

RESULTS = Path(__file__).resolve().parent / "results" / "prior.json"
PHOTOS = ("photos/astronaut.png", "photos/face_recognition/obama.jpg", "photos/dlib/2007_007763.jpg",
          "photos/deca/exp_2.jpg", "lighting/yaleB23/yaleB23_P00A+000E+00.pgm")


def timed(function):
    """(result, wall seconds, process CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


YALE_SUBJECTS = ("yaleB23", "yaleB27")
YALE_RESOLUTION = 256
YALE_LIGHT = re.compile(r"_P00A(?P<azimuth>[+-]\d+)E(?P<elevation>[+-]\d+)\.pgm$")


def yale_spreads(folder: Path, model) -> dict:
    """Raw and de-lit spreads across the subject's lights with |azimuth| <= 50 and |elevation| <= 40."""
    lights = []
    for path in sorted(folder.glob("*_P00A*.pgm")):
        match = YALE_LIGHT.search(path.name)
        if match and abs(int(match["azimuth"])) <= 50 and abs(int(match["elevation"])) <= 40:
            lights.append(path)
    frontal = load_photo(folder / f"{folder.name}_P00A+000E+00.pgm")
    fitted = fit(frontal, detect(frontal), model, FitSettings(photometric=False))
    raw, delit, visibility = [], [], []
    for path in lights:
        uv = unwrap(load_photo(path), fitted, model, YALE_RESOLUTION)
        prior = prior_albedo(uv, fitted, model)
        raw.append(uv.colour[0].reshape(-1, 3))
        delit.append(prior.completed[0].reshape(-1, 3))
        visibility.append(uv.visibility[0].reshape(-1))
    well_seen = np.min(visibility, axis=0) > 0.8
    raw_spread = per_texel_spread(np.stack(raw), well_seen)
    delit_spread = per_texel_spread(np.stack(delit), well_seen)
    return {"lights": len(lights), "texels": int(well_seen.sum()), "raw_spread": raw_spread,
            "delit_spread": delit_spread, "ratio": delit_spread / raw_spread}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    faces = Path(os.environ.get("FACEALBEDO_ASSETS", "../shared/assets")) / "faces"
    model = load_face_model()
    _, warm_up, _ = timed(lambda: (texel_layout(model, args.resolution), region_weights(model, args.resolution),
                                   feature_exclusion(model, args.resolution)))
    samples: dict[str, list[float]] = {key: [] for key in ("unwrap", "prior", "completion", "total", "total_cpu")}
    per_photo = {}
    for name in PHOTOS:
        photo = load_photo(faces / name)
        fitted = fit(photo, detect(photo), model, FitSettings(photometric=False))
        totals = []
        for _ in range(args.repeats):
            uv, unwrap_s, unwrap_cpu = timed(lambda: unwrap(photo, fitted, model, args.resolution))
            prior, prior_s, prior_cpu = timed(lambda: prior_albedo(uv, fitted, model))
            _, completion_s, _ = timed(lambda: complete(uv, prior.parametric, prior.sh_camera))
            for key, value in (("unwrap", unwrap_s), ("prior", prior_s), ("completion", completion_s),
                               ("total", unwrap_s + prior_s), ("total_cpu", unwrap_cpu + prior_cpu)):
                samples[key].append(value)
            totals.append(unwrap_s + prior_s)
        per_photo[name] = {"photo_size": list(photo.size), "texture_size": list(photo.texture_linear.shape[1::-1]),
                           "median_total_s": statistics.median(totals)}
        print(f"{name}: {statistics.median(totals):.2f} s (unwrap + prior incl. completion)")
    medians = {f"median_{key}_s": statistics.median(values) for key, values in samples.items()}
    lighting = {subject: yale_spreads(faces / "lighting" / subject, model) for subject in YALE_SUBJECTS}
    for subject, spreads in lighting.items():
        print(f"{subject}: {spreads['lights']} lights, raw spread {spreads['raw_spread']:.3f}, de-lit "
              f"{spreads['delit_spread']:.3f} (ratio {spreads['ratio']:.2f})")
    report = {"resolution": args.resolution, "repeats": args.repeats, "threads": args.threads,
              "uv_setup_once_s": warm_up, **medians, "photos": per_photo, "yale_spread": lighting,
              "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "load_average": os.getloadavg()}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(json.dumps(medians, indent=2))
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
