"""``python -m engine bench pose``: time posing one frame of an identity (ms, median).

Wall time and the process CPU time are both reported: on a shared machine the wall time grows
with the other jobs while the CPU time estimates an idle machine (the pose is single-threaded
apart from BLAS calls inside the head model).

One JSON object per line, one per case in ``pose_cases``: (label, make) pairs where
``make(model, n_gaussians) -> object with .pose(params)``: the built-in identity with the full
model, and the same identity baked into Gaussian blendshapes (AGORA-M, ``engine.bake``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Callable

import numpy as np

from ..head_model.model import HeadModel, HeadParams

PoseCase = tuple[str, Callable[[HeadModel, int], object]]


def _builtin_identity(model: HeadModel, n_gaussians: int):
    from .builtin import BuiltinSamplerConfig, BuiltinSource

    return BuiltinSource(model, BuiltinSamplerConfig(n_gaussians=n_gaussians)).sample(0)


def _baked_identity(model: HeadModel, n_gaussians: int):
    from ..bake.bench import baked_pose_case

    return baked_pose_case(model, n_gaussians)


pose_cases: list[PoseCase] = [("builtin identity, full model (lbs + lift)", _builtin_identity),
                              ("builtin identity, baked (K = 64, int8 blend)", _baked_identity)]


def demo_frames(model: HeadModel, n: int = 16, seed: int = 0) -> list[HeadParams]:
    """``n`` varied frames: expression channels in [0, 0.6], jaw, neck and head turns."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        p = HeadParams.neutral_for(model)
        p.expr = (rng.random(model.n_expr) * 0.6 * (rng.random(model.n_expr) < 0.2)).astype(np.float32)
        p.jaw = np.array([rng.uniform(0, 0.3), 0, 0], np.float32)
        p.neck = rng.normal(0, 0.05, 3).astype(np.float32)
        p.global_rot = rng.normal(0, 0.1, 3).astype(np.float32)
        p.eyes = rng.normal(0, 0.1, (2, 3)).astype(np.float32)
        frames.append(p)
    return frames


def time_pose(identity, frames: list[HeadParams], repeat: int) -> dict:
    """Median / p90 ms of ``identity.pose`` over ``repeat`` calls cycling through ``frames``."""
    identity.pose(frames[0])  # warm-up (JIT, caches)
    times, cpu = [], []
    for i in range(repeat):
        p = frames[i % len(frames)]
        t, c = time.perf_counter(), time.process_time()
        identity.pose(p)
        times.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    return {"ms_median": round(float(np.median(times)), 3), "ms_p90": round(float(np.percentile(times, 90)), 3),
            "cpu_ms_median": round(float(np.median(cpu)), 3), "repeat": repeat}


def time_parts(identity, frames: list[HeadParams], repeat: int) -> dict:
    """Split of a BoundIdentity's pose: head-model LBS vs. lifting the Gaussians."""
    from ..head_model import lbs

    lbs_t, lift_t = [], []
    for i in range(repeat):
        p = frames[i % len(frames)]
        t0 = time.perf_counter()
        v = lbs.forward(identity.model, p).vertices
        t1 = time.perf_counter()
        identity.pose_vertices(v, p)
        t2 = time.perf_counter()
        lbs_t.append((t1 - t0) * 1e3)
        lift_t.append((t2 - t1) * 1e3)
    return {"lbs_ms_median": round(float(np.median(lbs_t)), 3), "lift_ms_median": round(float(np.median(lift_t)), 3)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gaussians", type=int, default=65_536)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--model", default="open", help="head model spec (default: open)")


def run(args: argparse.Namespace) -> int:
    from ..head_model import load_head_model

    model = load_head_model(args.model)
    frames = demo_frames(model)
    machine = f"{platform.machine()} {os.cpu_count()} cpus"
    for label, make in pose_cases:
        identity = make(model, args.gaussians)
        row = {"bench": "pose", "case": label, "model": model.name, "vertices": model.n_vertices,
               "gaussians": len(identity.pose(frames[0])), **time_pose(identity, frames, args.repeat)}
        if hasattr(identity, "pose_vertices"):
            row.update(time_parts(identity, frames, max(10, args.repeat // 2)))
        row["machine"] = machine
        print(json.dumps(row), flush=True)
    return 0
