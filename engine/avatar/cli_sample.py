"""``python -m engine sample``: sample an identity and write it, neutral-posed, as a 3DGS PLY.

    python -m engine sample --seed 7 --out head.ply
    python -m engine sample --seed 7 --source checkpoint:path/to/checkpoint --out head.ply

The PLY holds the identity's Gaussians at the neutral pose (its own β, zero expression and
pose) in the head model's frame (+Y up, the face looks down +Z, metres). The same seed and
options give a byte-identical file.
"""

from __future__ import annotations

import argparse

from ..errors import GaussianHeadsError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, required=True, help="identity seed (non-negative integer)")
    parser.add_argument("--source", default="builtin",
                        help="identity source: 'builtin' (default), 'checkpoint:PATH' (a bare path "
                             "means a checkpoint), 'gaussian_avatars:FOLDER' (with --model FLAME) or "
                             "'lam:PATH' (a LAM avatar zip)")
    parser.add_argument("--gaussians", type=int, default=None,
                        help="number of Gaussians (built-in source; default 65536)")
    parser.add_argument("--truncation", type=float, default=0.7, help="identity truncation (default 0.7)")
    parser.add_argument("--model", default="open", help="head model for the built-in source (default: open); your FLAME 2023 "
                             "model for gaussian_avatars")
    parser.add_argument("--out", required=True, help="output .ply file")


def make_source(source: str, gaussians: int | None = None, model_spec: str = "open"):
    """The CLI's ``--source`` string -> an opened identity source (``sources.parse_source``)."""
    from .sources import open_source, parse_source

    return open_source(parse_source(source, gaussians, model_spec))


def run(args: argparse.Namespace) -> int:
    from ..io.ply import write_ply

    if args.seed < 0:
        raise GaussianHeadsError(f"--seed must be non-negative, got {args.seed}")
    if not args.out.lower().endswith(".ply"):
        raise GaussianHeadsError(f"--out {args.out}: the output must be a .ply file")
    from .sources import parse_source, sample_identity, spec_label

    spec = parse_source(args.source, args.gaussians, args.model)
    identity = sample_identity(spec, args.seed, truncation=args.truncation)
    gaussians = identity.pose(identity.neutral_params())
    source_name = spec_label(spec)
    write_ply(args.out, gaussians, comments=(
        f"Gaussian Heads identity: source {source_name}, seed {args.seed}, truncation {args.truncation:g}",
        "frame: head model (+Y up, face toward +Z, metres), neutral pose"))
    print(f"wrote {args.out}: {len(gaussians)} Gaussians (seed {args.seed}, source {source_name})")
    return 0
