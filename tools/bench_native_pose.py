"""Benchmark: keeping an avatar posed as a native Gaussian splat in Blender 5.3, per frame change.

    .venv/bin/python tools/build_extension.py --platform linux-x64   # once: fills wheels/
    .venvs/bpy-5.3/bin/python tools/bench_native_pose.py [--gaussians 65536] [--frames 48]

Runs inside bpy 5.3 (the bare venv of ``tools/bpy_venvs.py``): the zip's bundled wheels for this
Python are installed from ``wheels/`` into a temporary folder (``pip --no-index``), and this
checkout is enabled as an extension in an isolated Blender user folder. An avatar of
``--gaussians`` Gaussians gets a different jaw and expression on every frame; for each frame it
times what ``avatar_pose.pose_avatar`` does: ``pose`` (``identity.pose``), ``convert``
(``native_splat.frame_attributes``), ``write`` (``splat_data.write_native_frame``: four
``foreach_set`` calls) and their ``total`` (wall and process CPU time); ``pose_avatar`` (the
handler's whole call: parameters gathered from the evaluated object, pose, convert, write), then
the whole ``scene.frame_set`` with the handlers (``frame_set``: also Blender re-evaluating the
written point cloud) and without them (``frame_set_bare``).
Prints one JSON object per line: medians and 95th percentiles in ms, with ``os.getloadavg()``.
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


def stats(values_ms) -> dict:
    import numpy as np

    a = np.asarray(values_ms, np.float64)
    return {"median": round(float(np.median(a)), 3), "p95": round(float(np.percentile(a, 95)), 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaussians", type=int, default=65_536)
    parser.add_argument("--frames", type=int, default=48)
    args = parser.parse_args(argv)

    os.environ.setdefault("GAUSSIAN_HEADS_WARMUP", "0")   # nothing compiles beside the measurement
    enable_checkout("gh_bench_native_", bundled_wheels=True)
    import bpy
    import numpy as np
    from importlib import import_module

    avatar_pose = import_module(f"{ADDON_MODULE}.avatar_pose")
    splat_data = import_module(f"{ADDON_MODULE}.splat_data")
    render_engine = import_module(f"{ADDON_MODULE}.render_engine")
    native_splat = import_module(f"{ADDON_MODULE}.engine.avatar.native_splat")
    if not splat_data.native_supported():
        raise SystemExit(f"Blender {bpy.app.version_string} has no native Gaussian splats (5.3+ needed)")

    scene = bpy.context.scene
    bpy.ops.gaussian_heads.sample_identity(source='BUILTIN', seed=3, n_gaussians=args.gaussians)
    avatar = bpy.context.active_object
    props = avatar.gaussian_heads
    names = [channel.name for channel in props.expr]
    keyed = [names.index(n) for n in ("jawOpen", "mouthSmileLeft", "browInnerUp") if n in names]
    for frame in range(1, args.frames + 1):   # a different pose on every frame
        phase = 2 * np.pi * frame / args.frames
        props.jaw = (0.25 + 0.2 * np.sin(phase), 0.0, 0.0)
        avatar.keyframe_insert("gaussian_heads.jaw", frame=frame)
        for j, index in enumerate(keyed):
            props.expr[index].value = 0.5 + 0.5 * np.sin(phase + j)
            avatar.keyframe_insert(f"gaussian_heads.expr[{index}].value", frame=frame)
    scene.frame_set(1)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    identity = render_engine.avatar_identity(avatar.evaluated_get(depsgraph))
    identity.pose(identity.neutral_params())   # numba's first call (compile or cache load)

    def time_frame_sets():
        walls, cpus = [], []
        for frame in list(range(2, args.frames + 1)) + [1]:
            t, c = time.perf_counter(), time.process_time()
            scene.frame_set(frame)
            walls.append((time.perf_counter() - t) * 1e3)
            cpus.append((time.process_time() - c) * 1e3)
        return walls, cpus

    stages = {"pose": [], "convert": [], "write": [], "total": [], "total_cpu": [], "pose_avatar": []}
    for frame in range(1, args.frames + 1):
        scene.frame_set(frame)
        evaluated = avatar.evaluated_get(bpy.context.evaluated_depsgraph_get())
        params = render_engine.head_params(evaluated, identity)
        t0, c0 = time.perf_counter(), time.process_time()
        posed = identity.pose(params)
        t1 = time.perf_counter()
        attributes = native_splat.frame_attributes(posed)
        t2 = time.perf_counter()
        splat_data.write_native_frame(avatar.data, attributes)
        avatar.data.update_tag()
        t3, c3 = time.perf_counter(), time.process_time()
        for name, ms in (("pose", t1 - t0), ("convert", t2 - t1), ("write", t3 - t2), ("total", t3 - t0),
                         ("total_cpu", c3 - c0)):
            stages[name].append(ms * 1e3)
        t = time.perf_counter()
        avatar_pose.pose_avatar(avatar, bpy.context.evaluated_depsgraph_get(), force=True)
        stages["pose_avatar"].append((time.perf_counter() - t) * 1e3)
    with_handlers, with_handlers_cpu = time_frame_sets()
    for name, function in avatar_pose.HANDLERS:
        getattr(bpy.app.handlers, name).remove(function)
    bare, _ = time_frame_sets()

    row = {"bench": "native-pose", "blender": bpy.app.version_string, "gaussians": args.gaussians,
           "sh_degree": int(identity.pose(identity.neutral_params()).sh_degree), "frames": args.frames,
           **{f"{name}_ms": stats(values) for name, values in stages.items()},
           "frame_set_ms": stats(with_handlers), "frame_set_cpu_ms": stats(with_handlers_cpu),
           "frame_set_bare_ms": stats(bare),
           "loadavg": [round(x, 2) for x in os.getloadavg()], "cpu_count": os.cpu_count(),
           "machine": platform.machine(), "python": platform.python_version()}
    print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
