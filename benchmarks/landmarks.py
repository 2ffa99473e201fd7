"""Landmark detection speed (and accuracy) per detector: median seconds per photo, AFLW2000 NME.

    FACEALBEDO_ASSETS=../shared/assets .venv/bin/python benchmarks/landmarks.py [--repeats N]

For each detector available here (dlib always; FAN when its weights are in the torch hub cache) it times
`landmarks.detect` on every photo of ../shared/assets/faces/photos/ (photos loaded beforehand; models
loaded and warmed up before timing; the best of --repeats runs per photo, then the median over photos;
wall and CPU seconds, the latter close to quiet-machine wall time since detection is single-threaded),
times face finding alone, times the NO_FACE answer on no_face/, and measures the NME (mean point error over
sqrt(w*h) of the ground-truth box) on the AFLW2000 photos with .mat ground truth. Prints the figures and
saves them to benchmarks/results/landmarks.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import scipy.io

from inference_core.errors import FaceAlbedoError
from inference_core.landmarks import available_detectors, detect
from inference_core.landmarks.faces import find_faces
from inference_core.photo import load_photo

RESULTS = Path(__file__).resolve().parent / "results"
PROJECT = Path(__file__).resolve().parents[1]


def faces_dir() -> Path:
    return Path(os.environ.get("FACEALBEDO_ASSETS", PROJECT.parent / "shared" / "assets")) / "faces"


def best_time(function, repeats: int) -> tuple[float, float]:
    """Fastest of `repeats` calls: (wall seconds, CPU seconds of this process).

    The machine is shared, so the minimum is the least disturbed run; detection runs on one thread, so
    its CPU time is close to what the wall time would be on a quiet machine.
    """
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            function()
        except FaceAlbedoError:
            pass
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def medians(timings: list[tuple[float, float]]) -> dict[str, float]:
    walls, cpus = zip(*timings)
    return {"median_wall_s": statistics.median(walls), "median_cpu_s": statistics.median(cpus),
            "max_wall_s": max(walls)}


def aflw2000_nme(detector: str) -> dict:
    errors, missed = {}, []
    for mat in sorted((faces_dir() / "aflw2000").glob("*.mat")):
        truth = scipy.io.loadmat(mat)["pt3d_68"][:2].T
        try:
            points = detect(load_photo(mat.with_suffix(".jpg")), detector).points
        except FaceAlbedoError:
            missed.append(mat.stem)
            continue
        width, height = truth.max(axis=0) - truth.min(axis=0)
        errors[mat.stem] = float(np.linalg.norm(points - truth, axis=1).mean() / np.sqrt(width * height))
    return {"mean_nme": float(np.mean(list(errors.values()))) if errors else None,
            "per_photo_nme": errors, "no_face_found": missed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per photo (the fastest counts)")
    args = parser.parse_args()

    photos = [load_photo(p) for p in sorted((faces_dir() / "photos").rglob("*")) if p.suffix in {".jpg", ".png"}]
    no_faces = [load_photo(p) for p in sorted((faces_dir() / "no_face").iterdir())]
    results = {"machine": platform.platform(), "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
               "photos": len(photos),
               "face_finding": medians([best_time(lambda p=p: find_faces(p), args.repeats) for p in photos]),
               "detectors": {}}
    for detector in available_detectors():
        detect(photos[0], detector)  # loads the model: not part of the per-photo time
        results["detectors"][detector] = {
            "per_photo": medians([best_time(lambda p=p: detect(p, detector), args.repeats) for p in photos]),
            "no_face": medians([best_time(lambda p=p: detect(p, detector), 1) for p in no_faces]),
            "aflw2000": aflw2000_nme(detector),
        }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "landmarks.json").write_text(json.dumps(results, indent=2) + "\n")
    def ms(figures: dict) -> str:
        return (f"median {1000 * figures['median_wall_s']:.0f} ms wall, {1000 * figures['median_cpu_s']:.0f} ms "
                f"CPU (max {1000 * figures['max_wall_s']:.0f} ms wall)")

    print(f"{len(photos)} photos, load average {results['load_average'][0]:.1f} on {os.cpu_count()} cores")
    print(f"face finding alone: {ms(results['face_finding'])}")
    for detector, figures in results["detectors"].items():
        nme = figures["aflw2000"]["mean_nme"]
        print(f"{detector}: per photo {ms(figures['per_photo'])}; NO_FACE answer {ms(figures['no_face'])}; "
              f"AFLW2000 NME {100 * nme:.2f}% (no face found: {figures['aflw2000']['no_face_found']})")
    print(f"saved {RESULTS / 'landmarks.json'}")


if __name__ == "__main__":
    main()
