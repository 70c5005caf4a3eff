"""Render docs/scene_native_cycles.png: an avatar as a native splat in a lit mesh scene (Cycles, 5.3).

    .venv/bin/python tools/build_extension.py --platform linux-x64   # once: fills wheels/
    .venvs/bpy-5.3/bin/python tools/render_native_scene.py [--size 512] [--samples 32] [--out PNG]
    .venvs/bpy-5.3/bin/python tools/render_native_scene.py --probe   # what the native path can do

Same set-up as ``tools/bench_native_pose.py`` (``tools/bpy_checkout.py``: bundled wheels from wheels/, this checkout as an
extension, isolated user folder). The scene: a floor, a back wall, a simple body (shoulders and
neck), an area light and a sun, and a 65,536-Gaussian avatar with a slight smile; nothing else
is set up for the avatar (Cycles renders it because it is a native GAUSSIAN_SPLAT object).

``--probe`` renders small images and prints one JSON object with what was measured: whether the
avatar casts a shadow (floor brightness under a sun behind it, avatar hidden vs shown from the
camera's rays only), shows in a mirror, blurs with depth of field, and blurs with motion (a
keyframed move between frames, motion blur on vs off).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bpy_checkout import REPO, enable_checkout  # noqa: E402


def material(name, colour, roughness=0.6, metallic=0.0, emission=None):
    import bpy

    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*colour, 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Metallic"].default_value = metallic
    if emission is not None:
        bsdf.inputs["Emission Color"].default_value = (*emission, 1.0)
        bsdf.inputs["Emission Strength"].default_value = 1.0
    return mat


def mesh_object(name, build, mat, location=(0.0, 0.0, 0.0), scale=(1.0, 1.0, 1.0)):
    """``build``: a bpy.ops.mesh primitive adder; the new object gets ``mat``."""
    import bpy

    build(location=location)
    obj = bpy.context.active_object
    obj.name = name
    obj.scale = scale
    obj.data.materials.append(mat)
    return obj


def build_scene(size: int, samples: int):
    import bpy
    import numpy as np

    scene = bpy.context.scene
    scene.render.engine = 'CYCLES'
    scene.cycles.device = 'CPU'
    scene.cycles.samples = samples
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = 'PNG'
    bpy.ops.gaussian_heads.sample_identity(source='BUILTIN', seed=3, n_gaussians=65_536)
    avatar = bpy.context.active_object
    props = avatar.gaussian_heads
    names = [channel.name for channel in props.expr]
    for name, value in (("mouthSmileLeft", 0.5), ("mouthSmileRight", 0.5)):
        if name in names:
            props.expr[names.index(name)].value = value
    props.head_rot = (0.0, 0.25, 0.0)   # turned a little towards the light
    scene.view_settings.view_transform = 'Standard'   # what Sample Identity sets; said again here
    scene.world = bpy.data.worlds.new("Sky")
    scene.world.use_nodes = True
    scene.world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.02, 0.025, 0.03, 1.0)

    floor_z = -0.42
    mesh_object("Floor", bpy.ops.mesh.primitive_plane_add, material("Floor", (0.35, 0.32, 0.3), 0.35),
                location=(0.0, 0.0, floor_z), scale=(2.0, 2.0, 1.0))
    mesh_object("Wall", bpy.ops.mesh.primitive_plane_add, material("Wall", (0.45, 0.5, 0.55), 0.8),
                location=(0.0, 0.6, 0.3), scale=(2.0, 1.0, 1.0)).rotation_euler = (np.pi / 2, 0.0, 0.0)
    cloth = material("Shirt", (0.08, 0.16, 0.35), 0.7)
    mesh_object("Neck", bpy.ops.mesh.primitive_cylinder_add, material("Skin", (0.1, 0.05, 0.03), 0.5),
                location=(0.0, 0.01, -0.17), scale=(0.045, 0.045, 0.08))
    mesh_object("Shoulders", bpy.ops.mesh.primitive_uv_sphere_add, cloth,
                location=(0.0, 0.02, -0.34), scale=(0.24, 0.12, 0.12))
    mesh_object("Collar", bpy.ops.mesh.primitive_torus_add, cloth,
                location=(0.0, 0.01, -0.235), scale=(0.06, 0.06, 0.12))
    for name in ("Neck", "Shoulders", "Collar"):
        for polygon in bpy.data.objects[name].data.polygons:
            polygon.use_smooth = True

    light = bpy.data.lights.new("Key", 'AREA')
    light.energy, light.size = 20.0, 0.6
    key = bpy.data.objects.new("Key", light)
    scene.collection.objects.link(key)
    key.location = (-0.8, -0.9, 0.8)
    key.rotation_euler = (np.radians(50), 0.0, np.radians(-40))
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", 'SUN'))
    sun.data.energy = 0.8
    scene.collection.objects.link(sun)
    sun.rotation_euler = (np.radians(40), np.radians(25), 0.0)

    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.data.lens = 50
    scene.collection.objects.link(camera)
    camera.location = (0.3, -1.05, 0.1)
    from mathutils import Vector

    camera.rotation_euler = (Vector((0.0, 0.0, -0.08)) - camera.location).to_track_quat('-Z', 'Y').to_euler()
    scene.camera = camera
    bpy.context.evaluated_depsgraph_get()
    return scene, avatar


def render(scene, path) -> "np.ndarray":
    import bpy
    import numpy as np

    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path), check_existing=False)
    w, h = image.size
    pixels = np.empty(w * h * 4, np.float32)
    image.pixels.foreach_get(pixels)
    bpy.data.images.remove(image)
    return pixels.reshape(h, w, 4)[::-1]


def probe(work: pathlib.Path) -> dict:
    """Small renders answering: shadows, reflections, depth of field, motion blur."""
    import bpy
    import numpy as np

    scene, avatar = build_scene(96, 16)
    out = {}
    # shadow: the avatar visible to shadow rays or not; the floor/wall in the camera's view
    base = render(scene, work / "probe_base.png")[..., :3]
    avatar.visible_shadow = False
    no_shadow = render(scene, work / "probe_no_shadow.png")[..., :3]
    avatar.visible_shadow = True
    out["shadow_mean_diff"] = float(np.abs(base - no_shadow).mean())
    out["shadow_pixels_changed"] = int((np.abs(base - no_shadow).max(axis=2) > 0.02).sum())
    # reflection: the back wall a mirror, avatar visible to glossy rays or not
    wall = bpy.data.objects["Wall"]
    wall.data.materials[0] = material("Mirror", (0.9, 0.9, 0.9), roughness=0.0, metallic=1.0)
    mirror = render(scene, work / "probe_mirror.png")[..., :3]
    avatar.visible_glossy = False
    no_reflection = render(scene, work / "probe_no_reflection.png")[..., :3]
    avatar.visible_glossy = True
    out["reflection_mean_diff"] = float(np.abs(mirror - no_reflection).mean())
    out["reflection_pixels_changed"] = int((np.abs(mirror - no_reflection).max(axis=2) > 0.02).sum())
    wall.data.materials[0] = bpy.data.materials["Wall"]
    # depth of field: focus far behind the head, wide aperture
    camera = scene.camera.data
    camera.dof.use_dof, camera.dof.focus_distance, camera.dof.aperture_fstop = True, 5.0, 0.5
    dof = render(scene, work / "probe_dof.png")[..., :3]
    camera.dof.use_dof = False
    out["dof_mean_diff"] = float(np.abs(dof - base).mean())
    # motion blur: the head moves 8 cm sideways between frames 1 and 2, jaw opens
    props = avatar.gaussian_heads
    props.translation, props.jaw = (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
    avatar.keyframe_insert("gaussian_heads.translation", frame=1)
    avatar.keyframe_insert("gaussian_heads.jaw", frame=1)
    props.translation, props.jaw = (0.08, 0.0, 0.0), (0.4, 0.0, 0.0)
    avatar.keyframe_insert("gaussian_heads.translation", frame=2)
    avatar.keyframe_insert("gaussian_heads.jaw", frame=2)
    scene.frame_set(2)
    sharp = render(scene, work / "probe_sharp.png")[..., :3]
    scene.render.use_motion_blur = True
    blurred = render(scene, work / "probe_motion_blur.png")[..., :3]
    scene.render.use_motion_blur = False
    out["deform_motion_blur_mean_diff"] = float(np.abs(blurred - sharp).mean())
    out["deform_motion_blur_pixels_changed"] = int((np.abs(blurred - sharp).max(axis=2) > 0.02).sum())
    avatar.animation_data_clear()
    props.translation, props.jaw = (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
    avatar.location = (0.0, 0.0, 0.0)
    avatar.keyframe_insert("location", frame=1)
    avatar.location = (0.08, 0.0, 0.0)
    avatar.keyframe_insert("location", frame=2)
    scene.frame_set(2)
    sharp = render(scene, work / "probe_object_sharp.png")[..., :3]
    scene.render.use_motion_blur = True
    blurred = render(scene, work / "probe_object_motion_blur.png")[..., :3]
    out["object_motion_blur_mean_diff"] = float(np.abs(blurred - sharp).mean())
    out["object_motion_blur_pixels_changed"] = int((np.abs(blurred - sharp).max(axis=2) > 0.02).sum())
    out["noise_floor_mean_diff"] = float(np.abs(render(scene, work / "probe_again.png")[..., :3] - blurred).mean())
    return out


def scene_cli(argv, doc: str, default_out: pathlib.Path, make_scene, run_probe) -> int:
    """The command line of both scene renderers: render ``make_scene(size, samples)`` -> (scene,
    avatar) to ``--out``, or with ``--probe`` print ``run_probe(tmp)``'s measurements as one JSON
    object; this checkout enabled first (``bpy_checkout``)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--out", type=pathlib.Path, default=default_out)
    parser.add_argument("--probe", action="store_true")
    args = parser.parse_args(argv)
    tmp = enable_checkout("gh_native_scene_", bundled_wheels=True)
    if args.probe:
        print(json.dumps(run_probe(tmp)), flush=True)
        return 0
    scene, _ = make_scene(args.size, args.samples)
    render(scene, args.out)
    print(json.dumps({"written": str(args.out)}), flush=True)
    return 0


def main(argv=None) -> int:
    return scene_cli(argv, __doc__, REPO / "docs" / "scene_native_cycles.png", build_scene, probe)


if __name__ == "__main__":
    sys.exit(main())
