"""``python -m engine <verb> ...`` (run from the repository root).

Each verb lives in its own module with ``add_arguments(parser)`` and ``run(args) -> int``; the
module is imported only when its verb runs, so ``--help`` stays fast and light.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import GaussianHeadsError

# verb -> (module under engine/, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "head-model": ("head_model.cli", "inspect head models (open model or a FLAME file)"),
    "sample": ("avatar.cli_sample", "sample an identity and write it as a 3DGS PLY"),
    "export": ("io.cli_export", "write an identity as a LAM avatar zip (--format lam) or a splat file"),
    "render": ("raster.cli_render", "render one frame of a sampled identity to PNG (CPU path)"),
    "anim": ("animation.cli", "inspect and convert expression/pose animation files"),
    "bake": ("bake.cli", "bake an identity into Gaussian blendshapes (AGORA-M)"),
    "bench": ("bench", "benchmarks: render, pose, bake, live, train, … (bench --help lists them all)"),
    "live": ("live.cli", "live face capture: record a stream, or send a take as packets"),
    "train": ("train.cli", "train the AGORA generator on a dataset (torch; torchrun for several processes)"),
    "dataset": ("train.cli_dataset", "build or check a training dataset (synthetic, from tracker output)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m engine", description="Gaussian Heads engine")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, (_, help_text) in VERBS.items():
        sub.add_parser(verb, help=help_text, add_help=False)
    if not argv:
        parser.print_usage(sys.stderr)
        print("error: name a verb (python -m engine --help lists them)", file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help") or argv[0] not in VERBS:
        parser.parse_args(argv)  # prints help and exits 0, or reports the unknown verb and exits 2
        return 2
    verb, rest = argv[0], argv[1:]
    module = importlib.import_module(f".{VERBS[verb][0]}", __package__)
    verb_parser = argparse.ArgumentParser(prog=f"python -m engine {verb}", description=VERBS[verb][1])
    module.add_arguments(verb_parser)
    args = verb_parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except GaussianHeadsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
