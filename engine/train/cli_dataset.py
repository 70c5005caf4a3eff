"""``python -m engine dataset``: build and check training datasets (format: docs/TRAINING.md).

    python -m engine dataset synthetic OUT [--identities 16 --views 16 --resolution 64 …]
    python -m engine dataset from-tracker OUT --images DIR --params TRACKER_OUTPUT [--fov 20 …]
    python -m engine dataset from-tracker OUT --transforms EXPORT_FOLDER [--heldout-splits val test]
    python -m engine dataset check DATASET
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    syn = sub.add_parser("synthetic", help="render built-in identities with random expressions, poses, cameras")
    syn.add_argument("out")
    syn.add_argument("--model", default="open", help="head model: open or a FLAME file")
    from .synthetic import SyntheticConfig

    for f in dataclasses.fields(SyntheticConfig):
        if f.name != "background":
            syn.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=type(f.default), default=f.default)
    trk = sub.add_parser("from-tracker", help="image folder + VHAP/GaussianAvatars, SMIRK or EMOCA tracker output, or a multi-view NeRF-style export")
    from .tracker import add_tracker_arguments

    add_tracker_arguments(trk)
    chk = sub.add_parser("check", help="validate a dataset folder and print its summary")
    chk.add_argument("dataset")


def run(args: argparse.Namespace) -> int:
    if args.action == "synthetic":
        from .synthetic import SyntheticConfig, build_synthetic

        names = [f.name for f in dataclasses.fields(SyntheticConfig) if f.name != "background"]
        cfg = SyntheticConfig(**{n: getattr(args, n) for n in names})

        def progress(i, total):
            if i % 50 == 0 or i == total:
                print(f"\r{i}/{total} images", end="\n" if i == total else "", file=sys.stderr, flush=True)

        print(build_synthetic(args.out, cfg, model_spec=args.model, progress=progress))
        return 0
    if args.action == "from-tracker":
        from .tracker import run_tracker_builder

        return run_tracker_builder(args)
    from .dataset import SPLIT_HELDOUT, SPLIT_TRAIN, open_dataset

    ds = open_dataset(args.dataset)
    print(json.dumps({"dataset": ds.root, "description": ds.description, "images": len(ds),
                      "train": int(len(ds.indices(SPLIT_TRAIN))), "heldout": int(len(ds.indices(SPLIT_HELDOUT))),
                      "image_size": [ds.width, ds.height], "head_model": ds.model_info}))
    return 0
