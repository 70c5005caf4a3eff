"""Benchmark: one avatar end to end through the Blender render engine (bpy module).

    .venv/bin/python tools/bench_blender_render.py [--gaussians 65536] [--repeats 10] [--compare HEAD]

Enables the add-on from this checkout (isolated Blender user folder, nothing under ``~``),
samples a built-in avatar, and times, median of ``--repeats``:

* ``f12``: ``bpy.ops.render.render()`` at 512 x 512 (gather, pose, rasterize, colour conversion,
  Combined and Depth passes), CPU backend; the engine's own figure for rasterize + colour
  (``render_engine.last_stats``) beside it.
* ``viewport_orbit``: a 1280 x 720 viewport redraw after the view moved (the posed Gaussians
  are reused, as ``view_draw`` does): ``ViewportRenderer.frame_pixels`` at the interactive scale
  (``--scale``, the add-on's default 0.5) and refined (full resolution).
* ``viewport_pose``: a redraw after a slider moved: ``view_update``'s gathering and posing
  (``avatar_instances`` + ``merge_avatars``) plus the redraw at the interactive scale.

Each figure is wall ms and process CPU ms (all threads); the load average is printed beside.
``--compare REV`` runs every measurement a second time per repeat with the CPU rasterizer of git
revision REV (``engine/raster/bench.py``'s ``load_cpu_at``) and the numpy colour conversion
(``scene_render.display_to_scene_linear_reference``, what REV used before the fused kernel),
interleaved. One JSON line per rasterizer.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bpy_checkout import ADDON_MODULE as ADDON, enable_checkout  # noqa: E402


def _scene(size: int):
    """An avatar (built-in identity) and a 50 mm camera 0.6 m in front of it, CPU backend."""
    import bpy
    import mathutils
    from importlib import import_module

    scene = bpy.context.scene
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    cam.data.lens = 50.0
    scene.collection.objects.link(cam)
    cam.location = (0.0, -0.6, 0.0)
    cam.rotation_euler = mathutils.Euler((math.pi / 2, 0.0, 0.0), 'XYZ')
    scene.camera = cam
    scene.render.engine = 'GAUSSIAN_HEADS'
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = 'Standard'
    scene.gaussian_heads.backend = 'CPU'
    bpy.context.view_layer.use_pass_z = True
    return cam


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaussians", type=int, default=65536)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--scale", type=float, default=0.5, help="interactive viewport scale (default 0.5)")
    parser.add_argument("--compare", metavar="REV", help="also time the CPU rasterizer of git revision REV")
    args = parser.parse_args(argv)

    enable_checkout("gh_bench_render_")
    import bpy  # noqa: F401
    from importlib import import_module

    mod = lambda name: import_module(f"{ADDON}.{name}")  # noqa: E731
    warm = mod("engine.warmup").current()
    if warm is not None:
        warm.wait(timeout=900)
    builtin, storage, sample = mod("engine.avatar.builtin"), mod("operators.storage"), mod("operators.sample")
    engine_mod, scene_render, raster = mod("render_engine"), mod("engine.scene_render"), mod("engine.raster")
    identity = builtin.BuiltinSource(config=builtin.BuiltinSamplerConfig(n_gaussians=args.gaussians)).sample(3)
    avatar = storage.create_avatar_object("GaussianHead.bench", identity, bpy.context.scene.collection)
    sample.fill_avatar_properties(avatar, identity, sample.SampleSettings(seed=3))
    cam = _scene(512)
    scene = bpy.context.scene

    # name -> (the raster package's module for "cpu", the colour conversion)
    rasterizers = {"cpu": (raster._MODULES["cpu"], scene_render.display_to_scene_linear)}
    if args.compare:
        old = mod("engine.raster.bench").load_cpu_at(args.compare)
        rasterizers[f"cpu@{args.compare}"] = (old.__name__.rsplit(".", 1)[1],
                                              scene_render.display_to_scene_linear_reference)

    depsgraph = bpy.context.evaluated_depsgraph_get()
    cam_eval = cam.evaluated_get(depsgraph)
    window = cam_eval.calc_matrix_camera(depsgraph, x=1280, y=720)
    settings = engine_mod.render_settings(scene)
    background = engine_mod.world_background(scene)
    viewport = scene_render.ViewportRenderer()
    viewport.set_gaussians(scene_render.merge_avatars(engine_mod.avatar_instances(depsgraph)))

    def view(step: int):
        """The camera's view orbited by a small angle per step (every redraw sees a new view)."""
        import mathutils

        turn = mathutils.Matrix.Rotation(0.01 * (step % 50), 4, 'Z')
        return (turn @ cam_eval.matrix_world).inverted()

    def pose_and_redraw(step: int):
        avatar.gaussian_heads.expr[step % len(avatar.gaussian_heads.expr)].value = 0.1 * (step % 7)
        graph = bpy.context.evaluated_depsgraph_get()
        viewport.set_gaussians(scene_render.merge_avatars(engine_mod.avatar_instances(graph)))
        viewport.frame_pixels(1280, 720, view(step), window, scale=args.scale, settings=settings,
                              background=background)

    cases = {
        "f12_512": lambda step: bpy.ops.render.render(),
        "viewport_orbit_1280x720_scaled": lambda step: viewport.frame_pixels(
            1280, 720, view(step), window, scale=args.scale, settings=settings, background=background),
        "viewport_orbit_1280x720_full": lambda step: viewport.frame_pixels(
            1280, 720, view(step), window, refine=True, settings=settings, background=background),
        "viewport_pose_1280x720_scaled": pose_and_redraw,
    }
    times = {name: {case: [] for case in cases} for name in rasterizers}
    stats_ms = {name: [] for name in rasterizers}
    for step in range(args.repeats + 1):              # the first round warms up
        for name, (module, colour) in (rasterizers.items() if step % 2 == 0 else reversed(rasterizers.items())):
            raster._MODULES["cpu"], scene_render.display_to_scene_linear = module, colour
            for case, fn in cases.items():
                wall, cpu = _timed(lambda: fn(step))
                if step:
                    times[name][case].append((wall, cpu))
                    if case == "f12_512":
                        stats_ms[name].append(engine_mod.last_stats.ms)
    raster._MODULES["cpu"], scene_render.display_to_scene_linear = rasterizers["cpu"]
    for name in rasterizers:
        line = {"rasterizer": name, "gaussians": args.gaussians, "viewport_scale": args.scale,
                "f12_engine_ms_median": round(statistics.median(stats_ms[name]), 1)}
        for case, values in times[name].items():
            line[f"{case}_wall_ms"] = round(statistics.median(v[0] for v in values), 1)
            line[f"{case}_cpu_ms"] = round(statistics.median(v[1] for v in values), 1)
        line["load"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
