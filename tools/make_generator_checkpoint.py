"""Write a randomly initialised (seeded) generator checkpoint for tests and demos.

    .venv/bin/python tools/make_generator_checkpoint.py out/generator_random [--small] [--onnx] [--seed 0]

No trained AGORA weights exist for this project yet: training needs multi-view video of many
people and GPUs, and the training loop (with AGORA's dual discriminator) is not part of this
code. The weights written here are random, so sampled "identities" are structured noise bound
to the head mesh; the checkpoint's meta says ``"trained": false``. It exercises every code path
(safetensors + JSON, ONNX export, onnxruntime inference, posing with the deformation branch).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.errors import GaussianHeadsError  # noqa: E402
from engine.generator.checkpoint import save_checkpoint  # noqa: E402
from engine.generator.config import GeneratorConfig, small_config  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output folder, or a path ending in .zip")
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    parser.add_argument("--small", action="store_true", help="small test config (UV 64) instead of the default (UV 256)")
    parser.add_argument("--head-model", default="open", help="head model spec stored in the config")
    parser.add_argument("--n-gaussians", type=int, default=None, help="UV samples per identity")
    parser.add_argument("--onnx", action="store_true", help="also export identity.onnx and deformation.onnx")
    parser.add_argument("--onnx-only", action="store_true", help="write only the ONNX branches (no safetensors)")
    parser.add_argument("--w-avg-samples", type=int, default=10000,
                        help="estimate w_avg from this many random z (0: leave it at zero)")
    args = parser.parse_args(argv)

    import torch

    from engine.generator.networks import build_generator, count_parameters, estimate_w_avg

    changes = {"head_model": args.head_model}
    if args.n_gaussians:
        changes["n_gaussians"] = args.n_gaussians
    config = small_config(**changes) if args.small else GeneratorConfig(**changes)
    t0 = time.perf_counter()
    generator = build_generator(config, seed=args.seed)
    if args.w_avg_samples > 0:
        estimate_w_avg(generator, n=args.w_avg_samples, seed=args.seed)
    meta = {"trained": False, "init_seed": args.seed, "parameters": count_parameters(generator),
            "torch": torch.__version__,
            "note": "randomly initialised weights for tests and demos; no trained AGORA weights exist yet"}
    try:
        save_checkpoint(generator, args.out, meta=meta, onnx=args.onnx or args.onnx_only,
                        safetensors=not args.onnx_only)
    except GaussianHeadsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({count_parameters(generator):,} parameters, {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
