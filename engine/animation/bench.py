"""``python -m engine bench import``: parse + resample + map a large Live Link Face take.

Writes a synthetic take (``--frames`` rows × 61 channels at 60 fps timecodes, 10 decimals, the
app's layout) to a temporary folder, then times, best of ``--repeat``: streaming parse, resampling
to ``--scene-fps`` and mapping onto an ARKit-52 target by name; and the parse's peak traced
memory against the file size. Wall times and the process CPU time of the whole (what an idle
machine's wall time would be when other jobs share the cores). Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import tracemalloc

import numpy as np

from .formats.livelink import read_live_link_csv, write_live_link_csv
from .mapping import TargetSpec, map_sequence
from .names import ARKIT_NAMES
from .sequence import ParamSequence


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=10_000, help="rows in the synthetic take")
    parser.add_argument("--scene-fps", type=float, default=24.0, help="rate to resample to")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is reported")


def synthetic_take(n_frames: int, fps: float = 60.0, seed: int = 0) -> ParamSequence:
    """Smooth random ARKit curves plus head/eye motion, ``n_frames`` frames at ``fps``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / fps
    freqs = rng.uniform(0.1, 2.0, size=(1, 52))
    phases = rng.uniform(0, 2 * np.pi, size=(1, 52))
    expr = (0.5 + 0.5 * np.sin(t[:, None] * freqs * 2 * np.pi + phases)).astype(np.float32)
    seq = ParamSequence.zeros(n_frames, ARKIT_NAMES, fps=fps, space="arkit", source_format="synthetic")
    head = np.stack([0.3 * np.sin(t * 0.7), 0.1 * np.sin(t * 1.3), 0.05 * np.sin(t * 0.4)], axis=1)
    eyes = np.stack([0.1 * np.sin(t * 2.1), 0.05 * np.cos(t * 1.7), np.zeros_like(t)], axis=1)
    return seq.replace(expr=expr, global_rot=head.astype(np.float32), eyes=np.stack([eyes, eyes], 1).astype(np.float32))


def run(args: argparse.Namespace) -> int:
    target = TargetSpec(ARKIT_NAMES, "arkit")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "take.csv")
        write_live_link_csv(synthetic_take(args.frames), path)
        size = os.path.getsize(path)
        best = {"parse_s": 1e9, "resample_s": 1e9, "map_s": 1e9, "total_s": 1e9, "total_cpu_s": 1e9}
        for _ in range(max(1, args.repeat)):
            t0, c0 = time.perf_counter(), time.process_time()
            seq = read_live_link_csv(path)
            t1 = time.perf_counter()
            res = seq.resample(args.scene_fps)
            t2 = time.perf_counter()
            mapped, report = map_sequence(res, target)
            t3, c3 = time.perf_counter(), time.process_time()
            best["total_cpu_s"] = min(best["total_cpu_s"], c3 - c0)
            for k, v in (("parse_s", t1 - t0), ("resample_s", t2 - t1), ("map_s", t3 - t2), ("total_s", t3 - t0)):
                best[k] = min(best[k], v)
        tracemalloc.start()
        read_live_link_csv(path)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    print(json.dumps({
        "bench": "import", "machine": f"{platform.machine()} {os.cpu_count()} cpu",
        "load_avg_1m": round(os.getloadavg()[0], 2), "frames": args.frames,
        "columns": 61, "file_mb": round(size / 2**20, 2), "scene_fps": args.scene_fps,
        "out_frames": mapped.n_frames, "mapped_channels": len(report.mapped),
        **{k: round(v, 4) for k, v in best.items()},
        "parse_peak_traced_mb": round(peak / 2**20, 2),
    }))
    return 0
