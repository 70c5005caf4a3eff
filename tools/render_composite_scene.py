"""Render docs/scene_composite_cycles.png: an avatar in a lit mesh scene through the composite.

    .venv/bin/python tools/build_extension.py --platform linux-x64   # once: fills wheels/
    .venv/bin/python tools/render_composite_scene.py [--size 512] [--samples 32] [--out PNG]
    .venv/bin/python tools/render_composite_scene.py --probe   # what the composite path can do

Blender 5.0 (bpy 5.0.1 in .venv; any bpy 4.2–5.2 works the same), the scene of
``tools/render_native_scene.py`` (floor, back wall, neck, shoulders and collar in front of the
chin, an area light and a sun), then one call: ``gaussian_heads.composite_setup``. Cycles renders
the meshes, Gaussian Heads the avatar, the compositor Z-combines them.

``--probe`` renders small images (96², 16 samples) and prints one JSON object with what was
measured, each as the mean and largest absolute difference over the avatar's opaque pixels and
over the pixels it does not touch: the Cycles layer with the avatar vs without it (shadows,
reflections), depth of field on vs off, motion blur on vs off for a keyframed move of head and
body, and the same render twice (the noise floor).
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bpy_checkout import REPO  # noqa: E402
from render_native_scene import build_scene, render, scene_cli  # noqa: E402


def composite_scene(size: int, samples: int):
    import bpy

    scene, avatar = build_scene(size, samples)
    neck = bpy.data.objects["Neck"]
    neck.scale = (0.058, 0.058, neck.scale.z)   # wide enough to take in the avatar's own neck edge
    result = bpy.ops.gaussian_heads.composite_setup()
    if result != {'FINISHED'}:
        raise RuntimeError(f"composite_setup returned {result}")
    scene.gaussian_heads.backend = 'CPU'
    return scene, avatar


def probe(work: pathlib.Path) -> dict:
    import bpy
    import numpy as np

    scene, avatar = composite_scene(96, 16)
    companion = next(s for s in bpy.data.scenes if s != scene)
    companion.render.image_settings.file_format = 'PNG'
    companion.render.film_transparent = True
    companion.render.filepath = str(work / "ours.png")
    bpy.ops.render.render(write_still=True, scene=companion.name)
    ours = bpy.data.images.load(str(work / "ours.png"))
    alpha = np.empty(len(ours.pixels), np.float32)
    ours.pixels.foreach_get(alpha)
    alpha = alpha.reshape(96, 96, 4)[::-1, :, 3]
    head, rest = alpha > 0.99, alpha < 0.01

    def diff(a, b):
        d = np.abs(a - b).max(axis=-1)
        return {"avatar_mean": round(float(d[head].mean()), 4), "avatar_max": round(float(d[head].max()), 4),
                "rest_mean": round(float(d[rest].mean()), 4), "rest_max": round(float(d[rest].max()), 4)}

    out = {}
    base = render(scene, work / "base.png")[..., :3]
    scene.render.use_compositing = False
    with_avatar = render(scene, work / "cycles.png")[..., :3]
    avatar.hide_render = True
    without = render(scene, work / "cycles_without.png")[..., :3]
    avatar.hide_render = False
    scene.render.use_compositing = True
    out["cycles_layer_with_vs_without_avatar"] = diff(with_avatar, without)   # shadows, reflections
    camera = scene.camera.data
    camera.dof.use_dof, camera.dof.focus_distance, camera.dof.aperture_fstop = True, 5.0, 0.5
    out["depth_of_field"] = diff(render(scene, work / "dof.png")[..., :3], base)
    camera.dof.use_dof = False
    avatar.location = (0.0, 0.0, 0.0)
    avatar.keyframe_insert("location", frame=1)
    avatar.location = (0.08, 0.0, 0.0)
    avatar.keyframe_insert("location", frame=2)
    for name in ("Shoulders", "Collar", "Neck"):   # the body moves with the head
        body = bpy.data.objects[name]
        x = body.location.x
        body.keyframe_insert("location", frame=1)
        body.location.x = x + 0.08
        body.keyframe_insert("location", frame=2)
    scene.frame_set(2)
    sharp = render(scene, work / "sharp.png")[..., :3]
    scene.render.use_motion_blur = True
    out["motion_blur"] = diff(render(scene, work / "blur.png")[..., :3], sharp)
    scene.render.use_motion_blur = False
    out["noise_floor"] = diff(render(scene, work / "sharp_again.png")[..., :3], sharp)
    return out


def main(argv=None) -> int:
    return scene_cli(argv, __doc__, REPO / "docs" / "scene_composite_cycles.png", composite_scene, probe)


if __name__ == "__main__":
    sys.exit(main())
