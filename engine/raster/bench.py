"""``python -m engine bench render``: milliseconds per frame and FPS of each render backend.

Default scene: 65,536 Gaussians on a head-sized ellipsoid shell (0.15 x 0.19 x 0.22 m, flat
surface-aligned splats of ~1 mm, skin colours, SH degree 3) seen from the front by a 50 mm
camera so that the head spans ``--fill`` (60%) of the frame's height, 512 x 512, antialiased.
Each backend renders once or more to warm up (numba compilation, CUDA start-up) before timing.
Prints one JSON object per backend per line:
``{"backend", "gaussians", "width", "height", "ms_median", "fps", "cpu_ms_median", "threads"}``;
``cpu_ms_median`` is the process CPU time per frame (all threads): on a shared, busy machine
wall time mostly measures the other processes, CPU time much less so.
The reference backend (pure torch, O(pixels x Gaussians)) is timed only for small jobs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
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


def time_backend(backend: str, gaussians, camera, width: int, height: int, repeats: int,
                 mode: str) -> tuple[list[float], list[float]]:
    """(wall ms, process CPU ms) per frame for ``repeats`` frames after warming up."""
    for _ in range(2 if backend != "reference" else 1):
        render(gaussians, camera, width, height, mode=mode, backend=backend)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        render(gaussians, camera, width, height, mode=mode, backend=backend)
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return wall, cpu


def _threads(backend: str) -> int:
    if backend == "cpu":
        from .cpu import threads

        return threads()
    import torch

    return int(torch.get_num_threads())


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
        wall, cpu = time_backend(backend, gaussians, camera, args.width, args.height, repeats, args.mode)
        ms = statistics.median(wall)
        print(json.dumps({"backend": backend, "gaussians": args.gaussians, "width": args.width,
                          "height": args.height, "ms_median": round(ms, 3), "fps": round(1e3 / ms, 2),
                          "cpu_ms_median": round(statistics.median(cpu), 3), "threads": _threads(backend)}),
              flush=True)
    if args.coverage:
        result = render(gaussians, camera, args.width, args.height, mode=args.mode, backend="cpu")
        print(f"coverage: {(result.alpha > 0.5).mean():.3f} of pixels have alpha > 0.5", file=sys.stderr)
    return 0
