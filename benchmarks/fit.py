"""Fitting speed on the dev photos and accuracy on AFLW2000-3D.

Speed: median seconds of `fit()` per dev photo (faces/photos/, landmarks detected beforehand and not
timed), wall clock and process CPU time (the CPU time is steadier on a shared machine). Target: < 5 s on
2 cores. Accuracy: on faces/aflw2000/ (landmarks detected, ground truth where detection fails), the NME
of the fitted model's 68 landmarks against `pt3d_68` over sqrt(w * h) of the ground-truth box, both for
the 3D-consistent landmark vertices and for the jaw on the silhouette, and the head pose error (mean of
|pitch|, |yaw|, |roll| differences from `Pose_Para`, degrees). Also the same from ground-truth landmarks
as input, which isolates the fitter from the detector. Saves benchmarks/results/fit.json.

    FACEALBEDO_ASSETS=../shared/assets .venv/bin/python benchmarks/fit.py [--limit N] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.io
import torch

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from inference_core.assets import asset_roots  # noqa: E402
from inference_core.errors import FaceAlbedoError  # noqa: E402
from inference_core.evaluation.metrics import landmark_nme  # noqa: E402
from inference_core.facemodel import load_face_model  # noqa: E402
from inference_core.fitting import FitSettings, fit  # noqa: E402
from inference_core.fitting.head_pose import pose_error_deg  # noqa: E402
from inference_core.fitting.rendering import landmark_vertices_px  # noqa: E402
from inference_core.landmarks import detect  # noqa: E402
from inference_core.photo import load_photo  # noqa: E402
from inference_core.values import Landmarks  # noqa: E402

RESULTS = PROJECT / "benchmarks" / "results" / "fit.json"
TARGET_SECONDS = 5.0
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def faces_folder() -> Path:
    for root in asset_roots():
        if (root / "faces").is_dir():
            return root / "faces"
    raise SystemExit("no faces/ folder in the assets: set FACEALBEDO_ASSETS=../shared/assets")


def time_dev_photos(folder: Path, model, limit: int | None) -> dict:
    """Median wall and CPU seconds of fit() over the dev photos where a face is found."""
    wall, cpu, per_photo = [], [], {}
    photos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    for path in photos:
        try:
            photo = load_photo(path)
            landmarks = detect(photo)
        except FaceAlbedoError:
            continue
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        result = fit(photo, landmarks, model)
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
        history = result.history["photometric"]
        per_photo[str(path.relative_to(folder))] = {
            "seconds": round(wall[-1], 3), "cpu_seconds": round(cpu[-1], 3),
            "landmark_nme_to_input": round(result.residuals["landmark_nme"], 5),
            "photometric_first": round(history[0], 5), "photometric_last": round(history[-1], 5),
            "inlier_fraction": round(result.residuals["inlier_fraction"], 3)}
        print(f"{path.name}: {wall[-1]:.2f} s (cpu {cpu[-1]:.2f} s)", flush=True)
    falling = sum(v["photometric_last"] < v["photometric_first"] for v in per_photo.values())
    return {"photos": len(wall), "median_seconds": statistics.median(wall),
            "median_cpu_seconds": statistics.median(cpu), "target_seconds": TARGET_SECONDS,
            "photometric_residual_fell": f"{falling}/{len(per_photo)}", "per_photo": per_photo}


def aflw_accuracy(folder: Path, model, use_ground_truth_input: bool) -> dict:
    """Median NME (3D landmark vertices and silhouette jaw) and pose error over AFLW2000-3D."""
    rows = {}
    for mat in sorted(folder.glob("*.mat")):
        truth = scipy.io.loadmat(str(mat))
        gt = truth["pt3d_68"][:2].T.astype(np.float64)
        photo = load_photo(mat.with_suffix(".jpg"))
        source = "ground truth"
        landmarks = Landmarks(gt.astype(np.float32), "ground truth", (*gt.min(0), *gt.max(0)), 1.0)
        if not use_ground_truth_input:
            try:
                landmarks, source = detect(photo), "detected"
            except FaceAlbedoError:
                pass
        result = fit(photo, landmarks, model)
        rows[mat.stem] = {"input": source,
                          "nme": round(landmark_nme(landmark_vertices_px(result), gt), 5),
                          "nme_silhouette_jaw": round(landmark_nme(result.landmarks_2d, gt), 5),
                          "nme_of_input_landmarks": round(landmark_nme(landmarks.points, gt), 5),
                          "pose_error_deg": round(pose_error_deg(result.camera.rotation, truth["Pose_Para"][0]), 2)}
    column = lambda key: statistics.median(r[key] for r in rows.values())  # noqa: E731
    return {"photos": len(rows), "median_nme": column("nme"),
            "median_nme_silhouette_jaw": column("nme_silhouette_jaw"),
            "median_nme_of_input_landmarks": column("nme_of_input_landmarks"),
            "median_pose_error_deg": column("pose_error_deg"), "per_photo": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="time only the first N dev photos")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: the fit's tensors are small, and on a shared 2-core "
                             "machine a second thread mostly spins; measured 2.0 s vs 5-17 s per photo)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_face_model()
    faces = faces_folder()
    speed = time_dev_photos(faces / "photos", model, args.limit)
    report = {
        "settings": FitSettings().__dict__, "threads": args.threads, "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
        "dev_photos": speed,
        "aflw2000_detected_landmarks": aflw_accuracy(faces / "aflw2000", model, use_ground_truth_input=False),
        "aflw2000_ground_truth_landmarks": aflw_accuracy(faces / "aflw2000", model, use_ground_truth_input=True),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    for name in ("aflw2000_detected_landmarks", "aflw2000_ground_truth_landmarks"):
        part = report[name]
        print(f"{name}: median NME {part['median_nme']:.4f} (silhouette jaw {part['median_nme_silhouette_jaw']:.4f}), "
              f"median pose error {part['median_pose_error_deg']:.1f} deg over {part['photos']} photos")
    print(f"dev photos: median {speed['median_seconds']:.2f} s per photo (cpu {speed['median_cpu_seconds']:.2f} s) "
          f"over {speed['photos']} photos, target < {TARGET_SECONDS} s; photometric residual fell in "
          f"{speed['photometric_residual_fell']}; saved {RESULTS}")


if __name__ == "__main__":
    main()
