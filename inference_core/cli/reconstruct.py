"""`facealbedo reconstruct PHOTO... --out DIR`: one result folder per photo (DESIGN.md, "Result folder").

Progress: a tqdm bar per stage on stderr for people, or JSON lines on stdout (--progress-json) for the
Blender add-on. Ctrl-C or SIGTERM removes the half-written temporary folder and exits with 130.
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from inference_core.cli import add_common_options
from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.progress import ProgressCallback, emit_event, json_progress

EXAMPLES = ("astronaut",)


def add_reconstruction_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `reconstruct` and `batch`."""
    parser.add_argument("--out", default="out", type=Path, help="folder that receives one result folder per photo "
                        "(default: out)")
    parser.add_argument("--resolution", type=int, default=1024, help="side of each UV tile in texels (default 1024)")
    parser.add_argument("--landmarks", default="auto", choices=("auto", "dlib", "fan"),
                        help="landmark detector (auto: FAN when its weights are present, else dlib)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="refinement network weights (.safetensors) to start the albedo refinement from")
    parser.add_argument("--face-index", type=int, default=0,
                        help="which face when a photo shows several, 0 = the largest (default 0)")
    parser.add_argument("--quality", default="full", choices=("full", "preview"),
                        help="full (default) or preview: a quick look without the photometric fit and refinement")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing results (the old one stays until the new one is complete)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reconstruct", help="reconstruct a relightable head from each photo",
        description="Reconstruct a relightable 3D head from each PHOTO into OUT/<photo name>/ (head.obj, "
                    "head.glb, albedo UDIM tiles, lighting, camera; see manifest.json inside).")
    parser.add_argument("photos", nargs="*", type=Path, metavar="PHOTO", help="photo files (JPEG, PNG, ...)")
    parser.add_argument("--example", choices=EXAMPLES, help="use a bundled example photo instead of PHOTO "
                        "(astronaut: scikit-image's public-domain portrait)")
    add_reconstruction_options(parser)
    add_common_options(parser)
    parser.set_defaults(run=run)


class StageBars:
    """A progress callback that shows one tqdm bar per stage (on stderr)."""

    def __init__(self, label: str = ""):
        self.label, self.stage, self.bar = label, None, None

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=100, desc=f"{self.label}{stage:>7}", unit="%", leave=True, file=sys.stderr,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}")
        self.bar.n = round(100 * min(max(fraction, 0.0), 1.0))
        self.bar.set_postfix_str(message, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def raise_keyboard_interrupt(signum: int, frame) -> None:
    """SIGTERM handler: unwind like Ctrl-C so that temporary folders are removed (the add-on's Cancel)."""
    raise KeyboardInterrupt


def install_cancel_handlers() -> None:
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def reconstruction_kwargs(args: argparse.Namespace) -> dict:
    """pipeline.reconstruct() keyword arguments from the shared options."""
    return {"out": args.out, "resolution": args.resolution, "device": args.device, "detector": args.landmarks,
            "face_index": args.face_index, "weights": args.weights, "overwrite": args.overwrite,
            "quality": args.quality}


def run(args: argparse.Namespace) -> int:
    from inference_core.pipeline import reconstruct

    if not args.photos and not args.example:
        raise FaceAlbedoError(ErrorCode.USAGE, "give at least one PHOTO, or --example astronaut")
    install_cancel_handlers()
    inputs: list = list(args.photos)
    if args.example:
        from inference_core.photo import load_example

        inputs.insert(0, (load_example(args.example), args.example))
    for item in inputs:
        photo, name = item if isinstance(item, tuple) else (item, None)
        progress: ProgressCallback = json_progress() if args.progress_json else StageBars()
        try:
            result = reconstruct(photo, name=name, progress=progress, **reconstruction_kwargs(args))
        finally:
            if isinstance(progress, StageBars):
                progress.close()
        if args.progress_json:
            emit_event("done", result=str(result.folder))
        else:
            print(f"{result.folder}  ({result.seconds['total']:.1f} s, albedo: {result.albedo_source})")
    return 0
