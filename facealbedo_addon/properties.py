"""What the panel edits (per scene) and what a running reconstruction shows (per window manager)."""
from __future__ import annotations

import bpy

from . import preferences, relight


def _relight_update(settings: "FaceAlbedoSettings", context: bpy.types.Context) -> None:
    """Applying the chosen preset at once makes the enum itself the "Relight" control."""
    faces = relight.face_collections(context.scene)
    if faces:
        relight.apply_preset(context.scene, active_face(context) or faces[-1], settings.relight)


def active_face(context: bpy.types.Context) -> bpy.types.Collection | None:
    """The imported face of the active object, else the last imported face of the scene."""
    faces = relight.face_collections(context.scene)
    active = context.view_layer.objects.active if context.view_layer else None
    if active is not None:
        for face in faces:
            if active.name in face.all_objects:
                return face
    return faces[-1] if faces else None


class FaceAlbedoSettings(bpy.types.PropertyGroup):
    """Per-scene options of the Face panel."""

    photo: bpy.props.StringProperty(name="Photo", subtype="FILE_PATH",
                                    description="A photo of one face (JPEG, PNG, WebP, TIFF, ...)")
    resolution: bpy.props.EnumProperty(
        name="Resolution", items=(("DEFAULT", "Default", "The add-on preference"),) + preferences.RESOLUTION_ITEMS,
        default="DEFAULT")
    face_index: bpy.props.IntProperty(name="Face", min=0, default=0,
                                      description="Which face when the photo shows several (0 = the largest)")
    relight: bpy.props.EnumProperty(name="Relight", items=relight.PRESET_ITEMS, default=relight.PHOTO,
                                    update=_relight_update)
    last_result: bpy.props.StringProperty(name="Last result", subtype="DIR_PATH")


class FaceAlbedoJobState(bpy.types.PropertyGroup):
    """The reconstruction in progress, as the panel shows it (not saved with the file)."""

    running: bpy.props.BoolProperty(default=False)
    stage: bpy.props.StringProperty(default="")
    message: bpy.props.StringProperty(default="")
    fraction: bpy.props.FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    error: bpy.props.StringProperty(default="")


CLASSES = (FaceAlbedoSettings, FaceAlbedoJobState)
