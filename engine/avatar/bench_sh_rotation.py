"""``python -m engine bench sh-rotate``: turning SH colour with an avatar's transform (ms, median).

One JSON object per line and size: ``rotate_sh`` on N x 16 x 3 float32 coefficients, its
quadrature twin (``rotate_sh_reference``), and ``GaussianSet.transformed`` with the SH turn
against the same transform without it (``transforms.apply_similarity`` alone, the old
behaviour), measured side by side in one run. Wall and process CPU time, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=[65_536, 262_144],
                        help="Gaussian counts")
    parser.add_argument("--repeats", type=int, default=9, help="timed runs per case")
    parser.add_argument("--twin", action="store_true", help="also time the (slow) quadrature twin")


def _time(fn, repeats: int) -> tuple[float, float]:
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return 1e3 * float(np.median(walls)), 1e3 * float(np.median(cpus))


def run(args: argparse.Namespace) -> int:
    from .frames import MODEL_TO_BLENDER
    from .gaussian_set import GaussianSet
    from .sh_rotation import rotate_sh, rotate_sh_reference
    from .transforms import apply_similarity

    rng = np.random.default_rng(0)
    matrix = np.eye(4)
    angle = 0.7
    matrix[:3, :3] = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    matrix = matrix @ MODEL_TO_BLENDER
    for n in args.sizes:
        q = rng.normal(size=(n, 4))
        g = GaussianSet(rng.normal(size=(n, 3)), rng.normal(size=(n, 3)) - 4, q / np.linalg.norm(q, axis=1, keepdims=True),
                        rng.normal(size=n), rng.normal(size=(n, 16, 3)))
        cases = {
            "rotate_sh": lambda: rotate_sh(g.sh, matrix[:3, :3]),
            "transformed_without_sh_turn": lambda: apply_similarity(g, matrix),
            "transformed_with_sh_turn": lambda: g.transformed(matrix),
        }
        if args.twin:
            cases["rotate_sh_reference"] = lambda: rotate_sh_reference(g.sh, matrix[:3, :3])
        for name, fn in cases.items():
            wall, cpu = _time(fn, args.repeats if name != "rotate_sh_reference" else 1)
            print(json.dumps({"bench": "sh-rotate", "case": name, "gaussians": n, "coefficients": 16,
                              "wall_ms": round(wall, 2), "cpu_ms": round(cpu, 2),
                              "load_avg_1m": round(os.getloadavg()[0], 2)}), flush=True)
    return 0
