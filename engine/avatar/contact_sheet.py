"""A contact sheet of built-in identities (the README picture, ``docs/sample_heads.png``).

    .venv/bin/python -m engine.avatar.contact_sheet --out docs/sample_heads.png

Top: eight seeds seen from the front. Bottom: two of them from the front, three-quarter and
profile, and with an expression (jaw open, smile). CPU renderer; a few seconds per tile on 2 cores.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ..errors import GaussianHeadsError


def _tile(identity, params, size: int, yaw: float, background) -> np.ndarray:
    from ..raster.cli_render import render_identity

    return render_identity(identity, params, size, size, yaw=yaw, background=background, fill=0.8)


def build_sheet(seeds=(0, 1, 2, 3, 4, 5, 6, 7), detail=(1, 4), size: int = 240,
                background=(0.2, 0.2, 0.22), model_spec: str = "open") -> np.ndarray:
    """-> [H, W, 3] uint8 picture: a row of ``seeds`` (front view, 4 per row), then for each seed
    in ``detail``: front, three-quarter, profile and an expression."""
    from PIL import Image, ImageDraw

    from .builtin import BuiltinSource

    source = BuiltinSource(model_spec=model_spec)
    model = source.model
    cols = 4
    tiles, labels = [], []
    for seed in seeds:
        ident = source.sample(seed)
        tiles.append(_tile(ident, ident.neutral_params(), size, 0.0, background))
        labels.append(f"seed {seed}")
    for seed in detail:
        ident = source.sample(seed)
        for yaw, name in ((0.0, "front"), (35.0, "three-quarter"), (90.0, "profile")):
            tiles.append(_tile(ident, ident.neutral_params(), size, yaw, background))
            labels.append(f"seed {seed}, {name}")
        p = ident.neutral_params()
        for channel, value in (("jawOpen", 0.45), ("mouthSmileLeft", 0.7), ("mouthSmileRight", 0.7),
                               ("browInnerUp", 0.5)):
            if channel in model.expr_names:
                p.expr[model.expr_names.index(channel)] = value
        p.jaw[0] = 0.12
        tiles.append(_tile(ident, p, size, 20.0, background))
        labels.append(f"seed {seed}, expression")
    rows = -(-len(tiles) // cols)
    sheet = np.zeros((rows * size, cols * size, 3), np.uint8)
    sheet[:] = np.round(np.asarray(background) * 255).astype(np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * size:(r + 1) * size, c * size:(c + 1) * size] = tile
    img = Image.fromarray(sheet)
    draw = ImageDraw.Draw(img)
    for i, label in enumerate(labels):
        r, c = divmod(i, cols)
        draw.text((c * size + 6, r * size + 4), label, fill=(200, 200, 200))
    return np.asarray(img)


def main(argv: list[str] | None = None) -> int:
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", type=int, default=240)
    args = parser.parse_args(argv)
    try:
        Image.fromarray(build_sheet(size=args.size)).save(args.out, format="PNG", optimize=True)
    except GaussianHeadsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
