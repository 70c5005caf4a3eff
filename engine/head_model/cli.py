"""``python -m engine head-model info [--model open|PATH] [--uv PATH]``: one JSON object describing a model."""

from __future__ import annotations

import argparse
import json

from . import load_head_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="print name, sizes, expression names and joints as one JSON object")
    info.add_argument("--model", default="open", help='"open" (built-in) or a FLAME .pkl/.npz path')
    info.add_argument("--uv", default=None, help="optional UV file for a FLAME model (.obj or FLAME_texture.npz)")


def describe(model) -> dict:
    """The ``info`` JSON object for a HeadModel."""
    from .model import JOINT_NAMES

    return {
        "name": model.name,
        "vertices": model.n_vertices,
        "faces": int(model.faces.shape[0]),
        "n_shape": model.n_shape,
        "n_expr": model.n_expr,
        "expr_names": list(model.expr_names),
        "joints": list(JOINT_NAMES),
        "has_uv": model.has_uv,
        "expr_space": model.expr_space,
        "has_posedirs": model.posedirs is not None,
        "masks": sorted(model.masks),
        "frame": model.frame,
    }


def run(args: argparse.Namespace) -> int:
    model = load_head_model(args.model, uv_path=args.uv) if args.model != "open" else load_head_model("open")
    print(json.dumps(describe(model)))
    return 0
