"""``python -m engine bench bake``: AGORA-M bake time, peak memory and quality; ``--replay``: baked pose ms.

    python -m engine bench bake                       # N = 5,000, 65,536 Gaussians, K = 64, PSNR report
    python -m engine bench bake --samples 500         # a quick run
    python -m engine bench bake --trainer torch,numpy # both MLP trainers side by side, one line each
    python -m engine bench bake --replay              # BakedIdentity.pose ms per frame (65k, K = 64)
    python -m engine bench bake --replay --baked FILE # ... of a saved bake

With several ``--trainer`` values the bakes run one after the other on the same identity in one
process, after an untimed quick warm-up bake (numba compilation and first-call costs excluded
from every timed bake); ``peak_mb`` is the process peak so far. ``--trainer torch`` needs PyTorch.

``--replay`` also reports ``live_fraction`` (share of the Gaussians the fused kernel blends each
frame; the rest are static and copied from the neutral, see ``blend_kernel``) and
``live_channel_fraction`` (share of the N·C channels blended).

One JSON object per line. Memory is the process's peak resident set size (``ru_maxrss``), which
includes Python, the head model and the identity (and torch once a trainer imported it). Wall and
process CPU seconds are both reported: on a shared machine wall time grows with other jobs.
Goals: bake ≤ 120 s and ≤ 4 GB on 2 cores, held-out PSNR ≥ 35 dB; replay ≤ 5 ms per frame.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", type=int, default=5000, help="posed samples N (default 5000)")
    parser.add_argument("--gaussians", type=int, default=65536, help="Gaussians (default 65536)")
    parser.add_argument("--k", type=int, default=64, help="blendshapes per attribute (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="identity and bake seed (default 0)")
    parser.add_argument("--steps", type=int, default=None, help="MLP steps (default: BakeConfig's)")
    parser.add_argument("--power-iters", type=int, default=None, help="SVD power iterations (default 1)")
    parser.add_argument("--heldout", type=int, default=8, help="held-out frames for the PSNR report")
    parser.add_argument("--no-psnr", action="store_true", help="skip rendering (attribute RMSE only)")
    parser.add_argument("--trainer", default="numpy",
                        help="MLP trainer(s), comma-separated: numpy (default), torch (the reference twin)")
    parser.add_argument("--out", default=None, help="also save the bake here (.npz; the last trainer's)")
    parser.add_argument("--replay", action="store_true", help="time BakedIdentity.pose instead of baking")
    parser.add_argument("--baked", default=None, help="--replay: a saved bake to time (default: a quick bake)")
    parser.add_argument("--repeat", type=int, default=200, help="--replay: frames timed (default 200)")
    parser.add_argument("--mlp-backend", default="auto", choices=("auto", "onnxruntime", "numpy"))


def _machine() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (None, None, None)
    return {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "load_avg_1m": None if load[0] is None else round(load[0], 2)}


def _identity(args):
    from ..avatar.builtin import BuiltinSamplerConfig, BuiltinSource

    return BuiltinSource(config=BuiltinSamplerConfig(n_gaussians=args.gaussians)).sample(args.seed)


def _trainers(args) -> list[str]:
    from ..errors import GaussianHeadsError

    names = [t.strip() for t in str(args.trainer).split(",") if t.strip()]
    bad = [t for t in names if t not in ("numpy", "torch")]
    if not names or bad:
        raise GaussianHeadsError(f"--trainer {args.trainer}: choose from numpy, torch (comma-separated)")
    return names


def run_bakes(args):
    """Yields one ``run_bake`` result per ``--trainer``, on one identity (after a warm-up bake when several)."""
    from .bake import bake
    from .config import BakeConfig, MLPConfig, ReportConfig

    trainers = _trainers(args)
    identity = _identity(args)
    if len(trainers) > 1:
        warm = BakeConfig(mlp=MLPConfig(steps=10), report=ReportConfig(n_heldout=1, psnr=not args.no_psnr))
        bake(identity, max(args.k + 16, 96), args.k, args.seed, config=warm)
    for trainer in trainers:
        yield run_bake(args, trainer, identity)


def run_bake(args, trainer: str = "numpy", identity=None) -> dict:
    from dataclasses import replace

    from .bake import bake
    from .cli import peak_rss_mb
    from .config import BakeConfig, ReportConfig

    cfg = BakeConfig(report=ReportConfig(n_heldout=args.heldout, psnr=not args.no_psnr))
    cfg = replace(cfg, mlp=replace(cfg.mlp, trainer=trainer))
    if args.steps is not None:
        cfg = replace(cfg, mlp=replace(cfg.mlp, steps=args.steps))
    if args.power_iters is not None:
        cfg = replace(cfg, svd=replace(cfg.svd, power_iters=args.power_iters))
    load_before = _machine()["load_avg_1m"]
    identity = _identity(args) if identity is None else identity
    t, c = time.perf_counter(), time.process_time()
    baked = bake(identity, args.samples, args.k, args.seed, config=cfg)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    if args.out:
        baked.save(args.out)
    r = baked.report
    tables = baked.blend_tables()
    return {"bench": "bake", "trainer": trainer, "samples": args.samples, "gaussians": baked.n_gaussians, "k": baked.k,
            "live_fraction": None if tables is None else round(tables.live_fraction, 4),
            "live_channel_fraction": None if tables is None else round(tables.live_channel_fraction, 4),
            "seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
            "seconds_by_stage": {k: round(v, 1) for k, v in r.seconds.items()},
            "svd_passes": r.svd_passes, "mlp_steps": cfg.mlp.steps,
            "peak_mb": peak_rss_mb(), "peak_mb_measure": "ru_maxrss (process peak RSS)",
            "psnr_mean": None if r.psnr_mean is None else round(r.psnr_mean, 2),
            "psnr_min": None if r.psnr_min is None else round(r.psnr_min, 2),
            "psnr_head_mean": None if r.psnr_head_mean is None else round(r.psnr_head_mean, 2),
            "psnr_head_min": None if r.psnr_head_min is None else round(r.psnr_head_min, 2),
            "neck_rmse_mm": None if r.neck_rmse is None else round(r.neck_rmse * 1e3, 3),
            "neck_max_mm": None if r.neck_max is None else round(r.neck_max * 1e3, 3),
            "psnr_by_camera": {k: round(v, 2) for k, v in r.psnr_by_camera.items()},
            "heldout_rmse": {k: float(f"{v:.3g}") for k, v in r.heldout_rmse.items()},
            "heldout_residual_rms": {k: float(f"{v:.3g}") for k, v in r.heldout_residual_rms.items()},
            "captured": {k: round(v, 5) for k, v in r.captured.items()},
            "load_avg_1m_before": load_before, **_machine()}


def replay_frames(baked, n: int = 32, seed: int = 0):
    """``n`` varied frames for the baked identity: sparse expressions, jaw, eyes, neck and head turns."""
    rng = np.random.default_rng(seed)
    frames = []
    e = len(baked.expr_names)
    for _ in range(n):
        p = baked.neutral_params()
        p.expr = (rng.random(e) * 0.6 * (rng.random(e) < 0.2)).astype(np.float32)
        p.jaw = np.array([rng.uniform(0, 0.3), 0, 0], np.float32)
        p.eyes = rng.normal(0, 0.1, (2, 3)).astype(np.float32)
        p.neck = rng.normal(0, 0.05, 3).astype(np.float32)
        p.global_rot = rng.normal(0, 0.1, 3).astype(np.float32)
        frames.append(p)
    return frames


def run_replay(args) -> dict:
    from .baked import BakedIdentity
    from .bake import bake
    from .config import BakeConfig, MLPConfig, ReportConfig

    if args.baked:
        baked = BakedIdentity.load(args.baked)
        made = f"loaded {os.path.basename(args.baked)}"
    else:  # the timing depends on N and K only, not on the bake's quality: a quick bake will do
        cfg = BakeConfig(mlp=MLPConfig(steps=50), report=ReportConfig(n_heldout=0))
        baked = bake(_identity(args), max(args.k + 16, 96), args.k, args.seed, config=cfg)
        made = "quick bake (96 samples, 50 MLP steps): same sizes as a full bake"
    baked.mlp_backend = args.mlp_backend
    frames = replay_frames(baked)
    for p in frames[:3]:
        baked.pose(p)  # warm-up (onnxruntime session, BLAS)
    times, cpu, mlp_t, blend_t = [], [], [], []
    for i in range(args.repeat):
        p = frames[i % len(frames)]
        t0, c0 = time.perf_counter(), time.process_time()
        baked.pose(p)
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    for i in range(min(args.repeat, 50)):
        p = frames[i % len(frames)]
        t0 = time.perf_counter()
        c = baked.coefficients(p)
        t1 = time.perf_counter()
        baked.blend(c, *baked.head_transforms(p))
        mlp_t.append((t1 - t0) * 1e3)
        blend_t.append((time.perf_counter() - t1) * 1e3)
    tables = baked.blend_tables()
    return {"bench": "bake_replay", "what": "BakedIdentity.pose per frame", "gaussians": baked.n_gaussians,
            "k": baked.k, "attributes": list(baked.attributes), "mlp_backend": args.mlp_backend, "source": made,
            "blend_backend": baked.resolved_blend_backend(),
            "live_fraction": None if tables is None else round(tables.live_fraction, 4),
            "live_channel_fraction": None if tables is None else round(tables.live_channel_fraction, 4),
            "ms_median": round(float(np.median(times)), 3), "ms_p90": round(float(np.percentile(times, 90)), 3),
            "cpu_ms_median": round(float(np.median(cpu)), 3),
            "mlp_ms_median": round(float(np.median(mlp_t)), 3), "blend_ms_median": round(float(np.median(blend_t)), 3),
            "repeat": args.repeat, **_machine()}


def baked_pose_case(model, n_gaussians: int):
    """For ``python -m engine bench pose`` (``avatar.bench.pose_cases``): the built-in
    identity on ``model`` with ``n_gaussians``, quickly baked (K = 64, 96 samples; the pose time
    depends on N and K only)."""
    from ..avatar.builtin import BuiltinSamplerConfig, BuiltinSource
    from .bake import bake
    from .config import BakeConfig, MLPConfig, ReportConfig

    identity = BuiltinSource(model, BuiltinSamplerConfig(n_gaussians=n_gaussians)).sample(0)
    return bake(identity, 96, 64, 0, config=BakeConfig(mlp=MLPConfig(steps=50), report=ReportConfig(n_heldout=0)))


def run(args: argparse.Namespace) -> int:
    if args.replay:
        print(json.dumps(run_replay(args)), flush=True)
        return 0
    _trainers(args)  # refuse a bad --trainer before building the identity
    for result in run_bakes(args):
        print(json.dumps(result), flush=True)
    return 0
