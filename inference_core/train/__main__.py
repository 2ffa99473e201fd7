"""`python -m inference_core.train --images DIR --out weights.safetensors [--epochs N]`.

Multi-GPU or multi-process: `torchrun --nproc_per_node N -m inference_core.train ...` (rank 0 builds the
cache and writes the weights; the others wait for it).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch.distributed as dist

from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.facemodel import load_face_model
from inference_core.refine.network import save_weights
from inference_core.refine.optimise import torch_device
from inference_core.train.dataset import FaceTileDataset, build_cache
from inference_core.train.trainer import TrainSettings, start_distributed, train


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m inference_core.train",
                                     description="Train the albedo refinement network on a folder of face photos "
                                                 "(self-supervised: no ground-truth albedo needed).")
    parser.add_argument("--images", type=Path, required=True, help="folder of face photos")
    parser.add_argument("--out", type=Path, required=True, help="weights file to write (.safetensors)")
    parser.add_argument("--epochs", type=int, default=TrainSettings.epochs)
    parser.add_argument("--batch-size", type=int, default=TrainSettings.batch_size)
    parser.add_argument("--learning-rate", type=float, default=TrainSettings.learning_rate)
    parser.add_argument("--resolution", type=int, default=256, help="face-tile texels per side (divisible by 16)")
    parser.add_argument("--cache", type=Path, default=None, help="where prepared photos are kept "
                        "(default: <out>.cache/)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    return parser.parse_args(argv)


def print_progress(stage: str, fraction: float, message: str) -> None:
    print(f"[{stage} {fraction:4.0%}] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    device = torch_device(args.device)
    place = start_distributed(device)
    cache = args.cache or args.out.with_name(args.out.name + ".cache")
    if place.is_main:
        files, skipped = build_cache(args.images, cache, load_face_model(), args.resolution, str(device),
                                     print_progress)
        for name, code in skipped.items():
            print(f"skipped {name}: {code}", flush=True)
    if place.enabled:
        dist.barrier()
    files = sorted(cache.glob(f"*_{args.resolution}.npz"))
    if not files:
        raise FaceAlbedoError(ErrorCode.NO_FACE, f"no usable face photo in {args.images}")
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate)
    network, losses = train(FaceTileDataset(files), settings, device=device,
                            progress=print_progress if place.is_main else lambda *a: None)
    if place.is_main:
        save_weights(network, args.out)
        print(f"wrote {args.out} (final loss {losses[-1]:.5f})", flush=True)
    if place.enabled:
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FaceAlbedoError as error:
        print(f"train: error [{error.code.name}]: {error.message}", file=sys.stderr)
        sys.exit(error.exit_status)
