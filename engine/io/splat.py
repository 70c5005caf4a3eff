"""antimatter15's ``.splat`` (the WebGL splat viewer's format): 32 bytes a Gaussian, no header.

Record, little-endian: position 3 x f32, scale 3 x f32 (linear standard deviations, not log),
colour R G B A u8 (RGB = 0.5 + SH_C0 * f_dc, A = sigmoid(opacity), both * 255),
rotation 4 x u8 (w, x, y, z of the unit quaternion, * 128 + 128).
No SH beyond the base colour: writing drops degrees >= 1. The viewer's converter sorts splats
by size * opacity; we keep the given order, which any reader accepts.
"""

from __future__ import annotations

import os

import numpy as np

from ..avatar.gaussian_set import SH_C0, GaussianSet
from ..errors import InputFileError
from ._common import opacity_logits_from_u8, read_capped, write_atomic

RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
assert RECORD.itemsize == 32


def read_splat(path: str | os.PathLike) -> GaussianSet:
    """Read a ``.splat`` file -> GaussianSet (N, SH degree 0)."""
    path = os.fspath(path)
    raw = read_capped(path)
    if len(raw) % RECORD.itemsize:
        raise InputFileError(path, f"not a .splat file: its size ({len(raw):,} bytes) is not a "
                                   "multiple of 32 (truncated?)")
    table = np.frombuffer(raw, RECORD)
    n = len(table)
    means = np.asarray(table["position"], np.float32)
    scales = np.asarray(table["scale"], np.float64)
    bad = ~np.isfinite(means).all(1)
    if bad.any():
        raise InputFileError(path, f"{int(bad.sum())} Gaussians have NaN or infinite positions")
    bad = ~(np.isfinite(scales) & (scales > 0)).all(1)
    if bad.any():
        raise InputFileError(path, f"{int(bad.sum())} Gaussians have a zero, negative or non-finite scale")
    log_scales = np.log(scales)
    if not np.isfinite(log_scales.astype(np.float32)).all():
        raise InputFileError(path, "scales out of float32 range")
    quats = (table["rot"].astype(np.float32) - 128.0) / 128.0
    norm = np.linalg.norm(quats, axis=1, keepdims=True)
    zero = norm[:, 0] < 1e-6
    if zero.any():
        raise InputFileError(path, f"{int(zero.sum())} Gaussians have a zero rotation quaternion")
    rgba = table["rgba"].astype(np.float32) / 255.0
    dc = (rgba[:, :3] - 0.5) / SH_C0
    return GaussianSet(means, log_scales, quats / norm, opacity_logits_from_u8(table["rgba"][:, 3]),
                       dc.reshape(n, 1, 3))


def splat_bytes(gaussians: GaussianSet) -> bytes:
    """Serialise Gaussians (N) to ``.splat`` records; deterministic."""
    g = gaussians
    g.validate_finite("Gaussians to write")
    table = np.zeros(len(g), RECORD)
    table["position"] = g.means
    table["scale"] = np.exp(g.log_scales.astype(np.float64))
    rgb = 0.5 + SH_C0 * g.sh[:, 0].astype(np.float64)
    rgba = np.concatenate([rgb, g.opacities[:, None].astype(np.float64)], 1)
    table["rgba"] = np.clip(np.round(rgba * 255.0), 0, 255).astype(np.uint8)
    q = g.quats.astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    table["rot"] = np.clip(np.round(q * 128.0 + 128.0), 0, 255).astype(np.uint8)
    return table.tobytes()


def write_splat(path: str | os.PathLike, gaussians: GaussianSet) -> None:
    """Write Gaussians (N) as ``.splat`` (SH beyond the base colour dropped); atomic."""
    write_atomic(path, splat_bytes(gaussians))
