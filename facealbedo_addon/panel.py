"""The "Face" tab of the 3D View sidebar: photo with thumbnail, options, Reconstruct, progress, results."""
from __future__ import annotations

import json
from pathlib import Path

import bpy
import bpy.utils.previews

from . import operators, properties, relight
from .result import MANIFEST, summary_lines

_thumbnails = None
"""bpy.utils.previews collection of photo thumbnails, keyed by absolute path."""


def thumbnail_icon(path: str) -> int:
    """Icon id of a photo's thumbnail (loaded once per path), 0 when there is none."""
    if _thumbnails is None or not path:
        return 0
    absolute = bpy.path.abspath(path)
    if not Path(absolute).is_file():
        return 0
    if absolute not in _thumbnails:
        _thumbnails.load(absolute, absolute, "IMAGE")
    return _thumbnails[absolute].icon_id


def result_figures(folder: str) -> list[str]:
    """The last result's figures from its manifest (seconds per stage, residuals)."""
    manifest = Path(bpy.path.abspath(folder)) / MANIFEST if folder else None
    if manifest is None or not manifest.is_file():
        return []
    try:
        return summary_lines(json.loads(manifest.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return []


class FACEALBEDO_PT_face(bpy.types.Panel):
    bl_label = "FaceAlbedo"
    bl_idname = "FACEALBEDO_PT_face"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Face"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.facealbedo
        job = context.window_manager.facealbedo_job
        layout.prop(settings, "photo", text="")
        icon = thumbnail_icon(settings.photo)
        if icon:
            layout.template_icon(icon_value=icon, scale=6.0)
        options = layout.column(align=True)
        options.prop(settings, "resolution")
        options.prop(settings, "face_index")
        if job.running:
            layout.progress(factor=job.fraction, type="BAR",
                            text=f"{job.stage}: {job.message}" if job.message else job.stage)
            layout.operator(operators.FACEALBEDO_OT_cancel.bl_idname, icon="CANCEL")
        else:
            layout.operator(operators.FACEALBEDO_OT_reconstruct.bl_idname, icon="USER")
        if job.error:
            layout.label(text=job.error, icon="ERROR")
        layout.operator(operators.FACEALBEDO_OT_import_result.bl_idname, icon="IMPORT")
        face = properties.active_face(context)
        if face is not None:
            layout.prop(settings, "relight")
            for socket in relight.light_detail_factors(face)[:1]:  # the skin material's, under any light
                layout.prop(socket, "default_value", text="Photo shadows", slider=True)
        figures = result_figures(settings.last_result)
        if figures:
            box = layout.box()
            box.label(text=f"Last result: {Path(settings.last_result).name}")
            for line in figures:
                box.label(text=line)


def register_previews() -> None:
    global _thumbnails
    _thumbnails = bpy.utils.previews.new()


def unregister_previews() -> None:
    global _thumbnails
    if _thumbnails is not None:
        bpy.utils.previews.remove(_thumbnails)
    _thumbnails = None


CLASSES = (FACEALBEDO_PT_face,)
