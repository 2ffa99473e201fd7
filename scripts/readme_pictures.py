"""Pictures for the README: the imported head rendered in Cycles under the photo's own light and under
two relight presets, beside the photo (the panel itself cannot be drawn without a window).

    .venv/bin/python scripts/readme_pictures.py -- [--result DIR | --photo PHOTO] [--out docs/images]
    blender -b --python scripts/readme_pictures.py -- --result out/astronaut

Without --result the core reconstructs --photo (default: the shared astronaut portrait) first.
Writes docs/images/relight_<stem>.png: photo | photo's light (over the photo) | studio | rim light,
cropped to the head, each panel PANEL_HEIGHT pixels high.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import bpy
import numpy as np
from PIL import Image, ImageOps

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
from facealbedo_addon import importer, relight, runner  # noqa: E402

PANEL_HEIGHT = 256
SAMPLES = 64
MAX_BYTES = 300_000
BACKDROP = (0.12, 0.12, 0.13)
PANELS = ((relight.PHOTO, "photo's light"), (relight.STUDIO, "studio"), (relight.RIM, "rim light"))


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    argv = argv[argv.index("--") + 1:] if "--" in argv else []
    assets = Path(os.environ.get("FACEALBEDO_ASSETS", PROJECT.parent / "shared" / "assets"))
    parser = argparse.ArgumentParser(prog="readme_pictures.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--result", type=Path, help="an existing result folder (skips the reconstruction)")
    parser.add_argument("--photo", type=Path, default=assets / "faces" / "photos" / "astronaut.png")
    parser.add_argument("--resolution", type=int, default=512, help="UV tile size when reconstructing")
    parser.add_argument("--out", type=Path, default=PROJECT / "docs" / "images")
    return parser.parse_args(argv)


def reconstruct(photo: Path, resolution: int) -> Path:
    """Run the core on `photo` into a temporary folder; exits with the core's message on failure."""
    request = runner.ReconstructRequest(photo=photo, out_dir=Path(tempfile.mkdtemp(prefix="facealbedo-readme-")),
                                        resolution=resolution)
    python = runner.find_inference_python() or Path(sys.executable)
    outcome = runner.reconstruct_blocking(python, request, on_progress=lambda e: print(
        f"  {e.stage} {100 * e.fraction:.0f}%", flush=True))
    if not outcome.ok:
        raise SystemExit(f"readme_pictures.py: {outcome.describe()}")
    return outcome.result


def render_rgba(scene: bpy.types.Scene, path: Path) -> np.ndarray:
    """(H, W, 4) float sRGB render of the scene camera, transparent background."""
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return np.asarray(Image.open(path).convert("RGBA"), np.float32) / 255


def over(foreground: np.ndarray, background: np.ndarray) -> np.ndarray:
    alpha = foreground[..., 3:4]
    return foreground[..., :3] * alpha + background * (1 - alpha)


def head_box(alpha: np.ndarray, margin: float = 0.08) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) around the rendered head, with a margin, clipped to the image."""
    rows, cols = np.nonzero(alpha > 0.5)
    pad = int(margin * max(rows.ptp(), cols.ptp()))
    return (max(rows.min() - pad, 0), min(rows.max() + pad, alpha.shape[0]),
            max(cols.min() - pad, 0), min(cols.max() + pad, alpha.shape[1]))


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    folder = args.result or reconstruct(args.photo, args.resolution)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    face = importer.import_result(folder, bpy.context)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = SAMPLES
    scene.cycles.device = "CPU"
    scene.render.film_transparent = True
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    photo_path = face.result.photo or args.photo
    width, height = scene.render.resolution_x, scene.render.resolution_y
    photo = np.asarray(ImageOps.exif_transpose(Image.open(photo_path)).convert("RGB").resize((width, height)),
                       np.float32) / 255
    scratch = Path(tempfile.mkdtemp(prefix="facealbedo-renders-"))
    renders = []
    for preset, _ in PANELS:
        relight.apply_preset(scene, face.collection, preset)
        renders.append(render_rgba(scene, scratch / f"{preset.lower()}.png"))
    top, bottom, left, right = head_box(renders[0][..., 3])
    panels = [photo, over(renders[0], photo)] + [over(r, np.array(BACKDROP, np.float32)) for r in renders[1:]]
    crops = [Image.fromarray((np.clip(p[top:bottom, left:right], 0, 1) * 255).astype(np.uint8)) for p in panels]
    side = round(PANEL_HEIGHT * (right - left) / (bottom - top))
    strip = Image.new("RGB", (side * len(crops), PANEL_HEIGHT))
    for index, crop in enumerate(crops):
        strip.paste(crop.resize((side, PANEL_HEIGHT), Image.LANCZOS), (index * side, 0))
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"relight_{face.result.stem}.png"
    strip.save(target, optimize=True)
    while target.stat().st_size > MAX_BYTES:
        strip = strip.resize((strip.width * 4 // 5, strip.height * 4 // 5), Image.LANCZOS)
        strip.save(target, optimize=True)
    print(f"{target} ({target.stat().st_size // 1000} KB): photo | " + " | ".join(name for _, name in PANELS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
