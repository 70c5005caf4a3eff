"""Export the identity and deformation branches to two ONNX files (torch needed here only).

identity.onnx     inputs  z [1, z_dim] float32, truncation [1] float32, shape_map [1, 4, R, R] float32
                  outputs attributes [1, attr_channels, R, R], features [1, Cf, r, r]
deformation.onnx  inputs  features [1, Cf, r, r], condition [1, n_cond]
                  outputs residuals [1, 11, r, r]
Shapes are fixed (batch 1); weights are embedded (``external_data=False``); opset 18.
Constant noise buffers are baked in (noise_mode "const"), so the ONNX branches are deterministic.
The identity branch takes the shape as a UV map rather than β: the map is built in numpy from the
head model (``uvmap.shape_uv_map``), so the graph holds no head-model data and works with any
UV-mapped model; its per-sample variance normalisation and per-block pooling are in the graph.

Run ``python -m engine.generator.onnx_export CHECKPOINT [OUT]`` to add the ONNX pair to a
checkpoint (or write an ONNX-only checkpoint folder / .zip at OUT).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import warnings

from ..errors import GaussianHeadsError
from .config import SHAPE_MAP_CHANNELS
from .onnx_runtime import DEFORMATION_INPUTS, DEFORMATION_OUTPUTS, IDENTITY_INPUTS, IDENTITY_OUTPUTS

OPSET = 18


def _export(module, args: tuple, input_names, output_names) -> bytes:
    import torch

    quiet = logging.getLogger("torch.onnx")  # silences "torchvision is not installed" notices
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return _export_quiet(torch, module, args, input_names, output_names)
    finally:
        quiet.setLevel(level)


def _export_quiet(torch, module, args, input_names, output_names) -> bytes:
    with tempfile.TemporaryDirectory(prefix="gh_onnx_") as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        path = os.path.join(tmp, "branch.onnx")
        torch.onnx.export(module, args, path, input_names=list(input_names), output_names=list(output_names),
                          opset_version=OPSET, dynamo=True, external_data=False, optimize=True, verbose=False)
        extra = [n for n in os.listdir(tmp) if n != "branch.onnx"]
        if extra:
            raise GaussianHeadsError(f"ONNX export wrote external data files {extra}; expected one file")
        with open(path, "rb") as fh:
            data = fh.read()
    if not data:
        raise GaussianHeadsError("ONNX export produced no data")
    return data


def export_branches(generator) -> tuple[bytes, bytes]:
    """Serialise (identity.onnx, deformation.onnx) of a ``networks.Generator`` as bytes."""
    import torch

    from .networks import IdentityBranch

    cfg = generator.config
    generator = generator.eval()
    r = cfg.uv_resolution
    z = torch.zeros(1, cfg.z_dim)
    psi = torch.ones(1)
    shape_map = torch.zeros(1, SHAPE_MAP_CHANNELS, r, r)
    identity = _export(IdentityBranch(generator).eval(), (z, psi, shape_map), IDENTITY_INPUTS, IDENTITY_OUTPUTS)
    rd = cfg.deform_resolution
    features = torch.zeros(1, cfg.feature_channels, rd, rd)
    condition = torch.zeros(1, cfg.n_cond)
    deformation = _export(generator.deformation.eval(), (features, condition), DEFORMATION_INPUTS,
                          DEFORMATION_OUTPUTS)
    return identity, deformation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="generator checkpoint (folder, .zip, or .safetensors)")
    parser.add_argument("out", nargs="?", default=None,
                        help="write here instead of adding the ONNX files to CHECKPOINT "
                             "(a folder, or a path ending in .zip)")
    parser.add_argument("--onnx-only", action="store_true", help="leave the safetensors weights out of OUT")


def run(args: argparse.Namespace) -> int:
    from .checkpoint import load_generator_torch, save_checkpoint

    generator, meta, _ = load_generator_torch(args.checkpoint)
    out = args.out or (args.checkpoint if os.path.isdir(args.checkpoint) else None)
    if out is None:
        raise GaussianHeadsError("give an output folder or .zip (the checkpoint is not a folder)")
    save_checkpoint(generator, out, meta=meta, onnx=True, safetensors=not args.onnx_only)
    print(out)
    return 0


if __name__ == "__main__":
    _p = argparse.ArgumentParser(prog="python -m engine.generator.onnx_export", description=__doc__.splitlines()[0])
    add_arguments(_p)
    try:
        sys.exit(run(_p.parse_args()))
    except GaussianHeadsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
