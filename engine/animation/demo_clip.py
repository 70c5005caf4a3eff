"""A built-in expressive demo clip (``make demo``): a blink, a smile, a jaw open and a head turn.

Every curve is a smooth ease (smoothstep ramps, holds, ramps back), timed as fractions of the clip
so any length works. ARKit-space models get the channels ``eyeBlinkLeft/Right``,
``mouthSmileLeft/Right`` and ``jawOpen`` by name (names the model lacks are skipped) plus a small
jaw rotation; FLAME-space models (PCA expressions without names) are driven by jaw and head pose
only. Head turn: yaw about +Y up to ±0.3 rad with a slight nod about +X.
"""

from __future__ import annotations

import numpy as np

from ..errors import GaussianHeadsError
from .names import normalize_name
from .sequence import ParamSequence


def smoothstep(x: np.ndarray) -> np.ndarray:
    """``3x² − 2x³`` on x clipped to [0, 1]: an ease-in-out ramp with zero slope at both ends."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def ease_bump(u: np.ndarray, rise: float, full: float, fall: float, end: float) -> np.ndarray:
    """0 before ``rise``, eases to 1 at ``full``, holds to ``fall``, eases back to 0 at ``end``."""
    up = smoothstep((u - rise) / max(full - rise, 1e-9))
    down = 1.0 - smoothstep((u - fall) / max(end - fall, 1e-9))
    return up * down


def demo_clip(model, fps: float = 24, frames: int = 48) -> ParamSequence:
    """The demo animation for ``model`` (a HeadModel: ``expr_names``, ``expr_space``).

    Returns a ParamSequence of ``frames`` frames at ``fps`` in the model's channel layout
    (``expr [frames, E]`` with E = the model's expression count).
    """
    frames = int(frames)
    if frames < 2:
        raise GaussianHeadsError("the demo clip needs at least 2 frames")
    names = tuple(model.expr_names)
    space = getattr(model, "expr_space", "arkit")
    u = np.linspace(0.0, 1.0, frames)
    seq = ParamSequence.zeros(frames, names, fps=fps, space=space, source_format="demo_clip")
    expr = seq.expr.copy()
    jaw = seq.jaw.copy()
    global_rot = seq.global_rot.copy()

    blink = np.maximum(ease_bump(u, 0.10, 0.15, 0.17, 0.23), ease_bump(u, 0.80, 0.85, 0.87, 0.93))
    smile = 0.8 * ease_bump(u, 0.20, 0.38, 0.60, 0.80)
    jaw_open = 0.7 * ease_bump(u, 0.45, 0.55, 0.62, 0.74)
    yaw = 0.30 * ease_bump(u, 0.05, 0.30, 0.45, 0.65) - 0.20 * ease_bump(u, 0.60, 0.78, 0.84, 1.0)
    nod = 0.08 * ease_bump(u, 0.40, 0.50, 0.58, 0.70)
    global_rot[:, 1] = yaw
    global_rot[:, 0] = nod

    if space == "arkit":
        index = {normalize_name(n): i for i, n in enumerate(names)}
        for channel, curve in (
            ("eyeBlinkLeft", blink), ("eyeBlinkRight", blink),
            ("mouthSmileLeft", smile), ("mouthSmileRight", smile),
            ("jawOpen", jaw_open),
        ):
            i = index.get(normalize_name(channel))
            if i is not None:
                expr[:, i] = curve
        jaw[:, 0] = 0.15 * jaw_open
    else:
        jaw[:, 0] = 0.35 * jaw_open
    notes = {"demo": "blink, smile, jaw open and head turn (smoothstep eases)"}
    return seq.replace(expr=expr, jaw=jaw, global_rot=global_rot, notes=notes)
