"""Progress reporting: one callback type for every stage, and the JSON line protocol of DESIGN.md.

A stage reports `(stage, fraction, message)` with `fraction` in [0, 1] within that stage. The CLI turns
reports into progress bars (tqdm) for people or into JSON lines for the Blender add-on and other programs:

    {"event": "progress", "stage": "fit", "fraction": 0.42, "message": "fitting shape"}
    {"event": "done", "result": "DIR/photo_stem"}
    {"event": "error", "code": "NO_FACE", "message": "no face found in photo.jpg"}
"""
from __future__ import annotations

import json
import sys
from typing import Any, Callable, TextIO

ProgressCallback = Callable[[str, float, str], None]
"""Called as callback(stage, fraction_within_stage, message)."""


def ignore_progress(stage: str, fraction: float, message: str) -> None:
    """The default callback: report nothing."""


def emit_event(event: str, stream: TextIO | None = None, **fields: Any) -> None:
    """Write one protocol line, flushed at once so that a reading process sees it immediately."""
    stream = stream or sys.stdout
    stream.write(json.dumps({"event": event, **fields}) + "\n")
    stream.flush()


def json_progress(stream: TextIO | None = None) -> ProgressCallback:
    """A callback that writes `progress` events."""

    def report(stage: str, fraction: float, message: str) -> None:
        emit_event("progress", stream, stage=stage, fraction=round(float(fraction), 4), message=message)

    return report
