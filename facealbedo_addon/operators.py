"""Operators: Reconstruct Face (modal in the UI, synchronous in background mode), Cancel, Import Face
Result, Relight, Check setup. Every failure reaches the user as one report line, never a traceback.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import bpy

from . import importer, preferences, properties, relight, runner

TIMER_SECONDS = 0.2


class CoreProcessLike(Protocol):
    """What a ReconstructJob needs of a process (runner.CoreProcess, or a fake in tests)."""

    outcome: runner.RunOutcome | None
    last_progress: runner.CoreEvent

    def poll(self) -> list[runner.CoreEvent]: ...

    def wait(self, on_progress=None) -> runner.RunOutcome: ...

    def cancel(self) -> None: ...

    @property
    def finished(self) -> bool: ...


class ReconstructJob:
    """One reconstruction, from the running core process to the imported face.

    `step()` is the modal operator's timer callback: it polls the process, shows progress, and imports
    the result once the core is done. Tests drive it directly with a fake process.
    """

    RUNNING, DONE, FAILED, CANCELLED = "RUNNING", "DONE", "FAILED", "CANCELLED"

    def __init__(self, process: CoreProcessLike, photo: Path):
        self.process = process
        self.photo = photo
        self.state = self.RUNNING
        self.message = ""
        self.cancel_requested = False
        self.imported: importer.ImportedFace | None = None

    def step(self, context: bpy.types.Context) -> str:
        """Poll once; returns the job's state (RUNNING until the core ends, then DONE or FAILED)."""
        if self.state != self.RUNNING:
            return self.state
        self.process.poll()
        show_progress(context, self.process.last_progress)
        if self.process.finished:
            self._finish(context, self.process.outcome)
        return self.state

    def run(self, context: bpy.types.Context) -> str:
        """Run to the end without an event loop (background mode); progress goes to stdout."""
        outcome = self.process.wait(on_progress=lambda e: print(
            f"FaceAlbedo: {e.stage} {100 * e.fraction:.0f}% {e.message}", flush=True))
        self._finish(context, outcome)
        return self.state

    def cancel(self, context: bpy.types.Context) -> None:
        """Kill the core and remove what it started writing; the scene is left as it was."""
        self.process.cancel()
        self.state, self.message = self.CANCELLED, "Reconstruction cancelled; nothing was kept"
        end_progress(context, "")

    def _finish(self, context: bpy.types.Context, outcome: runner.RunOutcome) -> None:
        if not outcome.ok:
            self.state, self.message = self.FAILED, outcome.describe()
            end_progress(context, self.message)
            return
        try:
            self.imported = importer.import_result(outcome.result, context, photo_name=self.photo.stem)
        except importer.IMPORT_ERRORS as exc:
            self.state, self.message = self.FAILED, importer.describe_import_error(outcome.result, exc)
            end_progress(context, self.message)
            return
        context.scene.facealbedo.last_result = str(outcome.result)
        self.state = self.DONE
        self.message = f"Imported {self.photo.name} ({outcome.seconds:.0f} s) into '{self.imported.collection.name}'"
        end_progress(context, "")


def show_progress(context: bpy.types.Context, event: runner.CoreEvent) -> None:
    """Progress in the panel (window manager state) and in the status bar."""
    state = context.window_manager.facealbedo_job
    state.running = True
    state.stage, state.message = event.stage, event.message
    state.fraction = runner.overall_fraction(event)
    if context.workspace is not None:
        context.workspace.status_text_set(f"FaceAlbedo: {event.stage} {100 * state.fraction:.0f}%  "
                                          f"{event.message}  (Esc cancels)")
    _redraw_panels(context)


def end_progress(context: bpy.types.Context, error: str) -> None:
    state = context.window_manager.facealbedo_job
    state.running, state.error, state.fraction = False, error, 0.0
    if context.workspace is not None:
        context.workspace.status_text_set(None)
    _redraw_panels(context)


def _redraw_panels(context: bpy.types.Context) -> None:
    screen = context.screen
    for area in (screen.areas if screen is not None else ()):
        if area.type == "VIEW_3D":
            area.tag_redraw()


_active_job: ReconstructJob | None = None
"""The reconstruction running in the UI (one at a time), for the Cancel button."""


def start_job(context: bpy.types.Context, photo: Path, resolution: int = 0) -> ReconstructJob:
    """Start the core on `photo` with the preferences' Python, device, resolution and output folder."""
    prefs = preferences.get_preferences(context)
    settings = context.scene.facealbedo
    if not resolution:
        chosen = settings.resolution if settings.resolution != "DEFAULT" else (prefs.resolution if prefs else "1024")
        resolution = int(chosen)
    request = runner.ReconstructRequest(photo=photo, out_dir=preferences.output_folder(prefs), resolution=resolution,
                                        device=prefs.device if prefs else "auto", face_index=settings.face_index)
    python = preferences.inference_python(prefs)
    if python is None:
        outcome = runner.RunOutcome(code="SETUP", message="no inference Python found; set one in the add-on "
                                                          "preferences and press Check setup")
        return ReconstructJob(runner.FinishedProcess(outcome), photo)
    request.out_dir.mkdir(parents=True, exist_ok=True)
    return ReconstructJob(runner.CoreProcess.reconstruct(python, request), photo)


class FACEALBEDO_OT_reconstruct(bpy.types.Operator):
    """Reconstruct a relightable head from the photo and import it (Esc cancels)"""

    bl_idname = "facealbedo.reconstruct"
    bl_label = "Reconstruct Face"
    bl_options = {"REGISTER", "UNDO"}

    photo: bpy.props.StringProperty(name="Photo", subtype="FILE_PATH",
                                    description="Photo to reconstruct (default: the panel's photo)",
                                    options={"SKIP_SAVE"})
    resolution: bpy.props.IntProperty(name="Resolution", default=0, min=0, max=4096, options={"SKIP_SAVE"},
                                      description="UV tile size; 0 = the panel's / the preferences' choice")

    _timer = None
    _job: ReconstructJob | None = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _active_job is None or _active_job.state != ReconstructJob.RUNNING

    def _photo(self, context: bpy.types.Context) -> Path | None:
        chosen = self.photo or context.scene.facealbedo.photo
        if not chosen:
            self.report({"ERROR"}, "Choose a photo first")
            return None
        path = Path(bpy.path.abspath(chosen))
        if not path.is_file():
            self.report({"ERROR"}, f"Photo not found: {path}")
            return None
        return path

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Synchronous run (background mode and scripts): the core, then the import."""
        photo = self._photo(context)
        if photo is None:
            return {"CANCELLED"}
        job = start_job(context, photo, self.resolution)
        return self._report_end(job, job.run(context))

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        global _active_job
        photo = self._photo(context)
        if photo is None:
            return {"CANCELLED"}
        self._job = _active_job = start_job(context, photo, self.resolution)
        context.window_manager.facealbedo_job.error = ""
        self._timer = context.window_manager.event_timer_add(TIMER_SECONDS, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        job = self._job
        if event.type == "ESC" or job.cancel_requested:
            job.cancel(context)
            return self._end_modal(context, job.state)
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        state = job.step(context)
        return {"RUNNING_MODAL"} if state == ReconstructJob.RUNNING else self._end_modal(context, state)

    def _end_modal(self, context: bpy.types.Context, state: str) -> set[str]:
        global _active_job
        context.window_manager.event_timer_remove(self._timer)
        _active_job = None
        return self._report_end(self._job, state)

    def _report_end(self, job: ReconstructJob, state: str) -> set[str]:
        if state == ReconstructJob.DONE:
            self.report({"INFO"}, job.message)
            return {"FINISHED"}
        self.report({"WARNING"} if state == ReconstructJob.CANCELLED else {"ERROR"}, job.message)
        return {"CANCELLED"}


class FACEALBEDO_OT_cancel(bpy.types.Operator):
    """Stop the running reconstruction; nothing it started is kept"""

    bl_idname = "facealbedo.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _active_job is not None and _active_job.state == ReconstructJob.RUNNING

    def execute(self, context: bpy.types.Context) -> set[str]:
        _active_job.cancel_requested = True  # the modal operator cancels at its next timer tick
        return {"FINISHED"}


class FACEALBEDO_OT_import_result(bpy.types.Operator):
    """Import a FaceAlbedo result folder: head, materials, shape keys, camera and lighting"""

    bl_idname = "facealbedo.import_result"
    bl_label = "Import Face Result"
    bl_options = {"REGISTER", "UNDO"}

    directory: bpy.props.StringProperty(name="Result folder", subtype="DIR_PATH")

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        folder = Path(bpy.path.abspath(self.directory)) if self.directory else None
        if folder is None:
            self.report({"ERROR"}, "Choose a result folder (it holds head.obj, camera.json, albedo tiles)")
            return {"CANCELLED"}
        try:
            face = importer.import_result(folder, context)
        except importer.IMPORT_ERRORS as exc:
            self.report({"ERROR"}, importer.describe_import_error(folder, exc))
            return {"CANCELLED"}
        context.scene.facealbedo.last_result = str(face.result.folder)
        self.report({"INFO"}, f"Imported '{face.collection.name}'")
        return {"FINISHED"}


class FACEALBEDO_OT_relight(bpy.types.Operator):
    """Light the imported face with a preset (works in Cycles and EEVEE)"""

    bl_idname = "facealbedo.relight"
    bl_label = "Relight"
    bl_options = {"REGISTER", "UNDO"}

    preset: bpy.props.EnumProperty(name="Preset", items=relight.PRESET_ITEMS, default=relight.STUDIO)

    def execute(self, context: bpy.types.Context) -> set[str]:
        face = properties.active_face(context)
        if face is None:
            self.report({"ERROR"}, "No imported face in this scene: reconstruct or import one first")
            return {"CANCELLED"}
        relight.apply_preset(context.scene, face, self.preset)
        return {"FINISHED"}


class FACEALBEDO_OT_check_setup(bpy.types.Operator):
    """Check that the inference Python and the model files are in place, and say how to fix what is not"""

    bl_idname = "facealbedo.check_setup"
    bl_label = "Check setup"

    def execute(self, context: bpy.types.Context) -> set[str]:
        report = runner.check_setup(preferences.inference_python(preferences.get_preferences(context)))
        for line in report.facts:
            print("FaceAlbedo setup:", line)
        if report.ok:
            self.report({"INFO"}, "FaceAlbedo setup is complete: " + "; ".join(report.facts[:2]))
            return {"FINISHED"}
        for problem in report.problems:
            self.report({"ERROR"}, problem)
        return {"CANCELLED"}


CLASSES = (FACEALBEDO_OT_reconstruct, FACEALBEDO_OT_cancel, FACEALBEDO_OT_import_result, FACEALBEDO_OT_relight,
           FACEALBEDO_OT_check_setup)
