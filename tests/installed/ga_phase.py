"""Journey phase ``gaussian_avatars``: a GaussianAvatars folder imported in the installed add-on.

Runs inside the Blender under test (journey.py imports it). The pytest side writes the fixtures
(``--fixtures``: ``flame2023.npz``, a synthetic FLAME-layout model, and ``avatar/`` with
``point_cloud.ply`` + ``flame_param.npz``; tests/engine/ga_fixtures.py). Checks: without a FLAME
model one clear error and no new object; with it, File > Import > GaussianAvatars Avatar makes an
avatar keyed with its flame_param.npz, and the jaw slider changes the F12 render.
"""

from __future__ import annotations

import pathlib

import bpy
import numpy as np

from journey import ADDON, check, enable_installed, new_scene, render_still, run_op


def run(args) -> dict:
    enable_installed()
    fixtures = pathlib.Path(args.fixtures)
    work = pathlib.Path(args.work)
    scene = new_scene()
    scene.render.fps = 25
    ply = str(fixtures / "avatar" / "point_cloud.ply")
    before = set(bpy.data.objects.keys())
    try:
        bpy.ops.gaussian_heads.import_gaussian_avatars(filepath=ply)
        raise AssertionError("imported a GaussianAvatars avatar without a FLAME model")
    except RuntimeError as exc:
        check("FLAME" in str(exc) and "point_cloud.ply" in str(exc), f"unclear error without FLAME: {exc}")
    check(set(bpy.data.objects.keys()) == before, "a failed import changed the scene")
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.flame_model = str(fixtures / "flame2023.npz")
    run_op(bpy.ops.gaussian_heads.import_gaussian_avatars, filepath=ply)
    obj = bpy.context.active_object
    props = obj.gaussian_heads
    check(props.is_avatar and obj.type == 'POINTCLOUD', "the import made no avatar")
    check(obj.animation_data is not None and obj.animation_data.action is not None, "flame_param.npz not keyed")
    scene.frame_set(3)
    keyed_translation = list(props.translation)
    obj.animation_data_clear()
    run_op(bpy.ops.gaussian_heads.reset_expression, include_pose=True)
    neutral = render_still(scene, work / "ga_neutral.png", 1)
    props.jaw = (0.35, 0.0, 0.0)
    opened = render_still(scene, work / "ga_jaw.png", 1)
    return {"points": len(obj.data.points), "channels": len(props.expr), "keyed_translation": keyed_translation,
            "alpha_max": float(neutral[..., 3].max()), "jaw_diff": float(np.abs(opened - neutral).mean())}
