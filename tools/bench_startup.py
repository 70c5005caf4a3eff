"""Benchmark: enable the add-on -> sample an avatar -> first F12 image, cold and warm.

    .venv/bin/python tools/bench_startup.py [--size 512] [--runs cold-old,cold-new,warm-old,warm-new]

Each run is a fresh bpy process (tests/blender/bpy_runner.py) with its own Blender user folder
and ``NUMBA_CACHE_DIR`` unset, so the add-on puts numba's cache in that folder: "cold" starts
from an empty folder (first session after installing), "warm" reuses the folder of the cold
run before it (the second session). "old" disables the background warm-up
(``GAUSSIAN_HEADS_WARMUP=0``: kernels compile inside the first operator/render that needs them,
as before the warm-up existed); "new" is the default. Prints one JSON object per run: wall
times of each step, the process's CPU time, and the 1-minute load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.blender.bpy_runner import run_bpy  # noqa: E402
from tests.blender.conftest import _repo_dir  # noqa: E402  (the stable dev-extension folder)

_SNIPPET = """
import addon_utils, os, resource, sys, time
sys.path.insert(0, {repo!r})
def cpu():  # this process and its finished children (the warm-up compiles in child processes)
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))
bpy.ops.wm.read_factory_settings(use_empty=True)
result["load_before"] = os.getloadavg()[0]
t0, c0 = time.perf_counter(), cpu()
bpy.context.preferences.extensions.repos.new(name="ghdev", module="ghdev", custom_directory={dev_repo!r},
                                             source='USER')
assert addon_utils.enable("bl_ext.ghdev.gaussian_heads", default_set=True) is not None
t1 = time.perf_counter()
# imported only now: it points BLENDER_USER_RESOURCES elsewhere, after the add-on set its folders
from tests.blender import conftest as H
assert bpy.ops.gaussian_heads.sample_identity() == {{'FINISHED'}}
t2 = time.perf_counter()
cam = H.setup_camera_scene({size})
scene = bpy.context.scene
scene.render.filepath = os.path.join(os.getcwd(), "first.png")
t3 = time.perf_counter()
assert bpy.ops.render.render(write_still=True) == {{'FINISHED'}}
t4, c4 = time.perf_counter(), cpu()
stats = H.addon("render_engine").last_stats
warm = H.addon("engine.warmup").current()
progress = warm.wait() if warm is not None else None
result.update(enable_s=t1 - t0, sample_s=t2 - t1, f12_s=t4 - t3, enable_to_image_s=t4 - t0,
              cpu_to_image_s=c4 - c0, waited_in_f12_s=stats.waited_s, stats=stats.text(),
              warmup_s=progress.seconds if progress else None, cpu_total_s=cpu() - c0,
              load_after=os.getloadavg()[0], numba_cache=os.environ.get("NUMBA_CACHE_DIR"))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", default="cold-old,cold-new,warm-old,warm-new")
    args = parser.parse_args(argv)
    root = pathlib.Path(tempfile.mkdtemp(prefix="gh_bench_startup_"))
    for run in args.runs.split(","):
        state, variant = run.split("-")
        res = root / variant  # warm-X reuses cold-X's user folder (numba cache filled)
        env = {"GAUSSIAN_HEADS_WARMUP": "0" if variant == "old" else "1"}
        out = run_bpy(_SNIPPET.format(repo=str(REPO), size=args.size, dev_repo=str(_repo_dir())), res, env=env,
                      drop_env=("NUMBA_CACHE_DIR",))
        out["run"] = run
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
