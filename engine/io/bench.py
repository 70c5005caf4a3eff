"""``python -m engine bench splat-io``: read and write times of every splat format.

Writes ``--count`` random Gaussians (SH degree ``--degree``) to a temporary folder in each
format, then times write and read, best of ``--repeat``, with wall and process CPU time and
the 1-minute load average beside them (the machine is shared). ``--plyfile`` adds the
``plyfile`` package's read and write of the same PLY, when it is installed, for comparison with
our own PLY code. Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from ..avatar.gaussian_set import GaussianSet
from . import FORMATS
from .ply import fill_vertex_table, vertex_names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=100_000, help="Gaussians")
    parser.add_argument("--degree", type=int, default=3, choices=(0, 1, 2, 3), help="SH degree")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best is reported")
    parser.add_argument("--plyfile", action="store_true", help="also time the plyfile package")


def random_set(n: int, degree: int, seed: int = 0) -> GaussianSet:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return GaussianSet(rng.normal(size=(n, 3)), rng.uniform(-7, -2, (n, 3)), q, rng.normal(size=n),
                       rng.uniform(-0.5, 0.5, (n, (degree + 1) ** 2, 3)))


def _best(fn, repeat: int) -> tuple[float, float]:
    """(best wall ms, its process CPU ms)."""
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = (time.perf_counter() - w) * 1e3, (time.process_time() - c) * 1e3
        best = min(best, (wall, cpu))
    return best


def _plyfile_pair(path: str, g: GaussianSet):
    """plyfile doing what ``write_ply``/``read_ply`` do: fields <-> GaussianSet, file I/O."""
    from plyfile import PlyData, PlyElement

    k = g.sh.shape[1]
    names = vertex_names(k)

    def write():
        table = np.zeros(len(g), [(n, "<f4") for n in names])
        fill_vertex_table(table, g)
        PlyData([PlyElement.describe(table, "vertex")]).write(path + ".plyfile.ply")

    def read():
        v = PlyData.read(path)["vertex"]
        col = {n: np.asarray(v[n], np.float32) for n in names}
        sh = np.stack([np.stack([col[f"f_dc_{c}"]] + [col[f"f_rest_{c * (k - 1) + j - 1}"]
                                                       for j in range(1, k)], 1) for c in range(3)], 2)
        return GaussianSet(np.stack([col["x"], col["y"], col["z"]], 1),
                           np.stack([col[f"scale_{i}"] for i in range(3)], 1),
                           np.stack([col[f"rot_{i}"] for i in range(4)], 1), col["opacity"], sh)

    return write, read


def run(args: argparse.Namespace) -> int:
    g = random_set(args.count, args.degree)
    with tempfile.TemporaryDirectory() as folder:
        for fmt in FORMATS.values():
            path = os.path.join(folder, "bench" + fmt.extensions[0])
            write_ms, write_cpu = _best(lambda: fmt.write(path, g), args.repeat)
            read_ms, read_cpu = _best(lambda: fmt.read(path), args.repeat)
            print(json.dumps({"format": fmt.name, "count": args.count, "sh_degree": args.degree,
                              "bytes": os.path.getsize(path), "write_ms": round(write_ms, 1),
                              "write_cpu_ms": round(write_cpu, 1), "read_ms": round(read_ms, 1),
                              "read_cpu_ms": round(read_cpu, 1), "load1": os.getloadavg()[0]}))
            if fmt.name == "ply" and args.plyfile:
                write, read = _plyfile_pair(path, g)
                write_ms, write_cpu = _best(write, args.repeat)
                read_ms, read_cpu = _best(read, args.repeat)
                print(json.dumps({"format": "ply (plyfile package)", "count": args.count,
                                  "write_ms": round(write_ms, 1), "write_cpu_ms": round(write_cpu, 1),
                                  "read_ms": round(read_ms, 1), "read_cpu_ms": round(read_cpu, 1),
                                  "load1": os.getloadavg()[0]}))
    return 0
