"""Add-on preferences: which Python runs the core, on which device, at what resolution, into which folder."""
from __future__ import annotations

import tempfile
from pathlib import Path

import bpy

from . import runner

ADDON_ID = __package__
"""The add-on's module name: `bl_ext.<repo>.facealbedo` when installed as an extension."""

DEVICE_ITEMS = (
    ("auto", "Auto", "CUDA when the inference Python sees a GPU, else CPU"),
    ("cpu", "CPU", "Always the CPU"),
    ("cuda", "CUDA", "An NVIDIA GPU (fails with DEVICE_UNAVAILABLE when there is none)"),
)
RESOLUTION_ITEMS = tuple((str(r), f"{r} px", f"UV tiles of {r} x {r} texels") for r in (256, 512, 1024, 2048))


class FaceAlbedoPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    python_path: bpy.props.StringProperty(
        name="Inference Python", subtype="FILE_PATH",
        description="Python of an environment with the FaceAlbedo core's packages (PyTorch, OpenCV, dlib). "
                    "Empty: auto-detect (FACEALBEDO_PYTHON, the project's .venv, Blender's own when the "
                    "wheels are bundled)")
    device: bpy.props.EnumProperty(name="Device", items=DEVICE_ITEMS, default="auto")
    resolution: bpy.props.EnumProperty(name="Default resolution", items=RESOLUTION_ITEMS, default="1024")
    output_dir: bpy.props.StringProperty(
        name="Output folder", subtype="DIR_PATH",
        description="Where result folders are written. Empty: the add-on's own user folder")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "python_path")
        python = inference_python(self)
        layout.label(text=f"Using: {python}" if python else "No inference Python found",
                     icon="CHECKMARK" if python else "ERROR")
        row = layout.row()
        row.prop(self, "device")
        row.prop(self, "resolution")
        layout.prop(self, "output_dir")
        layout.label(text=f"Results go to: {output_folder(self)}")
        layout.operator("facealbedo.check_setup", icon="CHECKBOX_HLT")


def get_preferences(context: bpy.types.Context | None = None) -> FaceAlbedoPreferences | None:
    """This add-on's preferences, or None when the modules run without being enabled (batch script)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None


def inference_python(prefs: FaceAlbedoPreferences | None) -> Path | None:
    """The preference when set, else the auto-detected Python (runner.find_inference_python)."""
    if prefs is not None and prefs.python_path.strip():
        return Path(bpy.path.abspath(prefs.python_path.strip()))
    return runner.find_inference_python()


def output_folder(prefs: FaceAlbedoPreferences | None) -> Path:
    """The preference when set, else the extension's user folder, else the temporary folder."""
    if prefs is not None and prefs.output_dir.strip():
        return Path(bpy.path.abspath(prefs.output_dir.strip()))
    try:
        return Path(bpy.utils.extension_path_user(ADDON_ID, path="results", create=True))
    except (ValueError, AttributeError, OSError):  # not an extension (run from the checkout)
        return Path(tempfile.gettempdir()) / "facealbedo"


CLASSES = (FaceAlbedoPreferences,)
