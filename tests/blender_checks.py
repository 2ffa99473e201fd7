"""Checks of a result folder inside Blender (bpy), run as `python tests/blender_checks.py -- RESULT OUT.json`.

Run in a subprocess by tests/test_export.py, with Blender's user folders set to a temporary folder, so that
bpy's global state never meets pytest's process. It writes what Blender saw to OUT.json:
- "camera": pixels of the landmark vertices of the imported head.obj through the Blender camera that
  camera.json's "blender" block describes (bpy_extras.world_to_camera_view);
- "glb": what the glTF importer made of head.glb (vertices, materials, shape keys, their default values);
- "sphere": a Cycles render of a white Lambertian unit sphere lit only by environment.hdr as the World,
  from the front (-Y) and the back (+Y): per pixel the rendered radiance and the sphere normal (Blender frame).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import bpy
import numpy as np
from bpy_extras.object_utils import world_to_camera_view

SPHERE_PIXELS = 48
SPHERE_SAMPLES = 256
ORTHO_SCALE = 2.2


def imported_objects(before: set) -> list:
    return [o for o in bpy.data.objects if o.name not in before and o.type == "MESH"]


def check_camera(result: Path, vertex_ids: list[int]) -> dict:
    camera_doc = json.loads((result / "camera.json").read_text())["blender"]
    before = {o.name for o in bpy.data.objects}
    bpy.ops.wm.obj_import(filepath=str(result / "head.obj"))
    head = imported_objects(before)[0]
    scene = bpy.context.scene
    data = bpy.data.cameras.new("photo_camera")
    data.lens, data.sensor_width = camera_doc["lens_mm"], camera_doc["sensor_width_mm"]
    data.sensor_fit = camera_doc["sensor_fit"]
    data.shift_x, data.shift_y = camera_doc["shift_x"], camera_doc["shift_y"]
    camera = bpy.data.objects.new("photo_camera", data)
    scene.collection.objects.link(camera)
    camera.location = camera_doc["location"]
    camera.rotation_mode = "XYZ"
    camera.rotation_euler = camera_doc["rotation_euler_xyz"]
    width, height = camera_doc["resolution"]
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x, scene.render.pixel_aspect_y = camera_doc["pixel_aspect"]
    bpy.context.view_layer.update()
    pixels = []
    for index in vertex_ids:
        ndc = world_to_camera_view(scene, camera, head.matrix_world @ head.data.vertices[index].co)
        pixels.append([ndc.x * width - 0.5, (1.0 - ndc.y) * height - 0.5])
    matrix = np.array(head.matrix_world)
    coords = np.array([v.co[:] for v in head.data.vertices]) @ matrix[:3, :3].T + matrix[:3, 3]
    return {"pixels": pixels, "obj_vertices_blender": coords.tolist(),
            "materials": [m.name for m in head.data.materials]}


def check_glb(result: Path) -> dict:
    before = {o.name for o in bpy.data.objects}
    bpy.ops.import_scene.gltf(filepath=str(result / "head.glb"))
    heads = imported_objects(before)
    keys = heads[0].data.shape_keys
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = heads[0].evaluated_get(depsgraph)
    matrix = np.array(evaluated.matrix_world)
    coords = np.array([v.co[:] for v in evaluated.to_mesh().vertices])
    posed = coords @ matrix[:3, :3].T + matrix[:3, 3]  # shape keys at their default values applied
    return {"objects": len(heads), "vertices": len(heads[0].data.vertices), "posed_vertices": posed.tolist(),
            "materials": [m.name for m in heads[0].data.materials],
            "shape_keys": [k.name for k in keys.key_blocks[1:]],
            "shape_key_values": [k.value for k in keys.key_blocks[1:]]}


def render_sphere(result: Path, scratch: Path) -> dict:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = SPHERE_SAMPLES
    scene.cycles.use_denoising = False
    scene.cycles.seed = 1
    scene.view_settings.view_transform = "Standard"
    scene.render.resolution_x = scene.render.resolution_y = SPHERE_PIXELS
    scene.render.image_settings.file_format = "OPEN_EXR"
    scene.render.image_settings.color_depth = "32"
    world = bpy.data.worlds.new("environment")
    world.use_nodes = True
    nodes = world.node_tree.nodes
    texture = nodes.new("ShaderNodeTexEnvironment")
    texture.image = bpy.data.images.load(str(result / "environment.hdr"))
    world.node_tree.links.new(texture.outputs["Color"], nodes["Background"].inputs["Color"])
    scene.world = world
    bpy.ops.mesh.primitive_uv_sphere_add(segments=96, ring_count=48, radius=1.0)
    sphere = bpy.context.active_object
    bpy.ops.object.shade_smooth()
    material = bpy.data.materials.new("lambert")
    material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    diffuse = tree.nodes.new("ShaderNodeBsdfDiffuse")
    diffuse.inputs["Color"].default_value = (1, 1, 1, 1)
    tree.links.new(diffuse.outputs["BSDF"], tree.nodes.new("ShaderNodeOutputMaterial").inputs["Surface"])
    sphere.data.materials.append(material)
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    camera.data.type, camera.data.ortho_scale = "ORTHO", ORTHO_SCALE
    scene.collection.objects.link(camera)
    scene.camera = camera
    views = {}
    for side, sign in (("front", -1.0), ("back", 1.0)):
        camera.location = (0.0, 5.0 * sign, 0.0)
        camera.rotation_euler = (math.pi / 2, 0.0, 0.0 if sign < 0 else math.pi)
        path = scratch / f"sphere_{side}.exr"
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
        image = bpy.data.images.load(str(path))
        pixels = np.array(image.pixels[:], np.float32).reshape(SPHERE_PIXELS, SPHERE_PIXELS, 4)[::-1, :, :3]
        coords = (np.arange(SPHERE_PIXELS) + 0.5) / SPHERE_PIXELS * ORTHO_SCALE - ORTHO_SCALE / 2
        right, up = np.meshgrid(coords, -coords)  # image row 0 is the top
        inside = right ** 2 + up ** 2 < 0.9 ** 2
        depth = np.sqrt(np.clip(1 - right ** 2 - up ** 2, 0, None))
        # camera right = +X seen from -Y (front), -X seen from +Y (back); the normal faces the camera
        normals = np.stack([-sign * right, sign * depth, up], -1)
        views[side] = {"radiance": pixels[inside].tolist(), "normals_blender": normals[inside].tolist()}
    return views


def main(argv: list[str]) -> None:
    result, out = Path(argv[0]), Path(argv[1])
    vertex_ids = json.loads(argv[2]) if len(argv) > 2 else []
    report = {"camera": check_camera(result, vertex_ids), "glb": check_glb(result),
              "sphere": render_sphere(result, out.parent)}
    out.write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--") + 1:])
