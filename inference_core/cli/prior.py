"""`facealbedo prior build --images DIR --out FILE`: learn a PCA albedo basis from a folder of face photos.

Put the file at `<assets>/prior/albedo_pca.safetensors` (FACEALBEDO_ASSETS or the user cache folder, see
`facealbedo assets status`) and the prior stage uses it instead of per-region colours.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inference_core.cli import add_common_options
from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.progress import emit_event, ignore_progress, json_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("prior", help="build the learned albedo prior (PCA basis)",
                                   description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="fit, unwrap and de-light each photo, complete it by symmetry, "
                                             "and keep the principal components",
                               description="Learn a PCA albedo basis (safetensors) from a folder of face photos.")
    build.add_argument("--images", type=Path, required=True, help="folder of face photos (searched recursively)")
    build.add_argument("--out", type=Path, required=True, help="basis file to write (.safetensors); the pipeline "
                       "uses <assets>/prior/albedo_pca.safetensors")
    build.add_argument("--resolution", type=int, default=256, help="side of each UV tile in the basis (default 256)")
    build.add_argument("--components", type=int, default=40, help="most principal components kept (default 40)")
    build.add_argument("--landmark-fit", action="store_true", help="fit landmarks only (faster, rougher)")
    add_common_options(build)
    build.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from inference_core.fitting import FitSettings
    from inference_core.device import resolve_device
    from inference_core.texture.build import basis_from_photos, photos_in
    from inference_core.texture.pca import save_basis

    if args.out.suffix != ".safetensors":
        raise FaceAlbedoError(ErrorCode.USAGE, f"--out {args.out}: give a .safetensors file name")
    device = resolve_device(args.device)
    progress = json_progress() if args.progress_json else ignore_progress
    photos = photos_in(args.images)
    basis, skipped = basis_from_photos(photos, args.resolution, args.components,
                                       FitSettings(photometric=not args.landmark_fit), device, progress)
    try:
        path = save_basis(basis, args.out)
    except OSError as exc:
        raise FaceAlbedoError(ErrorCode.OUTPUT_NOT_WRITABLE, f"cannot write {args.out}: {exc}") from exc
    for photo, why in skipped:
        print(f"skipped {photo}: {why}", file=sys.stderr)
    summary = f"{path}: {len(basis.stddev)} components from {len(photos) - len(skipped)} of {len(photos)} photos"
    if args.progress_json:
        emit_event("done", result=str(path))
    else:
        print(summary)
    return 0
