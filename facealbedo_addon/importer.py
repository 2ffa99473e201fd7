"""A result folder -> Blender data: head with shape keys and materials, camera over the photo, World.

The mesh is built from arrays (`result.read_obj`) rather than by `bpy.ops.wm.obj_import` because
(1) the shape keys (blendshapes.npz, or head.glb's morph targets) address vertices by id, and
building the mesh ourselves keeps head.obj's vertex order by construction; (2) it needs no operator
context, so it runs the same in the UI, in background mode and from batch.py; (3) `foreach_set` on
whole arrays is fast (25k vertices, 57 keys).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from . import relight
from .result import (ALBEDO_PATTERN, HEAD_OBJ, LIGHT_DETAIL_PATTERN, Blendshapes, ObjMesh, ResultError,
                     ResultFolder, arkit_name, open_result, read_obj, read_shapes, to_blender_axes)

IMPORT_ERRORS = (ResultError, RuntimeError, OSError, ValueError, KeyError, IndexError, TypeError)
"""What a damaged result folder can raise during import; callers turn these into one report line."""
FITTED_EXPRESSION_KEY = "FittedExpression"


def describe_import_error(folder: Path | str, error: Exception) -> str:
    """One line for the user about a failed import (ResultError messages already say what to do)."""
    if isinstance(error, ResultError):
        return str(error)
    return f"cannot import {folder}: the result is damaged ({type(error).__name__}: {error}); reconstruct again"
"""Shape key holding head.obj's fitted pose over the neutral identity (value 1 on import)."""


@dataclass
class ImportedFace:
    """What the import created; `collection` holds all of it."""

    collection: bpy.types.Collection
    head: bpy.types.Object
    camera: bpy.types.Object
    world: bpy.types.World
    result: ResultFolder


# --------------------------------------------------------------------------- materials

# Keywords of head.obj's `usemtl` names -> material kind; the first match wins, unknown names are skin.
MATERIAL_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("lash", "eyelashes"), ("occlusion", "eye_shell"), ("lacrimal", "eye_shell"), ("blend", "eye_shell"),
    ("shell", "eye_shell"), ("iris", "iris"), ("sclera", "eye"), ("eye_socket", "socket"),
    ("eyeball", "eye"), ("eye", "eye"), ("teeth", "teeth"), ("tooth", "teeth"), ("gum", "gums"),
    ("tongue", "gums"), ("mouth", "socket"), ("socket", "socket"),
)
MATERIAL_KINDS = ("skin", "eye", "iris", "eye_shell", "teeth", "gums", "socket", "eyelashes")


def material_kind(group_name: str) -> str:
    """The material kind for an OBJ material group name ('' and unknown names are skin)."""
    lowered = group_name.lower()
    return next((kind for keyword, kind in MATERIAL_KEYWORDS if keyword in lowered), "skin")


def _principled(material: bpy.types.Material) -> bpy.types.Node:
    if material.node_tree is None:  # Blender < 5 makes node trees on request
        material.use_nodes = True
    return next(n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")


def load_udim_image(result: ResultFolder, pattern: str, what: str, colorspace: str) -> bpy.types.Image | None:
    """The tiles of a UDIM file pattern (e.g. ALBEDO_PATTERN) as one tiled image; None if there are none."""
    tiles = result.tiles(pattern)
    if not tiles:
        return None
    image = bpy.data.images.load(str(tiles[0]), check_existing=False)
    image.name = f"{result.stem} {what}"
    image.source = "TILED"
    image.filepath = str(result.folder / pattern.format(tile="<UDIM>"))
    for path in tiles[1:]:
        number = int(path.name.split(".")[1])
        if image.tiles.get(number) is None:
            image.tiles.new(tile_number=number)
    image.colorspace_settings.name = colorspace
    image.reload()
    return image


def load_udim_albedo(result: ResultFolder) -> bpy.types.Image:
    """The albedo tiles as one UDIM tiled image, sRGB (tile 1001 face, 1002 head and neck)."""
    return load_udim_image(result, ALBEDO_PATTERN, "albedo", "sRGB")


def load_light_detail(result: ResultFolder) -> bpy.types.Image | None:
    """The light-detail tiles (linear factors, not colours), or None for results made without them."""
    return load_udim_image(result, LIGHT_DETAIL_PATTERN, "light detail", "Non-Color")


def skin_material(name: str, albedo: bpy.types.Image, light_detail: bpy.types.Image | None = None
                  ) -> bpy.types.Material:
    """Principled BSDF skin: UDIM albedo as Base Color, roughness 0.5, F0 ~2.8 %, light subsurface.

    With `light_detail`, the Base Color is the albedo times the photo's light detail (the shadows and
    occlusion the refinement took out of the albedo) through a multiply node named relight.LIGHT_DETAIL_NODE,
    whose factor the relight presets set: 1 under the photo's light, 0 under any other.
    """
    material = bpy.data.materials.new(name)
    bsdf = _principled(material)
    nodes, links = material.node_tree.nodes, material.node_tree.links
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = albedo
    texture.location = (bsdf.location.x - 600, bsdf.location.y)
    colour = texture.outputs["Color"]
    if light_detail is not None:
        detail = nodes.new("ShaderNodeTexImage")
        detail.image = light_detail
        detail.location = (bsdf.location.x - 600, bsdf.location.y - 300)
        multiply = nodes.new("ShaderNodeMix")
        multiply.name = multiply.label = relight.LIGHT_DETAIL_NODE
        multiply.data_type, multiply.blend_type, multiply.clamp_result = "RGBA", "MULTIPLY", False
        multiply.location = (bsdf.location.x - 250, bsdf.location.y)
        multiply.inputs["Factor"].default_value = 1.0
        links.new(colour, multiply.inputs["A"])
        links.new(detail.outputs["Color"], multiply.inputs["B"])
        colour = multiply.outputs["Result"]
    links.new(colour, bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.5
    bsdf.inputs["IOR"].default_value = 1.4
    bsdf.inputs["Specular IOR Level"].default_value = 0.5
    bsdf.inputs["Subsurface Weight"].default_value = 0.15
    bsdf.inputs["Subsurface Radius"].default_value = (1.0, 0.35, 0.2)  # red scatters furthest in skin
    bsdf.inputs["Subsurface Scale"].default_value = 0.004  # metres: a few millimetres
    return material


SIMPLE_MATERIALS: dict[str, dict[str, object]] = {
    "eye": {"Base Color": (0.60, 0.57, 0.53, 1.0), "Roughness": 0.05, "Coat Weight": 1.0},
    "iris": {"Base Color": (0.12, 0.07, 0.04, 1.0), "Roughness": 0.1, "Coat Weight": 1.0},
    "teeth": {"Base Color": (0.80, 0.76, 0.66, 1.0), "Roughness": 0.25},
    "gums": {"Base Color": (0.55, 0.16, 0.15, 1.0), "Roughness": 0.35, "Subsurface Weight": 0.3},
    "socket": {"Base Color": (0.10, 0.03, 0.03, 1.0), "Roughness": 0.6},
    "eyelashes": {"Base Color": (0.02, 0.015, 0.01, 1.0), "Roughness": 0.6},
    "eye_shell": {"Alpha": 0.0},  # wet film and occlusion shells in front of the eyes: invisible
}


def simple_material(name: str, kind: str) -> bpy.types.Material:
    """One of the plain materials of SIMPLE_MATERIALS (eye, teeth, gums, ...)."""
    material = bpy.data.materials.new(name)
    bsdf = _principled(material)
    for socket, value in SIMPLE_MATERIALS[kind].items():
        bsdf.inputs[socket].default_value = value
    if kind == "eye":
        add_iris(material, bsdf)
    return material


EYE_FORWARD = (0.0, -1.0, 0.0)
"""The eyes' rest gaze in Blender's frame (head.obj's +Z, the way the face looks)."""
IRIS_COS, PUPIL_COS = 0.87, 0.985
"""Cosines of the iris (~30 degrees, 6 mm on a 12 mm eyeball) and pupil (~10 degrees) angular radii."""
IRIS_COLOUR, PUPIL_COLOUR = (0.09, 0.05, 0.025, 1.0), (0.01, 0.01, 0.01, 1.0)


def add_iris(material: bpy.types.Material, bsdf: bpy.types.Node) -> None:
    """Paint iris and pupil on the eyeball material: caps around each eyeball's gaze direction.

    The eyeballs (sclera and iris, one material in head.obj) are spheres, so the object-space normal
    tells how far a point lies from the front of its eye; the caps follow eyeLook shape keys.
    """
    nodes, links = material.node_tree.nodes, material.node_tree.links
    coords = nodes.new("ShaderNodeTexCoord")
    facing = nodes.new("ShaderNodeVectorMath")
    facing.operation = "DOT_PRODUCT"
    facing.inputs[1].default_value = EYE_FORWARD
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.interpolation = "CONSTANT"
    sclera, iris = ramp.color_ramp.elements
    sclera.position, sclera.color = 0.0, bsdf.inputs["Base Color"].default_value
    iris.position, iris.color = IRIS_COS, IRIS_COLOUR
    pupil = ramp.color_ramp.elements.new(PUPIL_COS)
    pupil.color = PUPIL_COLOUR
    links.new(coords.outputs["Normal"], facing.inputs[0])
    links.new(facing.outputs["Value"], ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    for offset, node in enumerate((ramp, facing, coords), start=1):
        node.location = (bsdf.location.x - 300 * offset, bsdf.location.y)


def assign_materials(mesh: bpy.types.Mesh, obj_mesh: ObjMesh, stem: str, albedo: bpy.types.Image,
                     light_detail: bpy.types.Image | None = None) -> None:
    """One material slot per kind that head.obj's groups use, polygons indexed accordingly."""
    kinds = [material_kind(name) for name in obj_mesh.groups]
    used = [kind for kind in MATERIAL_KINDS if kind in kinds]
    for kind in used:
        name = f"{stem} {kind}"
        mesh.materials.append(skin_material(name, albedo, light_detail) if kind == "skin"
                              else simple_material(name, kind))
    slot_of_group = np.array([used.index(kind) for kind in kinds], dtype=np.int32)
    mesh.polygons.foreach_set("material_index", slot_of_group[obj_mesh.polygon_group])


# --------------------------------------------------------------------------- mesh and shape keys


def build_mesh(name: str, obj_mesh: ObjMesh, vertices_blender: np.ndarray) -> bpy.types.Mesh:
    """A Blender mesh from flat arrays (Z-up vertex positions), with UDIM UVs and smooth shading."""
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices_blender))
    mesh.vertices.foreach_set("co", vertices_blender.astype(np.float32).ravel())
    mesh.loops.add(len(obj_mesh.loop_vertex))
    mesh.loops.foreach_set("vertex_index", obj_mesh.loop_vertex)
    mesh.polygons.add(len(obj_mesh.loop_count))
    mesh.polygons.foreach_set("loop_start", obj_mesh.loop_start)
    if len(obj_mesh.uvs) and obj_mesh.loop_uv.min() >= 0:
        uv_layer = mesh.uv_layers.new(name="UVMap")
        uv_layer.data.foreach_set("uv", obj_mesh.uvs[obj_mesh.loop_uv].ravel())
    mesh.update(calc_edges=True)
    mesh.validate(clean_customdata=False)
    mesh.polygons.foreach_set("use_smooth", np.ones(len(mesh.polygons), dtype=bool))
    return mesh


def add_shape_keys(head: bpy.types.Object, fitted_blender: np.ndarray, shapes: Blendshapes) -> None:
    """Basis = neutral identity; FittedExpression (value 1) = head.obj's pose; one key per ICT shape.

    The ICT shapes are named in ARKit spelling (eyeBlinkLeft, jawOpen, ...) and start at 0, so that
    face-capture data drives them once FittedExpression is turned down.
    """
    basis = head.shape_key_add(name="Basis", from_mix=False)
    basis.data.foreach_set("co", to_blender_axes(shapes.neutral).ravel())
    fitted = head.shape_key_add(name=FITTED_EXPRESSION_KEY, from_mix=False)
    fitted.data.foreach_set("co", fitted_blender.ravel())
    fitted.value = 1.0
    neutral_blender = to_blender_axes(shapes.neutral)
    for name, delta in zip(shapes.names, shapes.deltas):
        key = head.shape_key_add(name=arkit_name(name), from_mix=False)
        key.data.foreach_set("co", (neutral_blender + to_blender_axes(delta)).ravel())
        key.slider_min, key.slider_max = -1.0, 1.0
        key.value = 0.0  # new keys start at 1.0 in Blender 5
    head.data.shape_keys.name = f"{head.name} expressions"


def import_head(result: ResultFolder, collection: bpy.types.Collection) -> bpy.types.Object:
    """The head object: mesh, UVs, smooth shading, materials, and shape keys when the result has them."""
    obj_mesh = read_obj(result.folder / HEAD_OBJ)
    fitted_blender = to_blender_axes(obj_mesh.vertices)
    shapes = read_shapes(result.folder, obj_mesh)
    rest = to_blender_axes(shapes.neutral) if shapes is not None else fitted_blender
    mesh = build_mesh(f"{result.stem} head", obj_mesh, rest)
    head = bpy.data.objects.new(f"{result.stem} head", mesh)
    collection.objects.link(head)
    assign_materials(mesh, obj_mesh, result.stem, load_udim_albedo(result), load_light_detail(result))
    if shapes is not None:
        add_shape_keys(head, fitted_blender, shapes)
    return head


# --------------------------------------------------------------------------- camera and world


def import_camera(result: ResultFolder, collection: bpy.types.Collection, scene: bpy.types.Scene) -> bpy.types.Object:
    """The camera of camera.json's blender block, made the scene camera, with the photo as background."""
    block = result.camera["blender"]
    data = bpy.data.cameras.new(f"{result.stem} camera")
    data.lens = float(block["lens_mm"])
    data.sensor_width = float(block["sensor_width_mm"])
    data.sensor_fit = str(block.get("sensor_fit", "HORIZONTAL"))
    data.shift_x = float(block.get("shift_x", 0.0))
    data.shift_y = float(block.get("shift_y", 0.0))
    data.clip_start, data.clip_end = 0.01, 100.0
    camera = bpy.data.objects.new(f"{result.stem} camera", data)
    camera.location = block["location"]
    camera.rotation_mode = "XYZ"
    camera.rotation_euler = block["rotation_euler_xyz"]
    collection.objects.link(camera)
    scene.camera = camera
    width, height = block.get("resolution") or result.camera["image_size"]
    scene.render.resolution_x, scene.render.resolution_y = int(width), int(height)
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x, scene.render.pixel_aspect_y = block.get("pixel_aspect", (1.0, 1.0))
    # The albedo and the World are linear and calibrated to the photo: show them without a tone curve.
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    photo = result.photo
    if photo is not None:
        data.show_background_images = True
        background = data.background_images.new()
        background.image = bpy.data.images.load(str(photo), check_existing=True)
        background.display_depth = "BACK"
        background.frame_method = "FIT"
    return camera


def remove_collection(collection: bpy.types.Collection) -> None:
    """Delete a collection with its objects and child collections."""
    for obj in list(collection.all_objects):
        bpy.data.objects.remove(obj, do_unlink=True)
    for child in list(collection.children_recursive):
        bpy.data.collections.remove(child)
    bpy.data.collections.remove(collection)


def import_result(folder: Path | str, context: bpy.types.Context | None = None,
                  photo_name: str | None = None) -> ImportedFace:
    """Import a result folder into the current scene, in one new collection named after the photo.

    Raises ResultError (with a message for the user) when the folder is not a complete result.
    """
    context = context or bpy.context
    scene = context.scene
    result = open_result(folder)
    collection = bpy.data.collections.new(photo_name or result.stem)
    scene.collection.children.link(collection)
    try:
        head = import_head(result, collection)
        camera = import_camera(result, collection, scene)
        world = relight.photo_world(result.stem, result.environment)
    except IMPORT_ERRORS:
        remove_collection(collection)  # a failed import leaves nothing in the scene
        raise
    collection["facealbedo_result"] = str(result.folder)
    collection["facealbedo_world"] = world.name
    relight.apply_preset(scene, collection, relight.PHOTO)
    return ImportedFace(collection=collection, head=head, camera=camera, world=world, result=result)


__all__ = ["FITTED_EXPRESSION_KEY", "IMPORT_ERRORS", "ImportedFace", "ResultError", "describe_import_error",
           "import_result", "material_kind"]
