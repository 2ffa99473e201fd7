"""The inference core as a separate process, spoken to over the JSON line protocol of DESIGN.md.

The add-on never imports torch: it starts `<python> -m inference_core reconstruct PHOTO --out DIR
--progress-json` and reads one JSON event per line from its standard output:

    {"event": "progress", "stage": "fit", "fraction": 0.42, "message": "fitting shape"}
    {"event": "done", "result": "DIR/photo_stem"}
    {"event": "error", "code": "NO_FACE", "message": "no face found in photo.jpg"}

This module knows nothing of bpy, so that it can be tested and used by `batch.py` with any Python.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

PYTHON_ENV = "FACEALBEDO_PYTHON"
"""Environment variable naming the Python that runs the core (overrides auto-detection)."""
BUILD_INFO_FILE = "build_info.json"
"""Written by build.py into the zip: the source checkout, whose .venv is a good inference Python."""
BUNDLED_CORE_DIR = "core"
"""Folder inside the built extension that holds the bundled `inference_core` package."""
ADDON_DIR = Path(__file__).resolve().parent
STDERR_TAIL_CHARS = 2000


@dataclass(frozen=True)
class CoreEvent:
    """One line of the protocol. `kind` is progress, done or error; the other fields depend on it."""

    kind: str
    stage: str = ""
    fraction: float = 0.0
    message: str = ""
    result: str = ""
    code: str = ""

    @staticmethod
    def parse(line: str) -> "CoreEvent | None":
        """The event on one stdout line, or None for lines that are not protocol events (logs)."""
        line = line.strip()
        if not line.startswith("{"):
            return None
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            return None
        if not isinstance(data, dict) or data.get("event") not in ("progress", "done", "error"):
            return None
        return CoreEvent(
            kind=data["event"],
            stage=str(data.get("stage", "")),
            fraction=float(data.get("fraction", 0.0) or 0.0),
            message=str(data.get("message", "")),
            result=str(data.get("result", "")),
            code=str(data.get("code", "")),
        )


STAGE_WEIGHTS: dict[str, float] = {"load": 0.02, "detect": 0.04, "fit": 0.3, "unwrap": 0.06, "prior": 0.08,
                                   "refine": 0.4, "export": 0.1}
"""Rough share of each pipeline stage in the run time, to turn per-stage fractions into one bar."""


def overall_fraction(event: CoreEvent) -> float:
    """Fraction of the whole run done at a progress event (the stage's own fraction for unknown stages)."""
    if event.stage not in STAGE_WEIGHTS:
        return min(max(event.fraction, 0.0), 1.0)
    names = list(STAGE_WEIGHTS)
    before = sum(STAGE_WEIGHTS[n] for n in names[:names.index(event.stage)])
    done = before + STAGE_WEIGHTS[event.stage] * min(max(event.fraction, 0.0), 1.0)
    return done / sum(STAGE_WEIGHTS.values())


@dataclass(frozen=True)
class ReconstructRequest:
    """What to reconstruct and how: the arguments of `facealbedo reconstruct`."""

    photo: Path
    out_dir: Path
    resolution: int = 1024
    device: str = "auto"
    overwrite: bool = True
    face_index: int = 0

    def arguments(self) -> list[str]:
        """Command-line arguments after `python -m inference_core`."""
        args = ["reconstruct", str(self.photo), "--out", str(self.out_dir), "--progress-json",
                "--device", self.device, "--resolution", str(self.resolution)]
        if self.face_index:
            args += ["--face-index", str(self.face_index)]
        if self.overwrite:
            args.append("--overwrite")
        return args


@dataclass
class RunOutcome:
    """How a run ended: `result` folder on success, else an error `code` and a readable `message`."""

    result: Path | None = None
    code: str = ""
    message: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.result is not None

    def describe(self) -> str:
        """One line for the user: what went wrong and what to do (the core's message says the latter)."""
        if self.ok:
            return f"Reconstructed {self.result}"
        title = FAILURE_TITLES.get(self.code, self.code.replace("_", " ").capitalize() or "Failed")
        return f"{title}: {self.message}" if self.message else title


FAILURE_TITLES = {
    "NO_FACE": "No face found", "MULTIPLE_FACES": "Several faces", "FACE_TOO_SMALL": "Face too small",
    "UNREADABLE_IMAGE": "Cannot read the photo", "ASSETS_MISSING": "Model files missing",
    "ASSETS_CORRUPT": "Model files damaged", "OUTPUT_NOT_WRITABLE": "Cannot write the result",
    "OUTPUT_EXISTS": "Result exists", "DISK_FULL": "Disk full", "DEVICE_UNAVAILABLE": "Device unavailable",
    "CANCELLED": "Cancelled", "SETUP": "Setup problem", "CRASHED": "The inference core stopped",
    "INTERNAL": "Internal error in the core",
}
"""Readable titles of the core's error codes (inference_core/errors.py) and the runner's own."""


# --------------------------------------------------------------------------- finding the core


def core_pythonpath(addon_dir: Path = ADDON_DIR) -> Path:
    """The folder that holds the `inference_core` package: the bundled copy, else the source checkout."""
    bundled = addon_dir / BUNDLED_CORE_DIR
    if (bundled / "inference_core").is_dir():
        return bundled
    return addon_dir.parent


def source_checkout(addon_dir: Path = ADDON_DIR) -> Path | None:
    """The project checkout this add-on was built from (build_info.json) or lives in."""
    info = addon_dir / BUILD_INFO_FILE
    if info.is_file():
        try:
            return Path(json.loads(info.read_text(encoding="utf-8"))["source"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    if (addon_dir.parent / "pyproject.toml").is_file():
        return addon_dir.parent
    return None


def venv_python(root: Path) -> Path:
    """The interpreter of `root/.venv` on this platform."""
    if os.name == "nt":
        return root / ".venv" / "Scripts" / "python.exe"
    return root / ".venv" / "bin" / "python"


def wheels_bundled(addon_dir: Path = ADDON_DIR) -> bool:
    """True when build.py --with-wheels put the core's dependencies into the extension."""
    return any((addon_dir / "wheels").glob("*.whl"))


def find_inference_python(addon_dir: Path = ADDON_DIR) -> Path | None:
    """Auto-detect the Python that runs the core, in order of preference:

    1. the FACEALBEDO_PYTHON environment variable;
    2. the project's `.venv` in the checkout the add-on came from;
    3. Blender's own Python, when the wheels are bundled (Blender installed them into it).
    """
    named = os.environ.get(PYTHON_ENV)
    if named:
        return Path(named)
    checkout = source_checkout(addon_dir)
    if checkout is not None and venv_python(checkout).is_file():
        return venv_python(checkout)
    if wheels_bundled(addon_dir):
        return Path(sys.executable)
    return None


def core_environment(addon_dir: Path = ADDON_DIR, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ours, with the core's folder first on PYTHONPATH and unbuffered output."""
    env = dict(os.environ)
    paths = [str(core_pythonpath(addon_dir))] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def core_command(python: Path | str, arguments: Sequence[str]) -> list[str]:
    """The argv that runs `python -m inference_core ARGUMENTS`."""
    return [str(python), "-m", "inference_core", *arguments]


# --------------------------------------------------------------------------- the running process


class CoreProcess:
    """One running core process: start it, poll its events without blocking, wait for it, or cancel it.

    A reader thread moves stdout lines into a queue, so `poll()` never blocks the caller (Blender's UI).
    Cancel terminates the process (and its children) and removes what it created in `cleanup_dir`.
    """

    def __init__(self, python: Path | str, arguments: Sequence[str], *, addon_dir: Path = ADDON_DIR,
                 cleanup_dir: Path | None = None, cleanup_prefix: str = "",
                 env: dict[str, str] | None = None):
        self.argv = core_command(python, arguments)
        self._cleanup_dir = cleanup_dir
        self._cleanup_prefix = cleanup_prefix
        self._existing = self._entries()
        self._events: queue.Queue[CoreEvent] = queue.Queue()
        self._stderr: list[str] = []
        self.started = time.monotonic()
        self.outcome: RunOutcome | None = None
        self.last_progress = CoreEvent("progress", stage="start", message="starting the core")
        try:
            self.process = subprocess.Popen(
                self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                env=env or core_environment(addon_dir), text=True, encoding="utf-8", errors="replace",
                bufsize=1, start_new_session=(os.name != "nt"))
        except OSError as exc:
            self.process = None
            self.outcome = RunOutcome(code="SETUP", message=f"cannot start the inference Python "
                                      f"{self.argv[0]!r} ({exc.strerror or exc}); set it in the add-on "
                                      "preferences and press Check setup")
            return
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for thread in self._threads:
            thread.start()

    @classmethod
    def reconstruct(cls, python: Path | str, request: ReconstructRequest, **kwargs) -> "CoreProcess":
        """Start `reconstruct` for one photo; cancel removes whatever it left in `request.out_dir`."""
        return cls(python, request.arguments(), cleanup_dir=request.out_dir,
                   cleanup_prefix=request.photo.stem, **kwargs)

    # -- reading

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            event = CoreEvent.parse(line)
            if event is not None:
                self._events.put(event)

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self._stderr.append(line)
            if len(self._stderr) > 200:
                del self._stderr[:100]

    def stderr_tail(self) -> str:
        return "".join(self._stderr)[-STDERR_TAIL_CHARS:].strip()

    def poll(self) -> list[CoreEvent]:
        """Events that arrived since the last call; sets `outcome` once the process has ended."""
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                break
        for event in events:
            self._apply(event)
        if self.outcome is None and self.process is not None and self.process.poll() is not None:
            for thread in self._threads:
                thread.join(timeout=2)
            late = []
            while not self._events.empty():
                late.append(self._events.get_nowait())
            for event in late:
                self._apply(event)
            events += late
            if self.outcome is None:
                self.outcome = RunOutcome(code="CRASHED", message=self._crash_message())
            self.outcome.seconds = time.monotonic() - self.started
        return events

    def _apply(self, event: CoreEvent) -> None:
        if event.kind == "progress":
            self.last_progress = event
        elif event.kind == "done" and self.outcome is None:
            self.outcome = RunOutcome(result=Path(event.result))
        elif event.kind == "error" and self.outcome is None:
            self.outcome = RunOutcome(code=event.code or "ERROR", message=event.message)

    def _crash_message(self) -> str:
        tail = self.stderr_tail().splitlines()
        last = tail[-1] if tail else "no output"
        return f"the inference core stopped (exit status {self.process.returncode}): {last}"

    @property
    def finished(self) -> bool:
        return self.outcome is not None and (self.process is None or self.process.poll() is not None)

    def wait(self, on_progress: Callable[[CoreEvent], None] | None = None, interval: float = 0.1) -> RunOutcome:
        """Block until the process ends (background mode, batch), reporting progress events."""
        while not self.finished:
            for event in self.poll():
                if event.kind == "progress" and on_progress is not None:
                    on_progress(event)
            if not self.finished:
                time.sleep(interval)
        return self.outcome

    # -- cancelling

    def cancel(self, timeout: float = 5.0) -> None:
        """Terminate the process and its children, wait for it, and remove what it created."""
        if self.process is not None and self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
                self.process.wait(timeout=timeout)
        self._remove_new_entries()
        self.outcome = RunOutcome(code="CANCELLED", message="cancelled; nothing was kept",
                                  seconds=time.monotonic() - self.started)

    def _signal(self, sig: int) -> None:
        try:
            if os.name != "nt":
                os.killpg(self.process.pid, sig)
            else:
                self.process.terminate()
        except (ProcessLookupError, PermissionError):
            pass

    def _entries(self) -> set[str]:
        if self._cleanup_dir is None or not self._cleanup_dir.is_dir():
            return set()
        return {p.name for p in self._cleanup_dir.iterdir()}

    def _remove_new_entries(self) -> None:
        """Delete entries of the output folder that appeared during this run and name this photo."""
        if self._cleanup_dir is None or not self._cleanup_dir.is_dir():
            return
        for name in self._entries() - self._existing:
            if self._cleanup_prefix and self._cleanup_prefix not in name:
                continue
            path = self._cleanup_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


class FinishedProcess:
    """A stand-in for a process that could not start: already finished with `outcome`."""

    def __init__(self, outcome: RunOutcome):
        self.outcome = outcome
        self.last_progress = CoreEvent("progress", stage="start")
        self.finished = True

    def poll(self) -> list[CoreEvent]:
        return []

    def wait(self, on_progress: Callable[[CoreEvent], None] | None = None, interval: float = 0.1) -> RunOutcome:
        return self.outcome

    def cancel(self) -> None:
        pass


def reconstruct_blocking(python: Path | str, request: ReconstructRequest,
                         on_progress: Callable[[CoreEvent], None] | None = None, **kwargs) -> RunOutcome:
    """Run one reconstruction to the end (background mode and batch)."""
    return CoreProcess.reconstruct(python, request, **kwargs).wait(on_progress)


# --------------------------------------------------------------------------- checking the setup


@dataclass
class SetupReport:
    """What "Check setup" found: `problems` to fix (with how), `facts` that are fine."""

    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_setup(python: Path | None, addon_dir: Path = ADDON_DIR, timeout: float = 120.0) -> SetupReport:
    """Run the core's `assets status` with the chosen Python and say what is missing and how to fix it."""
    report = SetupReport()
    if python is None:
        report.problems.append(
            "no inference Python found: set 'Inference Python' in the add-on preferences to the python of an "
            f"environment with the project installed (`make setup` creates .venv), or set {PYTHON_ENV}")
        return report
    if not Path(python).is_file():
        report.problems.append(f"inference Python {python} does not exist: fix the path in the preferences")
        return report
    report.facts.append(f"inference Python: {python}")
    report.facts.append(f"core code: {core_pythonpath(addon_dir)}")
    missing = _missing_modules(python, addon_dir, timeout)
    if missing:
        report.problems.append(f"{python} lacks the core's packages ({', '.join(missing)}): install the project "
                               "into it (`make setup` makes .venv) or build the add-on with --with-wheels")
        return report
    try:
        completed = subprocess.run(core_command(python, ["assets", "status"]), capture_output=True, text=True,
                                   env=core_environment(addon_dir), timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        report.problems.append(f"cannot run {python}: {exc}")
        return report
    lines = [line.strip() for line in (completed.stdout + "\n" + completed.stderr).splitlines() if line.strip()]
    for line in lines:  # "[ok] ...", "[MISSING] ..." (optional ones say so)
        required_missing = line.upper().startswith("[MISSING]") and "(optional)" not in line
        (report.problems if required_missing else report.facts).append(line)
    if completed.returncode != 0 and not report.problems:
        report.problems.append(f"`facealbedo assets status` failed: {lines[-1] if lines else completed.returncode}")
    return report


CORE_MODULES = ("inference_core", "torch", "numpy", "cv2", "scipy", "dlib", "PIL", "platformdirs")
"""What `python -m inference_core` needs to import (pyproject.toml's dependencies, by import name)."""


def _missing_modules(python: Path, addon_dir: Path, timeout: float) -> list[str]:
    """The CORE_MODULES that `python` cannot find (with the core's folder on its path)."""
    probe = ("import importlib.util, sys; print(' '.join(m for m in sys.argv[1:] "
             "if importlib.util.find_spec(m) is None))")
    try:
        completed = subprocess.run([str(python), "-c", probe, *CORE_MODULES], capture_output=True, text=True,
                                   env=core_environment(addon_dir), timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"cannot run it: {exc}"]
    if completed.returncode != 0:
        return [completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else "cannot run it"]
    return completed.stdout.split()


def iter_photos(folder: Path, extensions: Iterable[str] = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff",
                                                             ".bmp", ".pgm", ".gif")) -> list[Path]:
    """The photos directly inside `folder`, sorted by name."""
    wanted = {e.lower() for e in extensions}
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in wanted)
