"""``python -m engine bench sample``: built-in identity sampling time (ms), one JSON line.

"first_ms" includes the per-model set-up the sampler caches (binding, masks, adjacency);
"ms_median" is the wall time of one further sample, "cpu_ms_median" its process CPU time (the
idle-machine estimate on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gaussians", type=int, default=65_536)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--model", default="open", help="head model spec (default: open)")


def run(args: argparse.Namespace) -> int:
    from ..head_model import load_head_model
    from .builtin import BuiltinSamplerConfig, BuiltinSource

    model = load_head_model(args.model)
    source = BuiltinSource(model, BuiltinSamplerConfig(n_gaussians=args.gaussians))
    t = time.perf_counter()
    source.sample(0)
    first = (time.perf_counter() - t) * 1e3
    times, cpu = [], []
    for seed in range(1, args.repeat + 1):
        t, c = time.perf_counter(), time.process_time()
        source.sample(seed)
        times.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    print(json.dumps({"bench": "sample", "source": "builtin", "model": model.name, "gaussians": args.gaussians,
                      "first_ms": round(first, 2), "ms_median": round(float(np.median(times)), 2),
                      "ms_p90": round(float(np.percentile(times, 90)), 2),
                      "cpu_ms_median": round(float(np.median(cpu)), 2), "repeat": args.repeat,
                      "machine": f"{platform.machine()} {os.cpu_count()} cpus"}), flush=True)
    return 0
