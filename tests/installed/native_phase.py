"""The journey's ``native`` phase (Blender 5.3+): avatars as native, posed ``GAUSSIAN_SPLAT`` objects.

Run by ``journey.py native`` inside the bare Blender venv, the add-on installed from the zip.
Cycles renders at 64² with 4 samples (CPU), so the phase takes seconds:

* the avatar object is a ``GAUSSIAN_SPLAT`` point cloud whose native attributes equal our
  engine's pose (``native_splat.frame_attributes``) after a slider edit (no frame change) and
  after a frame change to a keyframed jaw;
* an animation render (frames 1 and 10) changes the mouth region, not the eyes;
* a plane through the head, its left half in front and its right half behind, occludes the head
  on the left and is occluded by it on the right (pixel checks against a head-only render);
* colours: the head-only Cycles render against our CPU engine's render of the same camera (PSNR);
* our engine renders a splat object made by Blender's own PLY importer with the avatar, in one
  depth order, and does not render the avatar's native copy a second time.
"""

from __future__ import annotations

import importlib
import pathlib

import bpy
import numpy as np

from journey import ADDON, check, enable_installed, load_png, run_op
from scene_setup import cycles_scene_with_avatar, emission_quad

RES = 64
GAUSSIANS = 20000


def _render(scene, path: pathlib.Path, engine: str = 'CYCLES') -> np.ndarray:
    scene.render.engine = engine
    scene.render.filepath = str(path)
    run_op(bpy.ops.render.render, write_still=True)
    return _premultiplied(load_png(path))


def _premultiplied(image: np.ndarray) -> np.ndarray:
    """A PNG's straight RGBA -> premultiplied, top row first."""
    image = image[::-1].copy()
    image[..., :3] *= image[..., 3:]
    return image


def _native(obj) -> dict:
    pointcloud, n = obj.data, len(obj.data.points)
    out = {}
    for name, width, key in (("position", 3, "vector"), ("scale", 3, "vector"), ("rotation", 4, "value"),
                             ("radiance:base", 4, "vector")):
        values = np.empty(n * width, np.float32)
        pointcloud.attributes[name].data.foreach_get(key, values)
        out[name] = values.reshape(n, width)
    return out


def _pose_error(obj) -> float:
    """Largest difference between the native attributes and our engine's pose of ``obj`` now."""
    render_engine = importlib.import_module(f"{ADDON}.render_engine")
    native_splat = importlib.import_module(f"{ADDON}.engine.avatar.native_splat")
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    identity = render_engine.avatar_identity(evaluated)
    want = native_splat.frame_attributes(identity.pose(render_engine.head_params(evaluated, identity)))
    have = _native(obj)
    rotation = 1.0 - np.abs(np.einsum("ij,ij->i", have["rotation"], want.rotation)).min()
    return max(float(np.abs(have["position"] - want.position).max()),
               float(np.abs(have["scale"] - want.scale).max()),
               float(np.abs(have["radiance:base"] - want.base).max()), float(rotation))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def run(args) -> dict:
    enable_installed()
    work = pathlib.Path(args.work)
    scene, avatar = cycles_scene_with_avatar(RES, samples=4, gaussians=GAUSSIANS)
    scene.render.film_transparent = True   # alpha tells the head from the background
    bpy.context.evaluated_depsgraph_get()
    out = {"type": avatar.data.type, "lock_interface": bool(scene.render.use_lock_interface),
           "attributes": sorted(a.name for a in avatar.data.attributes if not a.name.startswith("gh."))}
    check(avatar.data.type == 'GAUSSIAN_SPLAT', f"the avatar is a '{avatar.data.type}' point cloud")

    # (c) a slider edit (no frame change) re-poses the native attributes
    before = _native(avatar)["position"]
    avatar.gaussian_heads.jaw = (0.3, 0.0, 0.0)
    bpy.context.evaluated_depsgraph_get()
    out["slider_moved"] = float(np.abs(_native(avatar)["position"] - before).max())
    out["slider_pose_error"] = _pose_error(avatar)
    avatar.gaussian_heads.jaw = (0.0, 0.0, 0.0)

    # colours: the head alone in Cycles and in our engine (CPU), same camera, black background
    cycles = _render(scene, work / "native_head_cycles.png")
    ours = _render(scene, work / "native_head_ours.png", engine='GAUSSIAN_HEADS')
    out["psnr_cycles_vs_ours"] = _psnr(cycles[..., :3], ours[..., :3])
    out["psnr_alpha"] = _psnr(cycles[..., 3], ours[..., 3])
    head = cycles[..., 3] > 0.5
    out["head_pixels"] = int(head.sum())

    # (b) a keyframed jaw: native attributes follow the frame, the native render changes the mouth
    avatar.gaussian_heads.jaw = (0.0, 0.0, 0.0)
    avatar.keyframe_insert("gaussian_heads.jaw", frame=1)
    avatar.gaussian_heads.jaw = (0.45, 0.0, 0.0)
    avatar.keyframe_insert("gaussian_heads.jaw", frame=10)
    scene.frame_set(10)
    out["frame10_pose_error"] = _pose_error(avatar)
    scene.frame_set(1)
    out["frame1_pose_error"] = _pose_error(avatar)
    scene.render.engine = 'CYCLES'
    scene.frame_start, scene.frame_end, scene.frame_step = 1, 10, 9
    scene.render.filepath = str(work / "native_anim_")
    run_op(bpy.ops.render.render, animation=True)
    first, last = (_premultiplied(load_png(work / f"native_anim_{f:04d}.png"))[..., :3] for f in (1, 10))
    rows, cols = np.nonzero(head)
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    height, width = bottom - top, right - left
    mouth = np.s_[top + int(0.65 * height): bottom, left + width // 4: right - width // 4]
    eyes = np.s_[top + int(0.15 * height): top + int(0.45 * height), left: right]
    out["anim_mouth_diff"] = float(np.abs(first[mouth] - last[mouth]).mean())
    out["anim_eyes_diff"] = float(np.abs(first[eyes] - last[eyes]).mean())

    # (a) a plane through the head: x < 0 in front of it (towards the camera), x > 0 behind it
    plane = emission_quad(scene, "Slant", (1.0, 0.0, 0.0),
                   [(-0.25, -1.0, -0.3), (0.25, 1.0, -0.3), (0.25, 1.0, 0.3), (-0.25, -1.0, 0.3)])
    slanted = _render(scene, work / "native_plane.png")[..., :3]
    red = (slanted[..., 0] > 0.6) & (slanted[..., 1] < 0.25) & (slanted[..., 2] < 0.25)
    x = np.arange(RES)[None, :].repeat(RES, 0)
    left_head, right_head = head & (x < RES // 2 - 8), head & (x > RES // 2 + 8)
    out["plane_covers_head_left"] = float(red[left_head].mean())
    out["head_covers_plane_right"] = float(1.0 - red[right_head].mean())
    out["plane_visible_right"] = float(red[~head & (x > RES // 2 + 8)].mean())
    bpy.data.objects.remove(plane)

    # our engine: a splat wall from Blender's own PLY importer, behind then in front of the head
    GaussianSet = importlib.import_module(f"{ADDON}.engine.avatar.gaussian_set").GaussianSet
    splat_io = importlib.import_module(f"{ADDON}.engine.io")
    splat_data = importlib.import_module(f"{ADDON}.splat_data")
    gx, gz = np.meshgrid(np.linspace(-0.3, 0.3, 40), np.linspace(-0.3, 0.3, 40))
    means = np.stack([gx.ravel(), np.zeros(gx.size), gz.ravel()], 1)
    n = len(means)
    sh = np.zeros((n, 1, 3))
    sh[:, 0] = (np.array([0.1, 0.9, 0.1]) - 0.5) / 0.28209479177387814
    wall = GaussianSet(means, np.full((n, 3), np.log(0.012)), np.tile([1.0, 0, 0, 0], (n, 1)),
                       np.full(n, 6.0), sh)
    splat_io.write_splats(work / "wall.ply", wall)
    run_op(bpy.ops.wm.ply_import, filepath=str(work / "wall.ply"))
    imported = bpy.context.active_object
    check(imported is not None and getattr(imported.data, "type", "") == 'GAUSSIAN_SPLAT',
          "Blender's PLY importer made no native splat object")
    found = splat_data.splat_instances(bpy.context.evaluated_depsgraph_get())
    out["splat_instances"] = sorted(s.name for s in found)
    imported.location = (0.0, 0.4, 0.0)
    behind = _render(scene, work / "native_ours_wall_behind.png", engine='GAUSSIAN_HEADS')[..., :3]
    imported.location = (0.0, -0.3, 0.0)
    front = _render(scene, work / "native_ours_wall_front.png", engine='GAUSSIAN_HEADS')[..., :3]
    green = lambda image: (image[..., 1] > 0.6) & (image[..., 0] < 0.35)  # noqa: E731
    out["ours_wall_behind_green_on_head"] = float(green(behind)[head].mean())
    out["ours_wall_behind_green_off_head"] = float(green(behind)[~head].mean())
    out["ours_wall_front_green_on_head"] = float(green(front)[head].mean())
    return out
