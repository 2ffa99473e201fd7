"""FaceAlbedo for Blender: one face photo in, a relightable head out (the core runs in its own process).

This file only registers; the work lives in the modules: runner (core process and line protocol),
result (reading a result folder), importer (result -> Blender data), relight (presets), operators,
panel, preferences, properties, and batch.py (a headless script).
"""
from __future__ import annotations

import bpy

from . import operators, panel, preferences, properties

CLASSES = preferences.CLASSES + properties.CLASSES + operators.CLASSES + panel.CLASSES


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.facealbedo = bpy.props.PointerProperty(type=properties.FaceAlbedoSettings)
    bpy.types.WindowManager.facealbedo_job = bpy.props.PointerProperty(type=properties.FaceAlbedoJobState)
    panel.register_previews()


def unregister() -> None:
    panel.unregister_previews()
    del bpy.types.WindowManager.facealbedo_job
    del bpy.types.Scene.facealbedo
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
