"""``python -m engine bench <what>``: speed and memory benchmarks, one JSON object per line.

Each benchmark lives beside the code it measures, as a module with ``add_arguments(parser)`` and
``run(args) -> int``; this module only dispatches.
"""

from __future__ import annotations

import argparse
import importlib

BENCHES: dict[str, tuple[str, str]] = {
    "render": ("raster.bench", "render backends: ms per frame and FPS"),
    "peak": ("raster.roofline", "the machine's roofs: float32 FMA GFLOP/s and memory copy GB/s"),
    "pose": ("avatar.bench", "posing an identity (full model and baked) per frame"),
    "import": ("animation.bench", "parsing and resampling a large capture take"),
    "head-model": ("head_model.bench", "head-model forward pass, numpy and batched torch"),
    "sample": ("avatar.bench_sample", "built-in identity sampling"),
    "generator": ("generator.bench", "ONNX identity and deformation branches"),
    "bake": ("bake.bench", "AGORA-M bake time, peak memory and quality"),
    "sh-rotate": ("avatar.bench_sh_rotation", "turning SH colour with an avatar's transform"),
    "splat-io": ("io.bench", "reading and writing PLY, SPZ and .splat files"),
    "lam": ("io.bench_lam", "LAM avatar zip: import time and pose time per frame"),
    "gaussian-avatars": ("avatar.bench_gaussian_avatars", "GaussianAvatars-format avatar: import and pose per frame"),
    "live": ("live.bench", "live capture: packet-to-slider latency and dropped frames over loopback"),
    "train": ("train.bench", "generator training on the synthetic dataset: SWD and expression control, steps/s"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=sorted(BENCHES), help="which benchmark")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own options")


def run(args: argparse.Namespace) -> int:
    module_name, help_text = BENCHES[args.what]
    module = importlib.import_module(f".{module_name}", __package__)
    parser = argparse.ArgumentParser(prog=f"python -m engine bench {args.what}", description=help_text)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(args.rest)) or 0)
