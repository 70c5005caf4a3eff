"""Journey phase ``lam``: a LAM avatar zip imported, rendered and exported in the installed add-on.

Runs inside the Blender under test (journey.py imports it). The pytest side writes the fixture
(``--fixtures``: ``lam_avatar.zip``, tests/engine/lam_fixtures.py, made from our open head model).
Checks: pygltflib comes from the extension's bundled wheels; a corrupt zip gives one clear error
and no new object; File > Import > LAM Avatar makes an avatar, jawOpen changes the F12 render,
Export Gaussian PLY and Export LAM Avatar write files the installed engine reads back.
"""

from __future__ import annotations

import importlib
import pathlib

import bpy
import numpy as np

from journey import ADDON, check, enable_installed, new_scene, render_still, run_op


def run(args) -> dict:
    enable_installed()
    import pygltflib

    fixtures = pathlib.Path(args.fixtures)
    work = pathlib.Path(args.work)
    scene = new_scene()
    bad = work / "corrupt_lam.zip"
    bad.write_bytes(b"PK\x03\x04 not a zip")
    before = set(bpy.data.objects.keys())
    try:
        bpy.ops.gaussian_heads.import_lam(filepath=str(bad))
        raise AssertionError("imported a corrupt LAM zip")
    except RuntimeError as exc:
        check("corrupt_lam.zip" in str(exc), f"unclear error for a corrupt zip: {exc}")
    check(set(bpy.data.objects.keys()) == before, "a failed LAM import changed the scene")
    run_op(bpy.ops.gaussian_heads.import_lam, filepath=str(fixtures / "lam_avatar.zip"))
    obj = bpy.context.active_object
    props = obj.gaussian_heads
    check(props.is_avatar and props.source == 'LAM', "the import made no LAM avatar")
    neutral = render_still(scene, work / "lam_neutral.png", 1)
    for ch in props.expr:
        ch.value = 1.0 if ch.name == "jawOpen" else 0.0
    obj.update_tag()
    opened = render_still(scene, work / "lam_jaw.png", 1)
    run_op(bpy.ops.gaussian_heads.export_ply, filepath=str(work / "lam.ply"))
    run_op(bpy.ops.gaussian_heads.export_lam, filepath=str(work / "lam_again.zip"))
    ply = importlib.import_module(f"{ADDON}.engine.io.ply").read_ply(work / "lam.ply")
    again = importlib.import_module(f"{ADDON}.engine.io.lam").read_lam_zip(work / "lam_again.zip")
    return {"points": len(obj.data.points), "channels": len(props.expr), "pygltflib": pygltflib.__file__,
            "alpha_max": float(neutral[..., 3].max()), "jaw_diff": float(np.abs(opened - neutral).mean()),
            "ply_points": len(ply), "reexported_points": len(again.identity)}
