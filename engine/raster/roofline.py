"""What the CPU rasterizer does per frame, and what the machine could do: the roofline's numbers.

* ``stage_times``: process CPU and wall ms of the cpu backend's three stages (projection, sort +
  tile binning, blending) on one scene.
* ``count_fragments``: the blending work, counted by a plain scalar walk over the same tile
  lists under the rules of ``common.py``: fragments blended (pixel x splat pairs that changed
  the pixel before it stopped), pixel evaluations the vector kernel makes (8 or 16 lanes per box
  row) and splat-tile pairs.
* ``python -m engine bench peak``: the machine's float32 FMA throughput (numba, every thread)
  and its memory copy bandwidth, the two roofs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numba
import numpy as np
from numba import njit, prange

from ..parallel import PARALLEL_LOCK
from . import cpu  # before the kernels below: it sets numba's cache folder and OpenMP's wait policy
from .common import ALPHA_THRESHOLD, MAX_ALPHA, T_MIN, TILE, prepare
from .cpu_tiles import B, HALF_A, HALF_C, OPACITY, SMAX, U, V, X0, X1, Y0, Y1


@njit(cache=True)
def _count(offsets, ids, par, tiles_x, width, height):
    """(fragments blended, lane evaluations, tile entries reached) over every tile, float64."""
    blended = lanes = reached = 0
    for t in range(offsets.shape[0] - 1):
        px0, py0 = (t % tiles_x) * TILE, (t // tiles_x) * TILE
        trans = np.ones((TILE, TILE))
        live = np.zeros((TILE, TILE), np.bool_)
        live[: min(TILE, height - py0), : min(TILE, width - px0)] = True
        since_check = 0
        for k in range(offsets[t], offsets[t + 1]):
            s = par[ids[k]]
            x0, x1 = max(int(s[X0]), px0), min(int(s[X1]), px0 + TILE - 1, width - 1)
            y0, y1 = max(int(s[Y0]), py0), min(int(s[Y1]), py0 + TILE - 1, height - 1)
            reached += 1
            lanes += (y1 - y0 + 1) * (8 if x1 - x0 < 8 else TILE)
            for j in range(y0, y1 + 1):
                for i in range(x0, x1 + 1):
                    r, q = j - py0, i - px0
                    dx, dy = s[U] - (i + 0.5), s[V] - (j + 0.5)
                    sigma = s[HALF_A] * dx * dx + s[B] * dx * dy + s[HALF_C] * dy * dy
                    if not live[r, q] or sigma < 0.0 or sigma > s[SMAX]:
                        continue
                    alpha = min(MAX_ALPHA, s[OPACITY] * np.exp(-sigma))
                    if alpha < ALPHA_THRESHOLD:
                        continue
                    if trans[r, q] * (1.0 - alpha) <= T_MIN:
                        live[r, q] = False
                        continue
                    trans[r, q] *= 1.0 - alpha
                    blended += 1
            since_check += 1
            if since_check == 16:   # the kernel's tile-level stop
                since_check = 0
                if not live.any():
                    break
    return blended, lanes, reached


def count_fragments(gaussians, camera, width: int, height: int, mode: str = "antialiased",
                    sh_degree: int | None = None) -> dict:
    """The blending work of one frame: {"visible", "tile_entries", "entries_reached",
    "fragments", "fragments_per_pixel", "lane_evaluations"} (see the module docstring)."""
    inp = prepare(gaussians, camera, width, height, (0.0, 0.0, 0.0), mode, sh_degree)
    with PARALLEL_LOCK:
        par, tiles = cpu.project(inp)
        visible = int((tiles[:, 0] <= tiles[:, 1]).sum())
        offsets, ids = cpu.bin_splats(par, tiles, inp.width, inp.height)
        blended, lanes, reached = _count(offsets, ids, par, (inp.width + TILE - 1) // TILE, inp.width, inp.height)
    return {"visible": visible, "tile_entries": int(offsets[-1]), "entries_reached": int(reached),
            "fragments": int(blended), "fragments_per_pixel": round(blended / (inp.width * inp.height), 2),
            "lane_evaluations": int(lanes)}


def stage_times(gaussians, camera, width: int, height: int, repeats: int, mode: str = "antialiased",
                sh_degree: int | None = None) -> dict:
    """Median process CPU ms and wall ms of the cpu backend's stages over ``repeats`` frames."""
    inp = prepare(gaussians, camera, width, height, (0.0, 0.0, 0.0), mode, sh_degree)
    clock = lambda: (time.perf_counter(), time.process_time())  # noqa: E731
    rows: dict[str, list] = {"project": [], "sort_bin": [], "blend": []}
    with PARALLEL_LOCK:
        for i in range(repeats + 1):            # the first frame warms up
            t0 = clock()
            par, tiles = cpu.project(inp)
            t1 = clock()
            lists = cpu.bin_splats(par, tiles, inp.width, inp.height)
            t2 = clock()
            cpu.composite(par, lists, inp.width, inp.height, inp.background)
            t3 = clock()
            if i:
                for name, (a, b) in zip(rows, ((t0, t1), (t1, t2), (t2, t3))):
                    rows[name].append(((b[0] - a[0]) * 1e3, (b[1] - a[1]) * 1e3))
    return {f"{name}_{kind}_ms": round(statistics.median(v[j] for v in values), 3)
            for name, values in rows.items() for j, kind in ((1, "cpu"), (0, "wall"))}


# --- the machine's roofs ----------------------------------------------------------------------

_FMA_LANES = 128   # 8 AVX-512 or 16 AVX2 registers of independent chains: enough to hide latency


@njit(parallel=True, fastmath={"contract"}, cache=True)   # contract: a * b + c as one FMA, nothing else
def _fma_probe(out, iterations):
    """out[t] = a sum of _FMA_LANES chains of ``iterations`` float32 multiply-adds each, per thread."""
    for t in prange(out.shape[0]):
        acc = np.empty(_FMA_LANES, np.float32)
        for lane in range(_FMA_LANES):
            acc[lane] = np.float32(lane)
        for _ in range(iterations):
            for lane in range(_FMA_LANES):
                acc[lane] = acc[lane] * np.float32(0.999999) + np.float32(1e-6)
        out[t] = acc.sum()


@njit(parallel=True, cache=True)
def _copy_probe(dst, src, chunks):
    step = src.shape[0] // chunks
    for c in prange(chunks):
        dst[c * step:(c + 1) * step] = src[c * step:(c + 1) * step]


def fma_gflops(threads: int, iterations: int = 1_000_000) -> tuple[float, float]:
    """(GFLOP/s of wall time, GFLOP/s per CPU-second) of float32 FMAs on ``threads`` threads."""
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        out = np.zeros(threads, np.float32)
        with PARALLEL_LOCK:
            _fma_probe(out, 10)
            wall, cpu = time.perf_counter(), time.process_time()
            _fma_probe(out, iterations)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        numba.set_num_threads(previous)
    flops = 2.0 * _FMA_LANES * iterations * threads
    return flops / wall / 1e9, flops / cpu / 1e9


def copy_gbps(threads: int, megabytes: int = 256, repeats: int = 5) -> float:
    """Best memory copy bandwidth in GB/s (bytes read + bytes written) on ``threads`` threads."""
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    src = np.ones(megabytes * 2**20 // 4, np.float32)
    dst = np.empty_like(src)
    best = np.inf
    try:
        with PARALLEL_LOCK:
            _copy_probe(dst, src, threads)
            for _ in range(repeats):
                start = time.perf_counter()
                _copy_probe(dst, src, threads)
                best = min(best, time.perf_counter() - start)
    finally:
        numba.set_num_threads(previous)
    return 2 * src.nbytes / best / 1e9


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--megabytes", type=int, default=256, help="copy probe size (default 256 MB)")


def run(args: argparse.Namespace) -> int:
    """``python -m engine bench peak``: one JSON line per thread count."""
    for threads in range(1, numba.get_num_threads() + 1):
        gflops, per_cpu = fma_gflops(threads)
        print(json.dumps({"threads": threads, "fma_gflops": round(gflops, 1),
                          "fma_gflops_per_cpu_second": round(per_cpu, 1),
                          "copy_gbps": round(copy_gbps(threads, args.megabytes), 1),
                          "load": [round(x, 2) for x in os.getloadavg()]}), flush=True)
    return 0
