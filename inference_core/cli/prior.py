"""`facealbedo prior`: not built yet (see the issues)."""
from __future__ import annotations

import argparse

from inference_core.cli import add_common_options
from inference_core.errors import ErrorCode, FaceAlbedoError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("prior", help="(not built yet)")
    add_common_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise FaceAlbedoError(ErrorCode.INTERNAL, "`facealbedo prior` is not built yet")
