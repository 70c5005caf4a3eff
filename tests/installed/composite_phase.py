"""The journey's ``composite`` phase (every Blender): Composite with Cycles, set up and removed.

Run by ``journey.py composite`` inside the bare Blender venv, the add-on installed from the zip.
Cycles renders at 48² with 2 samples (CPU). A wall (emission shader: noise-free) runs through
the head at a steep angle, its left part in front of the head and its right part behind it:

* after ``gaussian_heads.composite_setup`` an F12 render shows the wall over the head's left and
  the head over the wall on the right (pixel checks against our layer rendered on its own);
* the Cycles layer alone equals a Cycles render without the avatar (no grey spheres);
* ``gaussian_heads.composite_remove`` restores the scenes, the compositor (``node_tree`` and
  ``use_nodes`` on 4.x, ``compositing_node_group`` on 5.x), passes, object visibility and the
  avatar's animation data (the hide_render driver is gone again).
"""

from __future__ import annotations

import pathlib

import bpy
import numpy as np

from journey import check, enable_installed, load_png, run_op
from scene_setup import cycles_scene_with_avatar, emission_quad

RES = 48
GAUSSIANS = 4000
WALL = (0.05, 0.2, 0.8)
FLAGS = ("visible_camera", "visible_diffuse", "visible_glossy", "visible_transmission",
         "visible_volume_scatter", "visible_shadow")


def _wall(scene):
    k = 4.0   # the plane y = 4 x: in front of the head on the left, behind it on the right
    return emission_quad(scene, "wall", WALL,
                         [(-0.3, -0.3 * k, -0.5), (0.3, 0.3 * k, -0.5), (0.3, 0.3 * k, 0.5), (-0.3, -0.3 * k, 0.5)])


def _snapshot(scene, objects) -> dict:
    if hasattr(scene, "compositing_node_group"):
        tree, extra = scene.compositing_node_group, {}
    else:
        # 4.x: the embedded tree cannot be deleted; with use_nodes off it is not in use
        tree, extra = (scene.node_tree if scene.use_nodes else None), {"use_nodes": scene.use_nodes}
    return {**extra,
            "scenes": sorted(s.name for s in bpy.data.scenes),
            "groups": sorted(g.name for g in bpy.data.node_groups),
            "nodes": None if tree is None else sorted([n.name, n.bl_idname] for n in tree.nodes),
            "links": None if tree is None else sorted([l.from_node.name, l.from_socket.identifier, l.to_node.name,
                                                       l.to_socket.identifier] for l in tree.links),
            "use_compositing": scene.render.use_compositing,
            "use_pass_z": [layer.use_pass_z for layer in scene.view_layers],
            "visibility": {o.name: [getattr(o, f) for f in FLAGS] + [o.hide_render] for o in objects},
            "drivers": {o.name: None if o.animation_data is None else len(o.animation_data.drivers)
                        for o in objects},
            "keys": sorted(k for k in scene.keys() if k.startswith("gaussian_heads"))}


def _render(scene, path: pathlib.Path) -> np.ndarray:
    """8-bit-valued straight RGBA [H, W, 4] of ``scene``, top row first."""
    scene.render.filepath = str(path)
    run_op(bpy.ops.render.render, write_still=True, scene=scene.name)
    return np.round(load_png(path)[::-1] * 255.0)


def run(args) -> dict:
    enable_installed()
    work = pathlib.Path(args.work)
    scene, avatar = cycles_scene_with_avatar(RES, samples=2, gaussians=GAUSSIANS)
    scene.render.dither_intensity = 0.0
    scene.render.engine = 'CYCLES'
    wall = _wall(scene)
    before = _snapshot(scene, [avatar, wall])

    run_op(bpy.ops.gaussian_heads.composite_setup)
    during = _snapshot(scene, [avatar, wall])
    composite = _render(scene, work / "composite.png")
    companion = next(s for s in bpy.data.scenes if s != scene)
    companion.render.image_settings.file_format = 'PNG'
    ours = _render(companion, work / "composite_ours.png")
    scene.render.use_compositing = False
    cycles = _render(scene, work / "composite_cycles.png")
    avatar.hide_render = True
    without = _render(scene, work / "composite_without.png")
    avatar.hide_render = False
    scene.render.use_compositing = True

    wall8 = np.round(255 * np.array([1.055 * c ** (1 / 2.4) - 0.055 for c in WALL]))
    head = ours[..., 3] > 0.95 * 255
    columns = np.where(head.any(axis=0))[0]
    centre = int(columns.mean()) if len(columns) else RES // 2
    left, right = head.copy(), head & (ours[..., 3] >= 254)
    left[:, centre - 3:] = False
    right[:, :centre + 4] = False
    check(left.sum() > 20 and right.sum() > 20, f"the head is not where expected: {left.sum()}, {right.sum()}")
    wall_over_head = np.abs(composite[left][:, :3] - wall8).max(axis=1) <= 3
    head_over_wall = np.abs(composite[right][:, :3] - ours[right][:, :3]).max(axis=1) <= 2

    run_op(bpy.ops.gaussian_heads.composite_remove)
    after = _snapshot(scene, [avatar, wall])
    return {"hidden_during": not any(during["visibility"][avatar.name][:-1]) and during["drivers"][avatar.name] == 1,
            "restored": after == before, "changed": during != before,
            "before": before, "after": after,
            "wall_covers_head_left": float(wall_over_head.mean()),
            "head_covers_wall_right": float(head_over_wall.mean()),
            "cycles_vs_without_avatar_max": float(np.abs(cycles - without).max())}
