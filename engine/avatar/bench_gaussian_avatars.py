"""``python -m engine bench gaussian-avatars``: GaussianAvatars-format import time and pose time per frame.

Writes a GaussianAvatars folder (``--gaussians`` random face-local Gaussians, a tenth on the
teeth, shape β and static offsets) for a FLAME model, then times ``load_avatar`` (best of
``--repeat``) and ``BoundIdentity.pose`` over ``--frames`` varied frames: wall time, process CPU
time and the 1-minute load average. ``--flame PATH`` uses your FLAME 2023 model; without it a
FLAME-sized stand-in is built from the open head model (a mouth slit cut along the jaw line,
identity/expression/pose bases padded with random values to FLAME 2023's 300 + 100 + 36), so
the arrays have FLAME's sizes but not its shape. One JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import replace

import numpy as np

from ..head_model.model import HeadModel


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gaussians", type=int, default=100_000)
    parser.add_argument("--frames", type=int, default=50, help="posed frames")
    parser.add_argument("--repeat", type=int, default=3, help="imports; the best is reported")
    parser.add_argument("--flame", default="", help="your FLAME 2023 model (default: a FLAME-sized stand-in)")


def flame_stand_in(seed: int = 0) -> HeadModel:
    """The open head model with a mouth opening and FLAME 2023's basis sizes (random extra bases)."""
    from ..head_model import load_head_model

    base = load_head_model("open")
    rng = np.random.default_rng(seed)
    jaw = base.weights[:, 2] > 0.5
    region = base.masks["lips"] | base.masks["mouth_interior"]
    f = base.faces
    slit = (jaw[f].any(1) & ~jaw[f].all(1)) & region[f].all(1)
    n_v = base.n_vertices

    def pad(dirs, n):
        extra = rng.normal(0, 1e-4, (n_v, 3, max(0, n - dirs.shape[2]))).astype(np.float32)
        return np.concatenate([dirs[:, :, :n], extra], axis=2)

    return replace(base, name="open-flame-stand-in", faces=f[~slit], ft=None if base.ft is None else base.ft[~slit],
                   shapedirs=pad(base.shapedirs, 300), exprdirs=pad(base.exprdirs, 100),
                   expr_names=tuple(f"psi{i:02d}" for i in range(100)), expr_space="flame", expr_range=None,
                   posedirs=rng.normal(0, 1e-4, (n_v, 3, 36)).astype(np.float32))


def write_avatar_folder(folder: str, flame: HeadModel, n_gaussians: int, seed: int = 0) -> None:
    """A GaussianAvatars folder for ``flame``: point_cloud.ply (random face-local Gaussians) and
    flame_param.npz (shape, static offsets, 10 frames)."""
    from ..io.ply import write_ply
    from ..head_model.teeth import N_TEETH_FACES, N_TEETH_VERTICES
    from .gaussian_set import GaussianSet

    rng = np.random.default_rng(seed)
    n_faces = flame.faces.shape[0]
    binding = rng.integers(0, n_faces, n_gaussians)
    binding[: n_gaussians // 10] = n_faces + rng.integers(0, N_TEETH_FACES, n_gaussians // 10)
    quats = rng.normal(size=(n_gaussians, 4))
    local = GaussianSet(rng.normal(0, 0.3, (n_gaussians, 3)), rng.normal(-1.0, 0.3, (n_gaussians, 3)),
                        quats / np.linalg.norm(quats, axis=1, keepdims=True), rng.normal(0, 1, n_gaussians),
                        rng.normal(0, 0.5, (n_gaussians, 16, 3)))
    os.makedirs(folder, exist_ok=True)
    write_ply(os.path.join(folder, "point_cloud.ply"), local, extras={"binding_0": binding.astype(np.int32)})
    T = 10
    np.savez(os.path.join(folder, "flame_param.npz"), shape=rng.normal(0, 1, flame.n_shape).astype(np.float32),
             static_offset=rng.normal(0, 1e-3, (1, flame.n_vertices + N_TEETH_VERTICES, 3)).astype(np.float32),
             expr=rng.normal(0, 1, (T, flame.n_expr)).astype(np.float32),
             rotation=np.zeros((T, 3), np.float32), neck_pose=np.zeros((T, 3), np.float32),
             jaw_pose=np.zeros((T, 3), np.float32), eyes_pose=np.zeros((T, 6), np.float32),
             translation=np.zeros((T, 3), np.float32))


def run(args: argparse.Namespace) -> int:
    from ..head_model import load_head_model
    from .bench import demo_frames
    from .gaussian_avatars import load_avatar

    flame = load_head_model(args.flame) if args.flame else flame_stand_in()
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "avatar")
        write_avatar_folder(folder, flame, args.gaussians)
        best = None
        for _ in range(args.repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            identity = load_avatar(folder, args.flame or None, flame=None if args.flame else flame)
            t = (time.perf_counter() - w0, time.process_time() - c0)
            best = t if best is None or t[0] < best[0] else best
    frames = demo_frames(identity.model, n=16)
    identity.pose(frames[0])       # first call: prepared LBS arrays, numba kernels from the cache
    wall, cpu = [], []
    for i in range(args.frames):
        w0, c0 = time.perf_counter(), time.process_time()
        identity.pose(frames[i % len(frames)])
        wall.append((time.perf_counter() - w0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    print(json.dumps({
        "bench": "gaussian-avatars", "flame": flame.name, "vertices": identity.model.n_vertices,
        "faces": int(identity.model.faces.shape[0]), "gaussians": len(identity),
        "import_s": round(best[0], 3), "import_cpu_s": round(best[1], 3),
        "pose_ms_median": round(float(np.median(wall)), 2), "pose_ms_p90": round(float(np.percentile(wall, 90)), 2),
        "pose_cpu_ms_median": round(float(np.median(cpu)), 2), "frames": args.frames,
        "loadavg_1min": round(os.getloadavg()[0], 2), "machine": f"{platform.machine()} {os.cpu_count()} cpus",
    }), flush=True)
    return 0
