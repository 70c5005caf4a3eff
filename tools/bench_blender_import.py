"""Benchmark: importing a long take into Blender (bpy module), split into its stages.

    .venv/bin/python tools/bench_blender_import.py [--frames 10000] [--repeat 3]

Writes a synthetic Live Link Face take (``--frames`` rows, 61 columns, 60 fps), then, best of
``--repeat``: the engine side (parse + resample + map, ``prepare_import``), building the curve
arrays, and writing the F-curves into a fresh action with ``keyframe_points.add`` + ``foreach_set``
(the same functions the import operator uses, on an object with the operator's data paths); and
the whole operator call (wall time, and its process CPU time, which is what an idle machine's
wall time would be when other jobs share the cores). Prints one JSON object. Runs the add-on from this checkout in an isolated
Blender user folder (nothing under ``~`` is touched).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bpy_checkout import ADDON_MODULE, enable_checkout  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    tmp = enable_checkout("gh_bench_import_")
    import bpy  # noqa: F401

    from importlib import import_module

    engine_anim = import_module(f"{ADDON_MODULE}.engine.animation")
    bench = import_module(f"{ADDON_MODULE}.engine.animation.bench")
    livelink = import_module(f"{ADDON_MODULE}.engine.animation.formats.livelink")
    names = import_module(f"{ADDON_MODULE}.engine.animation.names")
    keyframes = import_module(f"{ADDON_MODULE}.operators.keyframes")

    take = tmp / "take.csv"
    livelink.write_live_link_csv(bench.synthetic_take(args.frames), take)

    def new_avatar(name):
        obj = bpy.data.objects.new(name, None)
        bpy.context.scene.collection.objects.link(obj)
        obj.gaussian_heads.is_avatar = True
        for n in names.ARKIT_NAMES:
            ch = obj.gaussian_heads.expr.add()
            ch.name = n
        bpy.context.view_layer.objects.active = obj
        return obj

    scene = bpy.context.scene
    scene.render.fps = 60
    target = engine_anim.TargetSpec(names.ARKIT_NAMES, "arkit")
    options = engine_anim.ImportOptions(scene_fps=60.0)
    best = {"engine_s": 1e9, "build_s": 1e9, "write_s": 1e9, "operator_s": 1e9, "operator_cpu_s": 1e9,
            "engine_cpu_s": 1e9, "write_cpu_s": 1e9}
    n_curves = n_keys = 0
    for r in range(max(1, args.repeat)):
        t0, c0 = time.perf_counter(), time.process_time()
        result = engine_anim.prepare_import(str(take), target, options)
        t1, c1 = time.perf_counter(), time.process_time()
        curves = keyframes.build_curves(result.sequence, result.frames)
        t2 = time.perf_counter()
        obj = new_avatar(f"bench{r}")
        t3, c3 = time.perf_counter(), time.process_time()
        keyframes.write_curves(obj, curves, f"bench{r}")
        t4, c4 = time.perf_counter(), time.process_time()
        best["engine_cpu_s"] = min(best["engine_cpu_s"], c1 - c0)
        best["write_cpu_s"] = min(best["write_cpu_s"], c4 - c3)
        n_curves, n_keys = len(curves), sum(c.n_keys for c in curves)
        obj2 = new_avatar(f"op{r}")
        t5, c5 = time.perf_counter(), time.process_time()
        assert bpy.ops.gaussian_heads.import_animation(filepath=str(take)) == {'FINISHED'}
        t6, c6 = time.perf_counter(), time.process_time()
        best["operator_cpu_s"] = min(best["operator_cpu_s"], c6 - c5)
        assert obj2.animation_data.action is not None
        for k, v in (("engine_s", t1 - t0), ("build_s", t2 - t1), ("write_s", t4 - t3), ("operator_s", t6 - t5)):
            best[k] = min(best[k], v)
    print(json.dumps({
        "bench": "blender_import", "machine": f"{platform.machine()} {os.cpu_count()} cpu",
        "load_avg_1m": round(os.getloadavg()[0], 2), "frames": args.frames, "curves": n_curves, "keys": n_keys,
        **{k: round(v, 4) for k, v in best.items()},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
