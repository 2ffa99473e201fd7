"""The `facealbedo` command line: one parser, one subcommand module each, errors as exit statuses.

Each module in COMMANDS defines `register(subparsers)`, which adds its parser and sets `run=` to a
function `run(args) -> int`. Errors print one line (or one JSON `error` event with --progress-json)
and exit with the status of their code (README, "Exit codes").
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from inference_core.errors import ErrorCode, FaceAlbedoError
from inference_core.progress import emit_event

COMMANDS = ("reconstruct", "batch", "assets", "prior", "evaluate")


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options that every subcommand understands."""
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where PyTorch runs (default: auto = CUDA when present, else CPU)")
    parser.add_argument("--progress-json", action="store_true",
                        help="print progress as JSON lines on stdout (for the Blender add-on and scripts)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print details and full tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facealbedo",
        description="Turn one photo of a face into a relightable 3D head: fitted mesh, complete UV albedo "
                    "with the photo's lighting removed, and that lighting.",
        epilog="Exit statuses: " + ", ".join(f"{c.value} {c.name}" for c in ErrorCode) + ".",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"inference_core.cli.{name}")
        module.register(subparsers)
    return parser


def report_error(error: FaceAlbedoError, progress_json: bool) -> None:
    """One line for a person on stderr, or one `error` event for a program on stdout."""
    if progress_json:
        emit_event("error", code=error.code.name, message=error.message)
    else:
        print(f"facealbedo: error [{error.code.name}]: {error.message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    progress_json = getattr(args, "progress_json", False)
    try:
        return int(args.run(args) or 0)
    except FaceAlbedoError as error:
        report_error(error, progress_json)
        return error.exit_status
    except KeyboardInterrupt:
        report_error(FaceAlbedoError(ErrorCode.CANCELLED, "interrupted; nothing was left half-written"),
                     progress_json)
        return ErrorCode.CANCELLED.exit_status
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one readable line, a known status
        if getattr(args, "verbose", False):
            raise
        report_error(FaceAlbedoError(ErrorCode.INTERNAL, f"unexpected {type(exc).__name__}: {exc} "
                                     "(run again with --verbose and report the traceback)"), progress_json)
        return ErrorCode.INTERNAL.exit_status
