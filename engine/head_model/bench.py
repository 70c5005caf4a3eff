"""``python -m engine bench head-model``: head-model forward pass speed.

Prints one JSON object per line:
  {"bench": "head_model.numpy_1", ...}   one frame, numpy (goal <= 1 ms on 2 cores)
  {"bench": "head_model.torch_batch", ...} a batch of frames, torch CPU (goal: 1,000 frames <= 1 s)
Timings are medians over repeats after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="open", help='"open" or a FLAME .pkl/.npz path')
    parser.add_argument("--frames", type=int, default=1000, help="batch size for the torch benchmark")
    parser.add_argument("--repeats", type=int, default=200, help="repeats of the single-frame numpy pass")
    parser.add_argument("--torch-repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")


def _random_params(model, batch, rng):
    from .model import HeadParams

    lead = () if batch is None else (batch,)
    f = lambda *s, sd=0.2: (rng.standard_normal(lead + s) * sd).astype(np.float32)  # noqa: E731
    return HeadParams(f(model.n_shape, sd=1.0), np.abs(f(model.n_expr, sd=0.3)), f(3), f(3), f(3), f(2, 3),
                      f(3, sd=0.01))


def run(args: argparse.Namespace) -> int:
    import torch

    from . import load_head_model
    from .lbs import forward
    from .lbs_torch import TorchHeadModel

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_head_model(args.model)
    rng = np.random.default_rng(0)
    machine = {"cpu_count": os.cpu_count(), "machine": platform.machine(), "torch_threads": torch.get_num_threads()}

    p1 = _random_params(model, None, rng)
    for _ in range(10):
        forward(model, p1)
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        forward(model, p1)
        times.append(time.perf_counter() - t)
    print(json.dumps({"bench": "head_model.numpy_1", "model": model.name, "vertices": model.n_vertices,
                      "ms_median": round(1e3 * float(np.median(times)), 4),
                      "ms_p10": round(1e3 * float(np.percentile(times, 10)), 4),
                      "goal_ms": 1.0, **machine}), flush=True)

    tm = TorchHeadModel(model)
    pb = _random_params(model, args.frames, rng)
    fields = [torch.as_tensor(getattr(pb, n)) for n in
              ("shape", "expr", "global_rot", "neck", "jaw", "eyes", "translation")]
    with torch.no_grad():
        tm(*fields)
        times = []
        for _ in range(args.torch_repeats):
            t = time.perf_counter()
            tm(*fields)
            times.append(time.perf_counter() - t)
    med = float(np.median(times))
    print(json.dumps({"bench": "head_model.torch_batch", "model": model.name, "frames": args.frames,
                      "ms_total_median": round(1e3 * med, 2), "ms_per_frame": round(1e3 * med / args.frames, 4),
                      "goal_ms_total_for_1000": 1000.0, **machine}), flush=True)
    return 0
