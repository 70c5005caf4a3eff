"""Make docs/lam_and_builtin.png: a LAM avatar and a built-in avatar driven by the same take.

The LAM avatar is a built-in identity (seed 7) exported with ``write_lam_zip`` and imported back
with ``read_lam_zip`` (no real person's avatar); the built-in avatar is seed 3. Both play frames of
``demo_clip`` (the same take), rendered on the CPU. Run from the repository root:
``.venv/bin/python tools/make_lam_picture.py``.
"""

from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.animation.demo_clip import demo_clip  # noqa: E402
from engine.avatar.builtin import BuiltinSamplerConfig, BuiltinSource  # noqa: E402
from engine.io.lam import read_lam_zip, write_lam_zip  # noqa: E402
from engine.raster.cli_render import render_identity  # noqa: E402

TILE = 192
FRAMES = (0, 10, 20, 30, 40)


def params_at(identity, take, t):
    p = identity.neutral_params()
    idx = [take.expr_names.index(n) for n in identity.model.expr_names]
    p.expr[:] = take.expr[t, idx]
    p.jaw[:], p.neck[:], p.global_rot[:] = take.jaw[t], take.neck[t], take.global_rot[t]
    p.eyes[:] = take.eyes[t]
    return p


def main() -> None:
    from PIL import Image

    source = BuiltinSource(config=BuiltinSamplerConfig(n_gaussians=40_000))
    with tempfile.TemporaryDirectory() as tmp:
        write_lam_zip(source.sample(7), os.path.join(tmp, "seed7.zip"))
        lam = read_lam_zip(os.path.join(tmp, "seed7.zip")).identity
    builtin = source.sample(3)
    take = demo_clip(builtin.model)
    sheet = Image.new("RGB", (TILE * len(FRAMES), TILE * 2))
    for row, identity in enumerate((lam, builtin)):
        for col, t in enumerate(FRAMES):
            rgb = render_identity(identity, params_at(identity, take, t), TILE, TILE, yaw=20.0,
                                  background=(0.16, 0.17, 0.2), fill=0.8)
            sheet.paste(Image.fromarray(rgb), (col * TILE, row * TILE))
    out = os.path.join("docs", "lam_and_builtin.png")
    sheet.save(out, optimize=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
