"""``python -m engine bench lam``: LAM avatar zip import time and pose time per frame.

Exports a built-in identity with ``--gaussians`` Gaussians (so a 20k-vertex LAM avatar, as LAM
makes) to a temporary zip, then times ``read_lam_zip`` (best of ``--repeat``) and
``VertexIdentity.pose`` over ``--frames`` varied frames, with wall time, process CPU time and the
1-minute load average beside them. Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gaussians", type=int, default=20_000, help="Gaussians = LAM vertices")
    parser.add_argument("--repeat", type=int, default=3, help="imports; the best is reported")
    parser.add_argument("--frames", type=int, default=50, help="posed frames")


def run(args: argparse.Namespace) -> int:
    from ..avatar.builtin import BuiltinSamplerConfig, BuiltinSource
    from .lam import read_lam_zip, write_lam_zip

    identity = BuiltinSource(config=BuiltinSamplerConfig(n_gaussians=args.gaussians)).sample(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.zip")
        w0, c0 = time.perf_counter(), time.process_time()
        write_lam_zip(identity, path)
        write = (time.perf_counter() - w0, time.process_time() - c0)
        size = os.path.getsize(path)
        best = None
        for _ in range(args.repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            avatar = read_lam_zip(path)
            t = (time.perf_counter() - w0, time.process_time() - c0)
            best = t if best is None or t[0] < best[0] else best
    lam = avatar.identity
    rng = np.random.default_rng(0)
    params = lam.neutral_params()
    lam.pose(params)  # first call builds the model's prepared LBS arrays
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.frames):
        params.expr[:] = rng.uniform(0, 1, params.expr.shape) * (rng.random(params.expr.shape) < 0.2)
        params.global_rot[:] = rng.normal(0, 0.1, 3)
        params.neck[:] = rng.normal(0, 0.05, 3)
        lam.pose(params)
    pose = ((time.perf_counter() - w0) / args.frames, (time.process_time() - c0) / args.frames)
    load = os.getloadavg()[0]
    print(json.dumps({"bench": "lam", "what": "write_lam_zip", "gaussians": args.gaussians, "zip_bytes": size,
                      "wall_s": round(write[0], 3), "cpu_s": round(write[1], 3), "load_avg_1m": round(load, 2)}))
    print(json.dumps({"bench": "lam", "what": "read_lam_zip", "vertices": lam.model.n_vertices,
                      "wall_s": round(best[0], 3), "cpu_s": round(best[1], 3), "load_avg_1m": round(load, 2)}))
    print(json.dumps({"bench": "lam", "what": "pose per frame", "gaussians": len(lam), "frames": args.frames,
                      "wall_ms": round(pose[0] * 1e3, 2), "cpu_ms": round(pose[1] * 1e3, 2),
                      "load_avg_1m": round(os.getloadavg()[0], 2)}))
    return 0
