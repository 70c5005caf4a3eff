"""Fitting imported curves to an avatar: range alignment, value scale and retiming.

"Align to avatar range" follows the idea of RAM-Avatar's motion-distribution alignment: an avatar
only behaves well for expression values like the ones it was built or trained on, so values
outside that range are brought back in, without changing timing or direction of motion:

* ``clip``: values are clamped to ``[lo, hi]``.
* ``soft`` (default): a tanh knee outside the range. Values inside ``[lo, hi]`` are unchanged
  (the neutral 0 of an ARKit channel stays exactly 0); a value beyond the upper bound ``hi``
  becomes ``hi + w·tanh((x − hi) / w)`` with ``w = knee · (hi − lo)`` (mirrored below ``lo``), so
  overshoot is compressed smoothly and never exceeds ``w``. The curve is continuous with slope 1
  at the bound and strictly increasing, so the motion keeps its timing and direction. (A knee
  inside the range would have to move values at the bound itself, e.g. lift every neutral 0.)

The range per channel comes from the model (``HeadModel.expr_range [E, 2]``) or from statistics
the avatar was sampled/trained on: ``mean ± k·std``. Channels with no finite range are left alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import GaussianHeadsError
from .sequence import ParamSequence

ALIGN_MODES = ("clip", "soft")


@dataclass(frozen=True)
class AlignOptions:
    mode: str = "soft"  # "clip" or "soft"
    knee: float = 0.1  # soft mode: largest overshoot allowed, as a fraction of each channel's range
    k_std: float = 2.5  # statistics ranges: mean ± k_std · std

    def __post_init__(self) -> None:
        if self.mode not in ALIGN_MODES:
            raise GaussianHeadsError(f"alignment mode must be one of {ALIGN_MODES}, not {self.mode!r}")
        if not (0.0 < self.knee <= 1.0):
            raise GaussianHeadsError("knee must be in (0, 1]")
        if not self.k_std > 0:
            raise GaussianHeadsError("k_std must be positive")


@dataclass(frozen=True)
class AlignResult:
    sequence: ParamSequence
    changed: tuple[str, ...]  # channels with at least one value altered
    max_change: float  # largest absolute change of any value


def range_from_stats(mean: np.ndarray, std: np.ndarray, k_std: float = 2.5) -> np.ndarray:
    """``[E, 2]`` ranges ``mean ± k_std·std`` from per-channel ``mean [E]`` and ``std [E]``."""
    mean = np.asarray(mean, np.float64).reshape(-1)
    std = np.abs(np.asarray(std, np.float64).reshape(-1))
    if mean.shape != std.shape:
        raise GaussianHeadsError(f"mean has shape {mean.shape} but std has {std.shape}")
    return np.stack([mean - k_std * std, mean + k_std * std], axis=1).astype(np.float32)


def soft_limit(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, knee: float) -> np.ndarray:
    """Tanh-knee compression of ``x [T, E]`` outside ``[lo, hi]`` (each ``[E]``); see the module
    docstring. Values inside the range are returned unchanged; the result lies in
    ``(lo − w, hi + w)`` with ``w = knee · (hi − lo)``."""
    x = np.asarray(x, np.float64)
    lo = np.asarray(lo, np.float64)
    hi = np.asarray(hi, np.float64)
    w = np.maximum(knee * (hi - lo), 1e-12)
    y = np.where(x > hi, hi + w * np.tanh((x - hi) / w), x)
    return np.where(x < lo, lo - w * np.tanh((lo - x) / w), y)


def align_to_range(seq: ParamSequence, expr_range: np.ndarray, options: AlignOptions = AlignOptions()) -> AlignResult:
    """Bring ``seq.expr [T, E]`` into ``expr_range [E, 2]`` (lo, hi per channel; NaN/inf = unbounded)."""
    r = np.asarray(expr_range, np.float64)
    if r.shape != (seq.n_expr, 2):
        raise GaussianHeadsError(f"expr_range has shape {r.shape}, expected ({seq.n_expr}, 2)")
    lo, hi = r[:, 0], r[:, 1]
    bounded = np.isfinite(lo) & np.isfinite(hi) & (hi > lo)
    x = seq.expr.astype(np.float64)
    y = x.copy()
    if bounded.any():
        cols = np.flatnonzero(bounded)
        if options.mode == "clip":
            y[:, cols] = np.clip(x[:, cols], lo[cols], hi[cols])
        else:
            y[:, cols] = soft_limit(x[:, cols], lo[cols], hi[cols], options.knee)
    diff = np.abs(y - x)
    changed = tuple(n for n, c in zip(seq.expr_names, np.any(diff > 1e-7, axis=0)) if c)
    out = seq.replace(expr=y.astype(np.float32))
    return AlignResult(out, changed, float(diff.max()) if diff.size else 0.0)


def scale_values(seq: ParamSequence, scale: float, *, rotations: bool = False) -> ParamSequence:
    """Multiply the expression curves by ``scale`` (and the jaw/eye rotation angles when asked)."""
    scale = float(scale)
    if not math.isfinite(scale):
        raise GaussianHeadsError(f"value scale must be a finite number, got {scale}")
    if scale == 1.0:
        return seq
    changes = {"expr": seq.expr * scale}
    if rotations:
        changes.update(jaw=seq.jaw * scale, eyes=seq.eyes * scale)
    return seq.replace(**changes)


def retime(seq: ParamSequence, scene_fps: float, *, source_fps: float | None = None, speed: float = 1.0) -> ParamSequence:
    """The sequence resampled to the scene's frame rate.

    ``source_fps`` overrides the file's rate (the same samples, reinterpreted); ``speed`` > 1
    plays faster (fewer scene frames). Timing is otherwise kept: second s of the take lands at
    second s / speed of the scene.
    """
    if source_fps is not None:
        if not (math.isfinite(source_fps) and source_fps > 0):
            raise GaussianHeadsError(f"source fps must be a positive number, got {source_fps}")
        seq = seq.replace(fps=float(source_fps))
    if not (math.isfinite(speed) and speed > 0):
        raise GaussianHeadsError(f"speed must be a positive number, got {speed}")
    if speed != 1.0:
        seq = seq.replace(fps=seq.fps * speed)
    return seq.resample(scene_fps)


def frame_numbers(n_frames: int, start_frame: float) -> np.ndarray:
    """Scene frame numbers ``[n]`` (float32) for a sequence already at the scene's rate."""
    return (float(start_frame) + np.arange(int(n_frames), dtype=np.float64)).astype(np.float32)
