"""``python -m engine bench generator``: ONNX identity branch and per-frame deformation branch.

Prints one JSON object per line; each timing has wall ms (median/min/max), the process CPU
ms and the 1-minute load average, because the project's 2-core VM is shared. Without ``--checkpoint`` it builds a randomly initialised
checkpoint of the default config (UV 256) in a temporary folder and exports it to ONNX first
(export time reported too; needs torch). Timings use onnxruntime with ``--threads`` intra-op
threads (default 2, the project's CI machine). Goal: identity branch <= 500 ms at UV 256.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np

IDENTITY_GOAL_MS = 500.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=None, help="checkpoint with ONNX branches (default: build one)")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per measurement")
    parser.add_argument("--small", action="store_true", help="use the small test config when building")
    parser.add_argument("--model", default="open", help="head model for the end-to-end lines (skipped if absent)")


def _timed(fn, repeat: int, warmup: int = 2) -> dict:
    for _ in range(warmup):
        fn()
    times, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t) * 1000.0)
        cpu.append((time.process_time() - c) * 1000.0)
    return {"ms_median": round(statistics.median(times), 2), "ms_min": round(min(times), 2),
            "ms_max": round(max(times), 2), "cpu_ms_median": round(statistics.median(cpu), 2), "repeat": repeat,
            "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}


def _emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def run(args: argparse.Namespace) -> int:
    from .checkpoint import load_runner, read_checkpoint

    machine = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs", "threads": args.threads}
    tmp = None
    path = args.checkpoint
    if path is None:
        import torch

        from .checkpoint import save_checkpoint
        from .config import GeneratorConfig, small_config
        from .networks import build_generator, count_parameters

        config = small_config() if args.small else GeneratorConfig()
        gen = build_generator(config, seed=0)
        tmp = tempfile.TemporaryDirectory(prefix="gh_bench_gen_")
        path = os.path.join(tmp.name, "ckpt")
        torch.set_num_threads(max(1, args.threads))
        t = time.perf_counter()
        save_checkpoint(gen, path, meta={"trained": False}, onnx=True)
        _emit({"bench": "generator", "what": "onnx_export", "seconds": round(time.perf_counter() - t, 2),
               "parameters": count_parameters(gen), "uv_resolution": config.uv_resolution, **machine})
    try:
        ckpt = read_checkpoint(path)
        cfg = ckpt.config
        runner = load_runner(path, backend="onnx", threads=args.threads)
        rng = np.random.default_rng(0)
        z = rng.standard_normal(cfg.z_dim).astype(np.float32)
        shape_map = np.zeros((4, cfg.uv_resolution, cfg.uv_resolution), np.float32)
        shape_map[:3] = rng.standard_normal((3, cfg.uv_resolution, cfg.uv_resolution)) * 1e-3
        shape_map[3] = 1.0
        out = {}

        def identity():
            out["a"], out["f"] = runner.identity(z, shape_map, 0.7)

        stats = _timed(identity, args.repeat)
        _emit({"bench": "generator", "what": "identity_onnx", "uv_resolution": cfg.uv_resolution,
               "goal_ms": IDENTITY_GOAL_MS, "meets_goal": stats["ms_median"] <= IDENTITY_GOAL_MS, **stats, **machine})
        if args.threads != 1:
            # one thread: wall ~ CPU time on an idle core, an upper bound for the idle 2-thread time
            single = load_runner(path, backend="onnx", threads=1)
            stats = _timed(lambda: single.identity(z, shape_map, 0.7), args.repeat)
            _emit({"bench": "generator", "what": "identity_onnx", "uv_resolution": cfg.uv_resolution,
                   "goal_ms": IDENTITY_GOAL_MS, **stats, **dict(machine, threads=1)})
        cond = rng.standard_normal(cfg.n_cond).astype(np.float32)
        stats = _timed(lambda: runner.deformation(out["f"], cond), args.repeat * 5)
        _emit({"bench": "generator", "what": "deformation_onnx", "deform_resolution": cfg.deform_resolution,
               **stats, **machine})
        _end_to_end(args, path, cfg, machine)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


def _end_to_end(args, path: str, cfg, machine: dict) -> None:
    """Sampling an identity and one frame's residuals on a real head model (when it loads)."""
    from ..errors import GaussianHeadsError

    try:
        from ..head_model import load_head_model

        model = load_head_model(args.model)
    except (GaussianHeadsError, ImportError, AttributeError, OSError) as exc:
        _emit({"bench": "generator", "what": "sample_end_to_end", "skipped": f"head model '{args.model}': {exc}"})
        return
    from .source import CheckpointSource

    t = time.perf_counter()
    source = CheckpointSource(path, model=model, backend="onnx", threads=args.threads)
    open_s = time.perf_counter() - t
    seeds = iter(range(10 ** 6))
    stats = _timed(lambda: source.sample(next(seeds)), max(3, args.repeat // 2), warmup=1)
    _emit({"bench": "generator", "what": "sample_end_to_end", "model": model.name, "n_gaussians": cfg.n_gaussians,
           "open_seconds": round(open_s, 2), **stats, **machine})
    identity = source.sample(0)
    params = identity.neutral_params()
    frames = [np.random.default_rng(i).uniform(0, 0.5, model.n_expr).astype(np.float32) for i in range(64)]
    k = iter(range(10 ** 6))

    def frame():
        params.expr = frames[next(k) % len(frames)]
        identity.deformation.residuals(params)

    stats = _timed(frame, args.repeat * 3)
    _emit({"bench": "generator", "what": "residuals_per_frame", "model": model.name, "n_gaussians": cfg.n_gaussians,
           **stats, **machine})
