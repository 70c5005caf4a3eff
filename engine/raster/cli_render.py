"""``python -m engine render``: render one frame of a sampled identity to PNG on the CPU path.

    python -m engine render --seed 7 --width 512 --height 512 --out head.png
    python -m engine render --seed 7 --expr jawOpen=0.6 --expr mouthSmileLeft=0.5 --jaw 0.15 \\
        --yaw 35 --width 512 --height 640 --background 0.1,0.1,0.1 --out head.png

The default camera looks at the face from the front (from +Z in the head model's frame, +Y up)
and frames the neutral head to ``--fill`` of the image height. ``--yaw`` orbits the camera about
the head's vertical axis (positive degrees show the subject's left side; 90 is a profile).
Gaussian colours are display-referred sRGB values (as in every 3DGS PLY), so the rendered image
is written to an 8-bit sRGB PNG as is; ``--background`` is given in the same display values.
"""

from __future__ import annotations

import argparse
import difflib

import numpy as np

from ..errors import GaussianHeadsError


def _parse_background(text: str) -> tuple[float, float, float]:
    t = text.strip()
    try:
        if t.startswith("#") and len(t) == 7:
            return tuple(int(t[i:i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]
        parts = [float(p) for p in t.split(",")]
    except ValueError:
        raise GaussianHeadsError(f"--background {text!r}: give R,G,B in 0..1 or #RRGGBB") from None
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3 or not all(np.isfinite(parts)) or min(parts) < 0 or max(parts) > 1:
        raise GaussianHeadsError(f"--background {text!r}: give R,G,B in 0..1 or #RRGGBB")
    return tuple(parts)  # type: ignore[return-value]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, required=True, help="identity seed")
    parser.add_argument("--source", default="builtin", help="'builtin' (default) or a generator checkpoint path")
    parser.add_argument("--gaussians", type=int, default=None, help="number of Gaussians (built-in source)")
    parser.add_argument("--truncation", type=float, default=0.7)
    parser.add_argument("--expr", action="append", default=[], metavar="NAME=VALUE",
                        help="expression channel value, e.g. jawOpen=0.5 (repeatable)")
    parser.add_argument("--jaw", type=float, default=0.0, help="jaw opening, radians (rotation about +X)")
    parser.add_argument("--yaw", type=float, default=0.0, help="camera orbit about the head's vertical axis, degrees")
    parser.add_argument("--pitch", type=float, default=0.0, help="camera elevation, degrees (positive looks down)")
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--fill", type=float, default=0.85, help="fraction of the image height the head fills")
    parser.add_argument("--background", default="0.0,0.0,0.0", help="R,G,B in 0..1 or #RRGGBB (default black)")
    parser.add_argument("--mode", default="antialiased", choices=("antialiased", "classic"))
    parser.add_argument("--out", required=True, help="output .png file")


def parse_expressions(model, items: list[str]) -> np.ndarray:
    """['jawOpen=0.5', ...] -> expr [E] for ``model`` (unknown names raise with suggestions)."""
    expr = np.zeros(model.n_expr, np.float32)
    names = list(model.expr_names)
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise GaussianHeadsError(f"--expr {item!r}: expected NAME=VALUE")
        try:
            v = float(value)
        except ValueError:
            raise GaussianHeadsError(f"--expr {item!r}: {value!r} is not a number") from None
        if not np.isfinite(v):
            raise GaussianHeadsError(f"--expr {item!r}: the value must be finite")
        if name not in names:
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; channels: {', '.join(names[:8])}, ..."
            raise GaussianHeadsError(f"--expr: head model '{model.name}' has no channel '{name}'{hint}")
        expr[names.index(name)] = v
    return expr


def head_camera(means: np.ndarray, width: int, height: int, yaw_deg: float = 0.0, pitch_deg: float = 0.0,
                fill: float = 0.85):
    """A camera orbiting the head (means [N, 3], model frame) at ``yaw``/``pitch`` degrees,
    framing the central 98% of the Gaussians to ``fill`` of the image height. -> Camera."""
    from .camera import Camera, look_at

    means = np.asarray(means, np.float64)
    if means.ndim != 2 or means.shape[0] == 0:
        raise GaussianHeadsError("nothing to frame: no Gaussians")
    lo, hi = np.percentile(means, 1, axis=0), np.percentile(means, 99, axis=0)
    centre = (lo + hi) / 2
    radius_xz = float(np.percentile(np.linalg.norm((means - centre)[:, [0, 2]], axis=1), 99))
    extent = max(float(hi[1] - lo[1]), 2 * radius_xz * height / max(width, 1), 1e-3)
    focal = 2.5 * height                                     # ~22 degrees vertical field of view
    distance = focal * extent / (fill * height) + radius_xz
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    direction = np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
    w2c = look_at(centre + distance * direction, centre, up=(0.0, 1.0, 0.0))
    return Camera(w2c, focal, focal, width / 2, height / 2, int(width), int(height), near=0.01,
                  far=distance + 10.0)


def render_identity(identity, params, width: int, height: int, yaw: float = 0.0, pitch: float = 0.0,
                    background=(0.0, 0.0, 0.0), fill: float = 0.85, mode: str = "antialiased") -> np.ndarray:
    """Pose ``identity`` with ``params`` and render on the CPU -> [H, W, 3] uint8 sRGB image."""
    from . import render

    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise GaussianHeadsError(f"image size {width}x{height} is outside 16..8192 pixels")
    neutral = identity.pose(identity.neutral_params())
    camera = head_camera(neutral.means, width, height, yaw, pitch, fill)
    gaussians = identity.pose(params)
    result = render(gaussians, camera, width, height, tuple(background), mode=mode, backend="cpu")
    rgb = np.clip(np.asarray(result.rgba)[..., :3], 0.0, 1.0)
    return np.round(rgb * 255.0).astype(np.uint8)


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from ..avatar.cli_sample import make_source

    if not args.out.lower().endswith(".png"):
        raise GaussianHeadsError(f"--out {args.out}: the output must be a .png file")
    background = _parse_background(args.background)
    if not 0.05 <= args.fill <= 1.5:
        raise GaussianHeadsError(f"--fill must lie in 0.05..1.5, got {args.fill}")
    src = make_source(args.source, args.gaussians)
    identity = src.sample(args.seed, truncation=args.truncation)
    params = identity.neutral_params()
    params.expr = parse_expressions(identity.model, args.expr)
    params.jaw = np.array([args.jaw, 0.0, 0.0], np.float32)
    image = render_identity(identity, params, args.width, args.height, args.yaw, args.pitch, background,
                            args.fill, args.mode)
    try:
        Image.fromarray(image, "RGB").save(args.out, format="PNG")
    except OSError as exc:
        raise GaussianHeadsError(f"{args.out}: cannot write the image: {exc}") from None
    print(f"wrote {args.out}: {args.width}x{args.height}, seed {args.seed}")
    return 0
