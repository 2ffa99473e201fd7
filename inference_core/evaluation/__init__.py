"""`facealbedo evaluate`: measure reconstruction quality on a set of photos, stages side by side.

    evaluate(set_dir, out_dir) runs the stage functions on every photo (datasets.load_set), measures the
    raw / prior / refined albedo of each run (runner), repeats the run for each requested ablation, and
    writes report.json, report.md and contact sheets (report).
The heavy modules (torch, the stages) load only when `evaluate` runs, so the CLI starts fast.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from inference_core.evaluation.ablations import ABLATIONS
from inference_core.progress import ProgressCallback, ignore_progress


def evaluate(set_dir: Path | str, out_dir: Path | str, *, limit: int | None = None, resolution: int = 256,
             ablations: Sequence[str] = (), overrides: Sequence[str] = (), device: str = "cpu",
             detector: str = "auto",
             progress: ProgressCallback = ignore_progress, command: str = "") -> dict[str, Any]:
    """Evaluate a folder of photos with the defaults and each ablation; write the report into out_dir.

    `overrides` are STAGE.FIELD=VALUE settings applied to every run (e.g. fewer iterations for a quick look).
    Returns the report as written to report.json: {"set", "command", "runs": {"defaults": run,
    ablation: run, ...}, "seconds_total"}; each run is `runner.summarise_run`'s result.
    """
    from inference_core.evaluation.datasets import load_set
    from inference_core.evaluation.report import write_contact_sheet, write_report
    from inference_core.evaluation.runner import PhotoResult, RunSettings, evaluate_runs
    from inference_core.facemodel import load_face_model

    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = {name or "defaults": RunSettings(resolution=resolution, device=device, detector=detector, ablation=name,
                                            overrides=tuple(overrides))
            for name in (None, *ablations)}

    def sheet(run_name: str, result: PhotoResult) -> None:
        if run_name == "defaults":
            write_contact_sheet(out, result)

    results = evaluate_runs(load_set(set_dir, limit=limit), load_face_model(), runs, progress=progress,
                            on_result=sheet)
    report = {"set": str(set_dir), "command": command, "runs": results,
              "seconds_total": time.perf_counter() - start}
    write_report(out, report)
    return report


__all__ = ["ABLATIONS", "evaluate"]
