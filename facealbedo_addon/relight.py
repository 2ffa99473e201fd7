"""Relight presets for an imported face: the photo's own light, a studio three-point rig, a rim light.

Presets are area lights placed around the head relative to the imported camera, plus a dim uniform
World; both Cycles and EEVEE render them. The photo's own light is the World from environment.hdr.
Lights live in a child collection "<face> lights" and are replaced each time a preset is applied.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import bpy
from mathutils import Matrix, Vector

PHOTO, STUDIO, RIM = "PHOTO", "STUDIO", "RIM"
PRESET_ITEMS = (
    (PHOTO, "Photo's light", "The lighting estimated from the photo (environment.hdr as the World)"),
    (STUDIO, "Studio three-point", "Key, fill and back light around the head, dim grey surroundings"),
    (RIM, "Rim light", "Two strong lights behind the head outline it, a faint fill from the front"),
)


@dataclass(frozen=True)
class LightSpec:
    """One area light: direction from the head seen from the camera, strength, size, colour."""

    name: str
    azimuth_deg: float  # about the vertical, 0 = from the camera, positive = camera's left
    elevation_deg: float
    power_w: float
    size_m: float
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)


RIGS: dict[str, tuple[tuple[LightSpec, ...], float]] = {
    # preset: (lights, World grey level)
    STUDIO: ((LightSpec("key", 40, 30, 35.0, 0.6, (1.0, 0.96, 0.9)),
              LightSpec("fill", -55, 10, 10.0, 1.0, (0.9, 0.95, 1.0)),
              LightSpec("back", 165, 45, 30.0, 0.5)), 0.03),
    RIM: ((LightSpec("rim left", 125, 20, 120.0, 0.4, (0.85, 0.92, 1.0)),
           LightSpec("rim right", -125, 20, 120.0, 0.4, (1.0, 0.9, 0.8)),
           LightSpec("fill", 0, 0, 4.0, 1.0)), 0.005),
}
LIGHT_DETAIL_NODE = "FaceAlbedo photo light detail"
"""The skin material's multiply node of albedo and light detail (importer.skin_material): its factor is 1
under the photo's light, where the detail belongs, and 0 under any other, which casts its own shadows."""
LIGHT_DISTANCE_HEADS = 3.0
"""Lights stand this many head sizes from the head's centre."""


def photo_world(stem: str, environment: Path) -> bpy.types.World:
    """A World whose background is environment.hdr (linear, equirectangular, already Z-up oriented)."""
    world = bpy.data.worlds.new(f"{stem} photo light")
    if world.node_tree is None:  # Blender < 5 makes node trees on request
        world.use_nodes = True
    nodes, links = world.node_tree.nodes, world.node_tree.links
    background = next(n for n in nodes if n.type == "BACKGROUND")
    texture = nodes.new("ShaderNodeTexEnvironment")
    texture.image = bpy.data.images.load(str(environment), check_existing=False)
    texture.image.name = f"{stem} environment"
    texture.location = (background.location.x - 300, background.location.y)
    links.new(texture.outputs["Color"], background.inputs["Color"])
    background.inputs["Strength"].default_value = 1.0
    return world


def grey_world(level: float) -> bpy.types.World:
    """A uniform grey World (shared between faces), for the light rigs."""
    name = f"FaceAlbedo grey {level:g}"
    world = bpy.data.worlds.get(name) or bpy.data.worlds.new(name)
    if world.node_tree is None:  # Blender < 5 makes node trees on request
        world.use_nodes = True
    background = next(n for n in world.node_tree.nodes if n.type == "BACKGROUND")
    background.inputs["Color"].default_value = (level, level, level, 1.0)
    background.inputs["Strength"].default_value = 1.0
    return world


def _head_of(collection: bpy.types.Collection) -> bpy.types.Object | None:
    return next((o for o in collection.objects if o.type == "MESH"), None)


def _camera_of(collection: bpy.types.Collection) -> bpy.types.Object | None:
    return next((o for o in collection.objects if o.type == "CAMERA"), None)


def _lights_collection(collection: bpy.types.Collection) -> bpy.types.Collection:
    name = f"{collection.name} lights"
    lights = collection.children.get(name)
    if lights is None:
        lights = bpy.data.collections.new(name)
        collection.children.link(lights)
    return lights


def _clear(lights: bpy.types.Collection) -> None:
    for obj in list(lights.objects):
        data = obj.data
        bpy.data.objects.remove(obj, do_unlink=True)
        if data is not None and data.users == 0:
            bpy.data.lights.remove(data)


def _head_frame(head: bpy.types.Object, camera: bpy.types.Object | None) -> tuple[Vector, float, Vector]:
    """Head centre and size (bounding box, world space) and the horizontal direction towards the camera."""
    corners = [head.matrix_world @ Vector(c) for c in head.bound_box]
    centre = sum(corners, Vector()) / len(corners)
    size = max((corners[6] - corners[0]).length, 0.1)
    towards = (camera.matrix_world.translation - centre) if camera else Vector((0.0, -1.0, 0.0))
    towards.z = 0.0
    if towards.length < 1e-6:
        towards = Vector((0.0, -1.0, 0.0))
    return centre, size, towards.normalized()


def _place(spec: LightSpec, centre: Vector, size: float, towards: Vector) -> tuple[Vector, Matrix]:
    """Position of a light and the rotation that aims its -Z axis at the head centre."""
    direction = Matrix.Rotation(math.radians(spec.azimuth_deg), 3, "Z") @ towards
    side = direction.cross(Vector((0.0, 0.0, 1.0))).normalized()
    direction = Matrix.Rotation(math.radians(spec.elevation_deg), 3, side) @ direction
    location = centre + direction.normalized() * (LIGHT_DISTANCE_HEADS * size)
    rotation = (centre - location).to_track_quat("-Z", "Y").to_matrix()
    return location, rotation


def build_rig(collection: bpy.types.Collection, preset: str) -> list[bpy.types.Object]:
    """Replace the face's preset lights by those of `preset` (none for PHOTO)."""
    lights = _lights_collection(collection)
    _clear(lights)
    head = _head_of(collection)
    if preset == PHOTO or head is None:
        return []
    centre, size, towards = _head_frame(head, _camera_of(collection))
    created = []
    for spec in RIGS[preset][0]:
        data = bpy.data.lights.new(f"{collection.name} {spec.name}", type="AREA")
        data.energy = spec.power_w
        data.size = spec.size_m
        data.color = spec.colour
        light = bpy.data.objects.new(data.name, data)
        location, rotation = _place(spec, centre, size, towards)
        light.matrix_world = Matrix.Translation(location) @ rotation.to_4x4()
        lights.objects.link(light)
        created.append(light)
    return created


def apply_preset(scene: bpy.types.Scene, collection: bpy.types.Collection, preset: str) -> None:
    """Light the face of `collection` with a preset: lights and World, for Cycles and EEVEE alike."""
    if preset not in (PHOTO, STUDIO, RIM):
        raise ValueError(f"unknown relight preset {preset!r}; choose one of {PHOTO}, {STUDIO}, {RIM}")
    build_rig(collection, preset)
    if preset == PHOTO:
        world = bpy.data.worlds.get(collection.get("facealbedo_world", ""))
        if world is not None:
            scene.world = world
    else:
        scene.world = grey_world(RIGS[preset][1])
    set_light_detail(collection, 1.0 if preset == PHOTO else 0.0)
    collection["facealbedo_preset"] = preset


def light_detail_factors(collection: bpy.types.Collection) -> list[bpy.types.NodeSocket]:
    """The Factor inputs of the light-detail nodes of the face of `collection` (empty for older results)."""
    head = _head_of(collection)
    nodes = [material.node_tree.nodes.get(LIGHT_DETAIL_NODE) for material in
             ([] if head is None else head.data.materials) if material and material.node_tree]
    return [node.inputs["Factor"] for node in nodes if node is not None]


def set_light_detail(collection: bpy.types.Collection, factor: float) -> None:
    """Set how much of the photo's light detail the skin of the face of `collection` shows (0 to 1)."""
    for socket in light_detail_factors(collection):
        socket.default_value = factor


def face_collections(scene: bpy.types.Scene) -> list[bpy.types.Collection]:
    """The imported faces of a scene (collections made by the importer)."""
    return [c for c in scene.collection.children_recursive if "facealbedo_result" in c]
