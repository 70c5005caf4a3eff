"""``python -m engine bake``: bake an identity into Gaussian blendshapes (AGORA-M) and save it.

    python -m engine bake --seed 7 --out head_baked.npz --report
    python -m engine bake --seed 7 --source path/to/checkpoint --samples 2000 --k 32 --out b.npz

Prints one JSON object: psnr_mean / psnr_min (dB, held-out frames × 2 cameras, only with
--report; else null), seconds (wall, whole bake), peak_mb (the process's peak resident set size,
``resource.getrusage(RUSAGE_SELF).ru_maxrss``: includes Python and the identity), gaussians,
k, samples and the per-attribute held-out RMSE. The file is written only when the bake succeeds
(atomically: a temporary file renamed into place).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ..errors import GaussianHeadsError


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process in MB (ru_maxrss; KiB on Linux, bytes on macOS)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, required=True, help="identity seed, also seeds the bake")
    parser.add_argument("--source", default="builtin", help="'builtin' (default) or a generator checkpoint path")
    parser.add_argument("--gaussians", type=int, default=None, help="Gaussians (built-in source; default 65536)")
    parser.add_argument("--model", default="open", help="head model of the built-in source (default: open)")
    parser.add_argument("--samples", type=int, default=5000, help="posed parameter samples N (default 5000)")
    parser.add_argument("--k", type=int, default=64, help="blendshapes per attribute K (default 64)")
    parser.add_argument("--steps", type=int, default=None, help="MLP training steps (default 2000)")
    parser.add_argument("--power-iters", type=int, default=None, help="SVD power iterations (default 1)")
    parser.add_argument("--heldout", type=int, default=8, help="held-out frames in the report (default 8)")
    parser.add_argument("--float16", action="store_true", help="store the bases as float16 (half the file)")
    parser.add_argument("--report", action="store_true",
                        help="render held-out frames (full vs baked, 256², cpu) and report PSNR")
    parser.add_argument("--out", required=True, help="output .npz file")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def make_config(args: argparse.Namespace):
    from dataclasses import replace

    from .config import BakeConfig, ReportConfig

    cfg = BakeConfig(report=ReportConfig(n_heldout=max(0, args.heldout), psnr=bool(args.report)),
                     storage_dtype="float16" if args.float16 else "float32")
    if args.steps is not None:
        cfg = replace(cfg, mlp=replace(cfg.mlp, steps=args.steps))
    if args.power_iters is not None:
        cfg = replace(cfg, svd=replace(cfg.svd, power_iters=args.power_iters))
    return cfg


def _progress_printer(quiet: bool):
    if quiet:
        return None
    state = {"last": -1.0, "t": time.perf_counter()}

    def show(fraction: float, text: str) -> None:
        if fraction - state["last"] >= 0.05 or fraction >= 1.0:
            state["last"] = fraction
            print(f"[{time.perf_counter() - state['t']:7.1f} s] {fraction * 100:5.1f}% {text}", file=sys.stderr)

    return show


def run(args: argparse.Namespace) -> int:
    from ..avatar.cli_sample import make_source
    from .bake import bake

    if args.seed < 0:
        raise GaussianHeadsError(f"--seed must be non-negative, got {args.seed}")
    if not args.out.lower().endswith(".npz"):
        raise GaussianHeadsError(f"--out {args.out}: the output must be a .npz file")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise GaussianHeadsError(f"--out {args.out}: folder {out_dir} does not exist")
    config = make_config(args)
    t0 = time.perf_counter()
    identity = make_source(args.source, args.gaussians, args.model).sample(args.seed)
    baked = bake(identity, args.samples, args.k, args.seed, config=config, progress=_progress_printer(args.quiet))
    seconds = time.perf_counter() - t0
    baked.save(args.out)
    r = baked.report
    print(json.dumps({
        "psnr_mean": None if r.psnr_mean is None else round(r.psnr_mean, 2),
        "psnr_min": None if r.psnr_min is None else round(r.psnr_min, 2),
            "psnr_head_mean": None if r.psnr_head_mean is None else round(r.psnr_head_mean, 2),
            "psnr_head_min": None if r.psnr_head_min is None else round(r.psnr_head_min, 2),
            "neck_rmse_mm": None if r.neck_rmse is None else round(r.neck_rmse * 1e3, 3),
            "neck_max_mm": None if r.neck_max is None else round(r.neck_max * 1e3, 3),
        "seconds": round(seconds, 2),
        "seconds_by_stage": {k: round(v, 2) for k, v in r.seconds.items()},
        "peak_mb": peak_rss_mb(),
        "peak_mb_measure": "ru_maxrss (process peak RSS)",
        "gaussians": baked.n_gaussians,
        "k": baked.k,
        "samples": args.samples,
        "heldout_rmse": r.heldout_rmse,
        "captured": r.captured,
        "out": args.out,
        "bytes": os.path.getsize(args.out),
    }))
    return 0
