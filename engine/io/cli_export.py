"""``python -m engine export``: write an identity as a LAM avatar zip or a splat file.

    python -m engine export --source builtin --seed 7 --format lam --out head.zip
    python -m engine export --source lam:avatar.zip --format ply --out neutral.ply

``--format lam`` writes the animatable LAM avatar (``engine.io.lam.write_lam_zip``); ``ply``,
``spz`` and ``splat`` write the neutral pose (default: from the extension).
"""

from __future__ import annotations

import argparse

from ..errors import GaussianHeadsError

FORMAT_NAMES = ("lam", "ply", "spz", "splat")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", default="builtin",
                        help="identity source: builtin, checkpoint:PATH, lam:PATH, gaussian_avatars:FOLDER")
    parser.add_argument("--seed", type=int, default=0, help="identity seed (default 0)")
    parser.add_argument("--gaussians", type=int, default=None, help="Gaussians (built-in source)")
    parser.add_argument("--truncation", type=float, default=0.7, help="identity truncation (default 0.7)")
    parser.add_argument("--model", default="open", help="head model for the built-in source (default: open)")
    parser.add_argument("--format", choices=FORMAT_NAMES, default=None,
                        help="lam (a .zip), ply, spz or splat (default: from --out's extension)")
    parser.add_argument("--out", required=True, help="output file")


def run(args: argparse.Namespace) -> int:
    from ..avatar.sources import parse_source, sample_identity, spec_label

    fmt = args.format or ("lam" if args.out.lower().endswith(".zip") else None)
    if args.seed < 0:
        raise GaussianHeadsError(f"--seed must be non-negative, got {args.seed}")
    spec = parse_source(args.source, args.gaussians, args.model)
    identity = sample_identity(spec, args.seed, truncation=args.truncation)
    if fmt == "lam":
        from .lam import write_lam_zip

        write_lam_zip(identity, args.out)
        print(f"wrote {args.out}: LAM avatar, {len(identity.pose(identity.neutral_params()))} Gaussians "
              f"(source {spec_label(spec)}, seed {args.seed})")
        return 0
    from . import write_splats

    gaussians = identity.pose(identity.neutral_params())
    written = write_splats(args.out, gaussians, fmt)
    print(f"wrote {args.out}: {written.label}, {len(gaussians)} Gaussians, neutral pose")
    return 0
