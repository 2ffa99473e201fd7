"""`facealbedo evaluate SETDIR --out REPORT`: quality figures of every stage on a folder of photos."""
from __future__ import annotations

import argparse
import shlex
import sys

from inference_core.cli import add_common_options
from inference_core.device import resolve_device
from inference_core.progress import ProgressCallback, json_progress

DESCRIPTION = """\
Reconstruct every photo of SETDIR and measure each stage's albedo side by side: the raw unwrapped
texture used as albedo, the prior-stage albedo and the refined albedo (re-render PSNR / SSIM /
scale-invariant error in the fitted face mask, completeness, symmetry-seam strength; landmark NME
where .mat/.pts ground truth lies beside the photos; spread across lights for Yale-style lighting
sets). Writes REPORT/report.json, REPORT/report.md and REPORT/sheets/*.png (photo, re-render, shading,
error heat map, albedo per stage). A later stage that measures worse than an earlier one is flagged."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from inference_core.evaluation.ablations import ABLATIONS

    parser = subparsers.add_parser(
        "evaluate", help="measure reconstruction quality on a folder of photos (report + contact sheets)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Ablations: " + "; ".join(f"{name}: {a.description}" for name, a in ABLATIONS.items()) + ".")
    parser.add_argument("set_dir", metavar="SETDIR", help="folder of photos (searched recursively)")
    parser.add_argument("--out", required=True, metavar="REPORT", help="folder for the report (created)")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="at most N photos (for lighting sets: N lights per subject, spread over azimuth)")
    parser.add_argument("--resolution", type=int, default=256, metavar="R",
                        help="UV texels per side for unwrap, prior and refine (default 256)")
    parser.add_argument("--ablation", nargs="+", default=[], choices=sorted(ABLATIONS), metavar="NAME",
                        help="also run with one part switched off, once per NAME (see below)")
    parser.add_argument("--set", nargs="+", default=[], dest="overrides", metavar="STAGE.FIELD=VALUE",
                        help="change a stage setting in every run, e.g. fit.photometric=False refine.iterations=30 "
                             "(fields of FitSettings, PriorSettings, RefineSettings)")
    parser.add_argument("--detector", default="auto", choices=("auto", "dlib", "fan"),
                        help="landmark detector (default auto)")
    add_common_options(parser)
    parser.set_defaults(run=run)


def _text_progress() -> ProgressCallback:
    def report(stage: str, fraction: float, message: str) -> None:
        print(f"[{fraction:4.0%}] {stage}: {message}", file=sys.stderr, flush=True)

    return report


def _command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this report (as the report quotes it)."""
    words = ["facealbedo", "evaluate", args.set_dir, "--out", args.out, "--resolution", str(args.resolution)]
    words += ["--limit", str(args.limit)] if args.limit is not None else []
    words += ["--ablation", *args.ablation] if args.ablation else []
    words += ["--set", *args.overrides] if args.overrides else []
    words += ["--detector", args.detector] if args.detector != "auto" else []
    return " ".join(shlex.quote(word) for word in words)


def run(args: argparse.Namespace) -> int:
    from inference_core.evaluation import evaluate
    from inference_core.evaluation.report import STAGE_TABLE_METRICS
    from inference_core.progress import emit_event

    command = _command_line(args)
    progress = json_progress() if args.progress_json else _text_progress()
    report = evaluate(args.set_dir, args.out, limit=args.limit, resolution=args.resolution,
                      ablations=args.ablation, overrides=args.overrides, device=resolve_device(args.device),
                      detector=args.detector, progress=progress, command=command)
    defaults = report["runs"]["defaults"]
    if args.progress_json:
        emit_event("done", result=str(args.out))
        return 0
    for stage, figures in defaults["stages"].items():
        medians = ", ".join(f"{m} {figures[m]['median']:.4g}" for m in STAGE_TABLE_METRICS
                            if "median" in figures.get(m, {}))
        print(f"{stage}: {medians}")
    for flag in defaults["regressions"]:
        print(f"WORSE: {flag['stage']} {flag['metric']} {flag['value']:.4g} vs {flag['than']} {flag['earlier']:.4g}"
              + (f" ({flag['subject']})" if "subject" in flag else ""))
    print(f"report: {args.out}/report.md")
    return 0
