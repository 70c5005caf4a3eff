"""Head-parameter tuples to pose while baking (the rows of the residual matrix).

``sample_inputs`` returns inputs [n, P] in the layout of ``attributes.params_to_inputs``
(expression E, jaw 3, eyes 6). Row 0 is always the neutral pose (all zeros). The kinds of rows and
their weights are described in ``config.SamplingConfig``. Global rotation, neck and translation
are never sampled: they are rigid at run time.

Everything is deterministic in ``(seed, stream)``: stream 0 is training, stream 1 the held-out
set of the quality report (disjoint random draws from the same distribution).
"""

from __future__ import annotations

import numpy as np

from ..errors import GaussianHeadsError
from .config import SamplingConfig

_KINDS = ("single", "sparse", "jaw", "eyes", "mixed", "flame")


def expression_ranges(n_expr: int, expr_space: str, expr_range: np.ndarray | None) -> np.ndarray:
    """[E, 2] (low, high) per channel. ARKit defaults to [0, 1]; FLAME has no range (NaN)."""
    if expr_range is not None:
        r = np.asarray(expr_range, np.float64)
        if r.shape != (n_expr, 2):
            raise GaussianHeadsError(f"expr_range has shape {r.shape}, expected ({n_expr}, 2)")
        return r
    if expr_space == "flame":
        return np.full((n_expr, 2), np.nan)
    return np.tile([[0.0, 1.0]], (n_expr, 1))


def _strength_values(rng, ranges, channels, strengths, cfg: SamplingConfig, flame: bool) -> np.ndarray:
    """Values for ``channels`` at relative ``strengths`` in [0, 1] of each channel's range."""
    if flame:
        signs = rng.choice([-1.0, 1.0], size=len(channels))
        return signs * strengths * 3.0 * cfg.flame_sigma
    lo, hi = ranges[channels, 0], ranges[channels, 1]
    signed = (lo < 0) & (hi > 0)
    pick_low = signed & (rng.random(len(channels)) < 0.5)
    upper = lo + strengths * (hi - lo)
    values = np.where(signed, strengths * hi, upper)
    return np.where(pick_low, strengths * lo, values)


def _jaw(rng, cfg: SamplingConfig) -> np.ndarray:
    return np.array([rng.uniform(0.0, cfg.jaw_open_max), rng.uniform(-cfg.jaw_side_max, cfg.jaw_side_max),
                     rng.uniform(-cfg.jaw_side_max, cfg.jaw_side_max)])


def _eyes(rng, cfg: SamplingConfig) -> np.ndarray:
    pitch, yaw = rng.uniform(-cfg.eye_max, cfg.eye_max, size=2)
    verge = rng.uniform(-0.05, 0.05)
    return np.array([pitch, yaw + verge, 0.0, pitch, yaw - verge, 0.0])


def sample_inputs(n: int, n_expr: int, seed: int, config: SamplingConfig = SamplingConfig(), *,
                  expr_space: str = "arkit", expr_range: np.ndarray | None = None, stream: int = 0,
                  extra_inputs: np.ndarray | None = None) -> np.ndarray:
    """Draw n input rows [n, E + 9] float32 (row 0 neutral unless n == 0).

    extra_inputs [T, E + 9]: the object's own animation (rigid parts already dropped); up to
    ``config.extra_fraction · n`` of its rows, evenly spaced in time, replace random rows.
    """
    config.validate()
    if n < 1:
        raise GaussianHeadsError("need at least one bake sample")
    p = n_expr + 9
    flame = expr_space == "flame"
    ranges = expression_ranges(n_expr, expr_space, expr_range)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x42414B45, int(stream)]))
    out = np.zeros((n, p), np.float64)

    n_extra = 0
    if extra_inputs is not None:
        extra = np.asarray(extra_inputs, np.float64)
        if extra.ndim != 2 or extra.shape[1] != p:
            raise GaussianHeadsError(f"extra frames have shape {extra.shape}, expected (T, {p})")
        if not np.isfinite(extra).all():
            raise GaussianHeadsError("extra frames contain NaN or infinity")
        n_extra = min(len(extra), int(np.floor(config.extra_fraction * (n - 1))))
        if n_extra > 0:
            idx = np.round(np.linspace(0, len(extra) - 1, n_extra)).astype(np.int64)
            out[1:1 + n_extra] = extra[idx]

    weights = np.array([config.w_single, config.w_sparse, config.w_jaw, config.w_eyes, config.w_mixed,
                        config.w_flame if flame else 0.0])
    if weights.sum() <= 0:
        raise GaussianHeadsError("sampling weights are all zero for this model")
    weights = weights / weights.sum()
    for row in range(1 + n_extra, n):
        kind = _KINDS[int(rng.choice(len(_KINDS), p=weights))]
        expr = np.zeros(n_expr)
        jaw = np.zeros(3)
        eyes = np.zeros(6)
        if kind == "single" and n_expr:
            c = int(rng.integers(n_expr))
            expr[c] = _strength_values(rng, ranges, np.array([c]), rng.uniform(config.min_strength, 1.0, 1),
                                       config, flame)[0]
        elif kind in ("sparse", "mixed") and n_expr:
            count = int(rng.integers(config.sparse_min, config.sparse_max + 1))
            channels = rng.choice(n_expr, size=min(count, n_expr), replace=False)
            if flame:
                expr[channels] = rng.normal(0.0, config.flame_sigma, len(channels))
            else:
                expr[channels] = _strength_values(rng, ranges, channels, rng.uniform(0.0, 1.0, len(channels)),
                                                  config, flame)
        elif kind == "flame":
            expr = rng.normal(0.0, config.flame_sigma, n_expr)
        if kind == "jaw" or (kind in ("mixed", "flame") and rng.random() < 0.7):
            jaw = _jaw(rng, config)
        if kind == "eyes" or (kind in ("mixed", "flame") and rng.random() < 0.5):
            eyes = _eyes(rng, config)
        out[row] = np.concatenate([expr, jaw, eyes])
    return out.astype(np.float32)
