"""Decoding raw attribute and residual samples into Gaussian attributes (numpy, no torch).

The networks emit raw maps; they are sampled at the Gaussians' UVs first (``uvmap.UVSampler``) and
decoded here, so quaternions are normalised after interpolation and every bound holds exactly.
``networks.decode_attributes_torch`` is the differentiable twin (tests compare them).
See the ``config`` module docstring for the channel layouts and formulas.
"""

from __future__ import annotations

import numpy as np

from ..errors import check_shape
from .config import RESIDUAL_CHANNELS, GeneratorConfig


def log_softplus(x: np.ndarray) -> np.ndarray:
    """log(softplus(x)) computed without underflow (≈ x for x << 0)."""
    x = np.asarray(x, np.float64)
    sp = np.logaddexp(0.0, x)
    return np.where(x < -30.0, x, np.log(np.maximum(sp, 1e-300)))


def normalize_quats(q: np.ndarray) -> np.ndarray:
    """[N, 4] -> unit quaternions; a (near-)zero row becomes the identity (1, 0, 0, 0)."""
    q = np.asarray(q, np.float64)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    ident = np.zeros_like(q)
    ident[..., 0] = 1.0
    return np.where(norm > 1e-8, q / np.maximum(norm, 1e-8), ident)


def decode_attributes(config: GeneratorConfig, raw: np.ndarray) -> dict[str, np.ndarray]:
    """raw [N, attr_channels] -> dict of float32 arrays:

    offsets [N, 3] (|.| <= offset_range), log_scales [N, 3] (in [log_scale_min, log_scale_max]),
    quats [N, 4] (unit, wxyz), sh [N, K, 3], opacity_logits [N] (|.| <= opacity_logit_max).
    Offsets and scales are in units of the bound face's scale (its local frame).
    """
    raw = np.asarray(raw, np.float64)
    check_shape("raw attributes", raw, (None, config.attr_channels))
    k = config.sh_coeffs
    offsets = config.offset_range * np.tanh(raw[:, 0:3])
    log_scales = np.clip(log_softplus(raw[:, 3:6] + config.scale_bias), config.log_scale_min, config.log_scale_max)
    quats = normalize_quats(raw[:, 6:10] + np.array([1.0, 0.0, 0.0, 0.0]))
    sh = raw[:, 10:10 + 3 * k].reshape(-1, k, 3)
    m = config.opacity_logit_max
    opacity_logits = np.clip(raw[:, 10 + 3 * k] + config.opacity_bias, -m, m)
    f = lambda a: np.ascontiguousarray(a, np.float32)  # noqa: E731
    return dict(offsets=f(offsets), log_scales=f(log_scales), quats=f(quats), sh=f(sh),
                opacity_logits=f(opacity_logits))


def decode_residuals(config: GeneratorConfig, raw: np.ndarray) -> dict[str, np.ndarray]:
    """raw [N, 11] -> d_offsets [N, 3], d_log_scales [N, 3], d_quats [N, 4], d_opacity_logits [N].

    Each is ``range * tanh(raw)`` with the config's d_*_range bounds (float32).
    """
    raw = np.asarray(raw, np.float32)
    check_shape("raw residuals", raw, (None, RESIDUAL_CHANNELS))
    t = np.tanh(raw)
    return dict(d_offsets=np.ascontiguousarray(config.d_offset_range * t[:, 0:3], np.float32),
                d_log_scales=np.ascontiguousarray(config.d_log_scale_range * t[:, 3:6], np.float32),
                d_quats=np.ascontiguousarray(config.d_quat_range * t[:, 6:10], np.float32),
                d_opacity_logits=np.ascontiguousarray(config.d_opacity_range * t[:, 10], np.float32))
