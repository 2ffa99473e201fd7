"""`facealbedo assets fetch|status`: get the ICT-FaceKit model into the user cache, and say what is there."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inference_core import assets
from inference_core.cli import add_common_options
from inference_core.errors import ErrorCode
from inference_core.progress import ProgressCallback, emit_event, json_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "assets", help="fetch the morphable model, or show which model files are present",
        description="Model files: the ICT-FaceKit head (fetched once into the user cache) and the landmark "
                    f"detectors' weights. {assets.ASSETS_ENV}, when set, is searched first.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    fetch = actions.add_parser(
        "fetch", help="download ICT-FaceKit at its pinned commit, verify it and pack it into the cache",
        description=f"Download {assets.ICT_ARCHIVE_URL} (ICT-FaceKit, MIT licence, commit "
                    f"{assets.ICT_COMMIT[:12]}), check its sha256 sums, pack its FaceXModel OBJ files into "
                    f"{assets.FACE_MODEL_RELPATH} and install it in {assets.user_cache_dir()}.")
    fetch.add_argument("--archive", type=Path, help="use this already-downloaded archive of the repository "
                       "(zip or tar.gz, e.g. from a machine with network) instead of downloading")
    fetch.add_argument("--url", default=assets.ICT_ARCHIVE_URL, help="where to download the archive from")
    fetch.add_argument("--sha256", default=assets.ICT_ARCHIVE_SHA256,
                       help="expected sha256 of the archive (default: the pinned one, if recorded)")
    fetch.add_argument("--cache-dir", type=Path, default=None, help="install here instead of the user cache")
    fetch.add_argument("--force", action="store_true", help="fetch again even if the model is present")
    add_common_options(fetch)
    fetch.set_defaults(run=run_fetch)

    status = actions.add_parser("status", help="print what is present, where, and what is missing")
    add_common_options(status)
    status.set_defaults(run=run_status)


def run_fetch(args: argparse.Namespace) -> int:
    progress = json_progress() if args.progress_json else _print_progress()
    path = assets.fetch_face_model(url=args.url, archive=args.archive, archive_sha256=args.sha256,
                                   cache_dir=args.cache_dir, force=args.force, progress=progress)
    if args.progress_json:
        emit_event("done", result=str(path))
    else:
        print(path)
    return 0


def run_status(args: argparse.Namespace) -> int:
    states = assets.asset_status()
    if args.progress_json:
        emit_event("status", assets=[{"name": s.name, "present": s.present, "path": str(s.path) if s.path else None,
                                      "note": s.note} for s in states])
    else:
        print(assets.describe_status(states))
    required_missing = [s for s in states if not s.present and "optional" not in s.name]
    return 0 if not required_missing else ErrorCode.ASSETS_MISSING.exit_status


def _print_progress() -> ProgressCallback:
    """Progress for people: one stderr line per message, download sizes only every 50 MB."""
    last = {"message": None, "mb": -50}

    def report(stage: str, fraction: float, message: str) -> None:
        if message.startswith("downloading"):
            megabytes = int("".join(ch for ch in message if ch.isdigit()) or 0)
            if megabytes - last["mb"] < 50:
                return
            last["mb"] = megabytes
        if message != last["message"]:
            last["message"] = message
            print(f"facealbedo: {message}", file=sys.stderr)

    return report
