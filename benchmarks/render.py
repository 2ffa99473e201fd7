"""Median milliseconds of one differentiable render of the face region, forward + backward, on CPU.

The fitting loop's inner step: project the ICT `face` part (head filling the image), vertex normals,
rasterize, barycentrics, interpolate per-vertex albedo and normals, SH shading, L1 loss against a target
image, backward to vertex positions, albedo and lighting. Two layouts: "packed" shades the covered
pixels only ((N, C) rows, as a fitting loop should), "image" the full (H, W, C) images (the default
layout of barycentrics/interpolate). Wall-clock medians move with the machine's load; the process CPU
time medians are steadier. Saves benchmarks/results/render.json.

    FACEALBEDO_ASSETS=../shared/assets .venv/bin/python benchmarks/render.py [--repeats 30] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from inference_core.facemodel import load_face_model
from inference_core.facemodel.geometry import vertex_normals
from inference_core.render import camera, sh
from inference_core.render.interpolate import barycentrics, interpolate
from inference_core.render.rasterize import rasterize

RESULTS = Path(__file__).resolve().parent / "results" / "render.json"
TARGETS_MS = {256: 25.0, 512: 80.0}
FACE_HEIGHT_CM = 27.0
"""Vertical extent of the ICT face part (chin to forehead top), so that the head fills the image."""
DISTANCE_CM = 60.0


class FaceScene:
    """The face part of the neutral ICT head in front of a camera, with albedo and lighting to optimise."""

    def __init__(self, size: int) -> None:
        model = load_face_model()
        self.triangles = torch.from_numpy(model.triangles[model.part_triangles("face")])
        n_used = int(self.triangles.max()) + 1  # the face part uses the first vertices only
        verts_cm = torch.from_numpy(model.neutral_cm[:n_used])
        rotation = torch.tensor(camera.MODEL_TO_OPENCV, dtype=torch.float32)
        centre = (verts_cm.amax(0) + verts_cm.amin(0)) / 2
        self.verts_camera = camera.to_camera(verts_cm - centre, rotation, torch.tensor([0.0, 0.0, DISTANCE_CM]))
        self.focal = size * DISTANCE_CM / FACE_HEIGHT_CM
        self.size = size
        self.albedo = torch.full((n_used, 3), 0.6)
        self.sh = torch.zeros(9, 3)
        self.sh[0] = sh.AMBIENT_WHITE * 0.8
        self.sh[2] = -0.6  # light from the camera side (camera z points into the scene)
        self.target = torch.rand(size, size, 3, generator=torch.Generator().manual_seed(0))

    def step(self, packed: bool = True) -> float:
        """One forward + backward; returns the loss."""
        verts = self.verts_camera.clone().requires_grad_(True)
        albedo = self.albedo.clone().requires_grad_(True)
        lighting = self.sh.clone().requires_grad_(True)
        centre = (self.size - 1) / 2
        verts_screen = torch.cat([camera.project(verts, self.focal, self.focal, centre, centre), verts[:, 2:]], 1)
        normals = vertex_normals(verts, self.triangles)
        fragments = rasterize(verts_screen, self.triangles, (self.size, self.size))
        bary = barycentrics(verts_screen, self.triangles, fragments, packed=packed)
        pixel = interpolate(torch.cat([albedo, normals], 1), self.triangles, fragments, bary, packed=packed)
        pixel_normals = torch.nn.functional.normalize(pixel[..., 3:], dim=-1, eps=1e-8)
        colour = pixel[..., :3] * sh.shading(pixel_normals, lighting)
        if packed:
            loss = (colour - fragments.pack(self.target)).abs().mean()
        else:
            mask = fragments.mask[..., None]
            loss = ((colour - self.target).abs() * mask).sum() / (3 * mask.sum().clamp_min(1))
        loss.backward()
        return float(loss.detach())

    def coverage(self) -> float:
        verts_screen = torch.cat([camera.project(self.verts_camera, self.focal, self.focal, (self.size - 1) / 2,
                                                 (self.size - 1) / 2), self.verts_camera[:, 2:]], 1)
        return float(rasterize(verts_screen, self.triangles, (self.size, self.size)).mask.float().mean())


def median_ms(function, repeats: int) -> tuple[float, float, float]:
    """(median wall ms, median process-CPU ms, least process-CPU ms) over `repeats` calls after two warm-ups.

    On a shared machine the least CPU time is the best guess at the cost without contention.
    """
    for _ in range(2):
        function()
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        function()
        wall.append((time.perf_counter() - w0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return statistics.median(wall), statistics.median(cpu), min(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core machine more threads only wait)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {"device": "cpu", "threads": torch.get_num_threads(), "repeats": args.repeats,
               "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
               "load_average_1min": round(os.getloadavg()[0], 2), "sizes": {}}
    for size, target in TARGETS_MS.items():
        scene = FaceScene(size)
        entry = {"target_ms": target, "face_pixel_fraction": round(scene.coverage(), 3)}
        for layout in ("packed", "image"):
            wall, cpu, least_cpu = median_ms(lambda: scene.step(packed=layout == "packed"), args.repeats)
            entry[layout] = {"median_ms": round(wall, 2), "median_cpu_ms": round(cpu, 2),
                             "min_cpu_ms": round(least_cpu, 2)}
            print(f"{size}x{size} {layout:>6}: forward+backward median {wall:.1f} ms (CPU time median {cpu:.1f} ms, "
                  f"least {least_cpu:.1f} ms; target {target:.0f} ms), {torch.get_num_threads()} thread(s)")
        results["sizes"][str(size)] = entry
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
