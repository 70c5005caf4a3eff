"""``python -m engine bench render``: milliseconds per frame and FPS of each render backend.

Default scene: 65,536 Gaussians on a head-sized ellipsoid shell (0.15 x 0.19 x 0.22 m, flat
surface-aligned splats of ~1 mm, skin colours, SH degree 3) seen from the front by a 50 mm
camera so that the head spans ``--fill`` (60%) of the frame's height, 512 x 512, antialiased.
Each backend renders once or more to warm up (numba compilation, CUDA start-up) before timing.
Prints one JSON object per backend per line:
``{"backend", "gaussians", "width", "height", "ms_median", "fps", "cpu_ms_median", "threads",
"load"}``; ``cpu_ms_median`` is the process CPU time per frame (all threads): on a shared, busy
machine wall time mostly measures the other processes, CPU time much less so; ``load`` is the
1/5/15-minute load average when the line was printed.
The reference backend (pure torch, O(pixels x Gaussians)) is timed only for small jobs.

``--compare REV`` also times the cpu backend as it was at git revision REV (its ``cpu*.py``
loaded from ``git show`` into a temporary module), frames of the two interleaved so both see the
same machine, and prints it as backend ``cpu@REV``. ``--stages`` adds the cpu backend's stage
split and the fragment count of ``roofline.py`` (one more JSON line).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

from . import available_backends, render
from .scenes import head_camera, head_shell

REFERENCE_MAX_WORK = 3e8   # Gaussians x pixels above which the reference is skipped


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gaussians", type=int, default=65536, help="number of Gaussians (default 65536)")
    parser.add_argument("--width", type=int, default=512, help="image width in pixels (default 512)")
    parser.add_argument("--height", type=int, default=512, help="image height in pixels (default 512)")
    parser.add_argument("--repeats", type=int, default=20, help="timed frames per backend (default 20)")
    parser.add_argument("--fill", type=float, default=0.6, help="fraction of the frame height the head spans")
    parser.add_argument("--mode", choices=("antialiased", "classic"), default="antialiased")
    parser.add_argument("--sh-degree", type=int, default=3, choices=(0, 1, 2, 3))
    parser.add_argument("--backend", action="append", choices=("cpu", "gsplat", "reference"),
                        help="time only this backend (repeatable); default: every available one")
    parser.add_argument("--coverage", action="store_true",
                        help="also print (to stderr) the fraction of pixels with alpha > 0.5")
    parser.add_argument("--compare", metavar="REV",
                        help="also time the cpu backend of git revision REV, interleaved with today's")
    parser.add_argument("--stages", action="store_true",
                        help="also print the cpu backend's stage split and fragment count")


def load_cpu_at(rev: str):
    """The cpu backend's modules as they were at git revision ``rev``, imported from a temporary
    folder (numba caches them by path, so the folder is per commit); returns its ``cpu`` module."""
    repo = pathlib.Path(__file__).resolve().parents[2]
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=repo, capture_output=True, text=True,
                         check=True).stdout.strip()
    names = subprocess.run(["git", "ls-tree", "--name-only", sha, "engine/raster/"], cwd=repo,
                           capture_output=True, text=True, check=True).stdout.split()
    modules = [pathlib.Path(n).stem for n in names if re.fullmatch(r"engine/raster/cpu\w*\.py", n)]
    folder = pathlib.Path(tempfile.gettempdir()) / "gaussian_heads_compare" / sha
    folder.mkdir(parents=True, exist_ok=True)
    prefix = f"_at_{sha}_"
    for name in modules:   # each module imports its siblings at the same revision
        text = subprocess.run(["git", "show", f"{sha}:engine/raster/{name}.py"], cwd=repo, capture_output=True,
                              text=True, check=True).stdout
        for other in modules:
            text = re.sub(rf"from \.{other} import", f"from .{prefix}{other} import", text)
        path = folder / f"{prefix}{name}.py"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    for name in sorted(modules, key=lambda n: n == "cpu"):   # siblings first, cpu last
        full = f"{__package__}.{prefix}{name}"
        if full not in sys.modules:
            spec = importlib.util.spec_from_file_location(full, folder / f"{prefix}{name}.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[full] = module
            spec.loader.exec_module(module)
    return sys.modules[f"{__package__}.{prefix}cpu"]


def time_renders(renders: dict, gaussians, camera, width: int, height: int, repeats: int, mode: str,
                 sh_degree: int) -> dict[str, tuple[list[float], list[float]]]:
    """{name: (wall ms, process CPU ms) per frame} for ``repeats`` frames of each render function
    after warming up; with several, their frames interleave (order flipped every round)."""
    names = list(renders)
    for name in names:
        for _ in range(2 if name != "reference" else 1):
            renders[name](gaussians, camera, width, height, mode=mode, sh_degree=sh_degree)
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in names}
    for i in range(repeats):
        for name in names if i % 2 == 0 else names[::-1]:
            start, start_cpu = time.perf_counter(), time.process_time()
            renders[name](gaussians, camera, width, height, mode=mode, sh_degree=sh_degree)
            times[name][0].append((time.perf_counter() - start) * 1e3)
            times[name][1].append((time.process_time() - start_cpu) * 1e3)
    return times


def _backend_render(backend: str):
    return lambda *args, **kwargs: render(*args, backend=backend, **kwargs)


def _threads(backend: str) -> int:
    if backend == "cpu":
        from .cpu import threads

        return threads()
    import torch

    return int(torch.get_num_threads())


def _line(name: str, args, wall: list[float], cpu: list[float], threads: int) -> str:
    ms = statistics.median(wall)
    return json.dumps({"backend": name, "gaussians": args.gaussians, "width": args.width, "height": args.height,
                       "ms_median": round(ms, 3), "fps": round(1e3 / ms, 2),
                       "cpu_ms_median": round(statistics.median(cpu), 3), "threads": threads,
                       "load": [round(x, 2) for x in os.getloadavg()]})


def run(args: argparse.Namespace) -> int:
    if args.gaussians < 1 or args.width < 1 or args.height < 1 or args.repeats < 1:
        print("error: --gaussians, --width, --height and --repeats must be positive", file=sys.stderr)
        return 2
    gaussians = head_shell(args.gaussians, sh_degree=args.sh_degree)
    camera = head_camera(args.width, args.height, fill=args.fill)
    backends = args.backend or available_backends()
    for backend in backends:
        if backend not in available_backends():
            print(f"skipping {backend}: not available on this machine", file=sys.stderr)
            continue
        repeats = args.repeats
        if backend == "reference":
            if args.gaussians * args.width * args.height > REFERENCE_MAX_WORK:
                if args.backend:
                    print("skipping reference: too slow for this size (it is the O(N x pixels) truth)",
                          file=sys.stderr)
                continue
            repeats = min(repeats, 3)
        renders = {backend: _backend_render(backend)}
        if backend == "cpu" and args.compare:
            try:
                renders[f"cpu@{args.compare}"] = load_cpu_at(args.compare).render
            except (OSError, subprocess.CalledProcessError) as exc:   # no git, not a checkout, unknown REV
                detail = str(getattr(exc, "stderr", "") or exc).strip()
                print(f"error: --compare {args.compare}: cannot read the cpu backend from git ({detail})",
                      file=sys.stderr)
                return 2
        times = time_renders(renders, gaussians, camera, args.width, args.height, repeats, args.mode,
                             args.sh_degree)
        for name, (wall, cpu) in times.items():
            print(_line(name, args, wall, cpu, _threads(backend)), flush=True)
    if args.stages:
        from . import roofline

        stats = roofline.stage_times(gaussians, camera, args.width, args.height, args.repeats, args.mode)
        stats.update(roofline.count_fragments(gaussians, camera, args.width, args.height, args.mode))
        stats["blend_ns_per_fragment"] = round(stats["blend_cpu_ms"] * 1e6 / max(stats["fragments"], 1), 2)
        print(json.dumps({"stages": "cpu", **stats, "load": [round(x, 2) for x in os.getloadavg()]}), flush=True)
    if args.coverage:
        result = render(gaussians, camera, args.width, args.height, mode=args.mode, backend="cpu")
        print(f"coverage: {(result.alpha > 0.5).mean():.3f} of pixels have alpha > 0.5", file=sys.stderr)
    return 0
