"""Fused run-time blend of a baked identity (numba): one pass over the Gaussians per frame.

The bases are re-laid out per Gaussian for the CPU: table [N, C, K] where C = 11 channels
(xyz 3, log-scale 3, quaternion 4, opacity 1) (+3 colour DC when baked) and K coefficients are
contiguous, so Gaussian i reads one contiguous block, blends every channel, renormalises its
quaternion and applies the rigid head part (module ``baked``) before the next Gaussian:

    v[i, j]  = neutral[i, j] + scale[i, j] · Σ_k c[attr(j), k] · table[i, j, k]
    quat     = normalise(v[i, 6:10])               (neutral quaternion if the norm vanishes)
    mode 0: nothing; mode 1: one rigid transform; mode 2: per-Gaussian blend of root / neck

``table`` is float32 (scale = 1: exact up to summation order) or int8 with a per-(i, j) scale
max_k |basis| / 127 (4x less memory traffic; the quantisation error is bounded by
scale/2 · Σ_k |c_k| per channel). ``baked.BakedIdentity.blend`` (numpy) is the reference twin;
tests hold them equal.

The numba cache goes to ``NUMBA_CACHE_DIR``; if it is unset when this module is first imported it
is set to ``~/.cache/gaussian_heads/numba`` (Blender sets it to the extension's user folder).
``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` (idle OpenMP workers sleep instead of spinning; see
docs/PERFORMANCE.md, Rendering), which only helps if no OpenMP runtime has started yet.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if not os.environ.get("NUMBA_CACHE_DIR"):
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(os.path.expanduser("~"), ".cache", "gaussian_heads", "numba")
    if "numba" in sys.modules:
        sys.modules["numba"].core.config.reload_config()

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

# channel layout of the table and the neutral array
CHANNELS: dict[str, tuple[int, int]] = {"xyz": (0, 3), "scale": (3, 6), "rotation": (6, 10), "opacity": (10, 11),
                                        "color": (11, 14)}


def channel_count(attributes) -> int:
    return 14 if "color" in attributes else 11


def build_tables(bases: dict, attributes, n: int, k: int, quantise: bool):
    """Per-Gaussian tables from bases {name: [K, N·d]}.

    Returns (table [N, C, K] int8 or float32, scale [N, C] float32, chan_attr [C] int32) where
    chan_attr[j] indexes the coefficient block of channel j's attribute (-1: the channel keeps
    its neutral value, for attributes not baked or whose basis is all zero).
    """
    c = channel_count(attributes)
    table = np.zeros((n, c, k), np.float32)
    chan_attr = np.full(c, -1, np.int32)
    for a, name in enumerate(attributes):
        lo, hi = CHANNELS[name]
        table[:, lo:hi, :] = bases[name].reshape(k, n, hi - lo).transpose(1, 2, 0)
        if np.any(bases[name]):  # an all-zero basis (an attribute that never changes) is skipped
            chan_attr[lo:hi] = a
    if not quantise:
        return table, np.ones((n, c), np.float32), chan_attr
    peak = np.abs(table).max(axis=2)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    q = np.rint(table / scale[:, :, None])
    return np.clip(q, -127, 127).astype(np.int8), scale, chan_attr


def neutral_table(neutral, attributes) -> np.ndarray:
    """[N, C] float32: means, log-scales, quaternion, opacity logit (+ colour DC) of the neutral."""
    parts = [neutral.means, neutral.log_scales, neutral.quats, neutral.opacity_logits[:, None]]
    if "color" in attributes:
        parts.append(neutral.sh[:, 0, :])
    return np.ascontiguousarray(np.concatenate(parts, axis=1), np.float32)


@njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
def _blend(coef, table, scale, chan_attr, neutral, neck_w, mode, r0, t0, q0, r1, t1, q1,
           work, means, log_scales, quats, logits, colour):
    n, c, k = table.shape
    for i in prange(n):
        v = work[i]
        for j in range(c):
            a = chan_attr[j]
            if a < 0:
                v[j] = neutral[i, j]
                continue
            acc = np.float32(0.0)
            for m in range(k):
                acc += coef[a, m] * np.float32(table[i, j, m])
            v[j] = neutral[i, j] + scale[i, j] * acc
        qw, qx, qy, qz = v[6], v[7], v[8], v[9]
        nrm = np.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
        if nrm < 1e-6:
            qw, qx, qy, qz = neutral[i, 6], neutral[i, 7], neutral[i, 8], neutral[i, 9]
        else:
            qw, qx, qy, qz = qw / nrm, qx / nrm, qy / nrm, qz / nrm
        x, y, z = v[0], v[1], v[2]
        if mode == 0:
            px, py, pz = x, y, z
            aw, ax, ay, az = np.float32(1.0), np.float32(0.0), np.float32(0.0), np.float32(0.0)
        else:
            px = r0[0, 0] * x + r0[0, 1] * y + r0[0, 2] * z + t0[0]
            py = r0[1, 0] * x + r0[1, 1] * y + r0[1, 2] * z + t0[1]
            pz = r0[2, 0] * x + r0[2, 1] * y + r0[2, 2] * z + t0[2]
            aw, ax, ay, az = q0[0], q0[1], q0[2], q0[3]
            if mode == 2:
                w = neck_w[i]
                if w > 0:
                    sx = r1[0, 0] * x + r1[0, 1] * y + r1[0, 2] * z + t1[0]
                    sy = r1[1, 0] * x + r1[1, 1] * y + r1[1, 2] * z + t1[1]
                    sz = r1[2, 0] * x + r1[2, 1] * y + r1[2, 2] * z + t1[2]
                    px += w * (sx - px)
                    py += w * (sy - py)
                    pz += w * (sz - pz)
                    aw += w * (q1[0] - aw)
                    ax += w * (q1[1] - ax)
                    ay += w * (q1[2] - ay)
                    az += w * (q1[3] - az)
                    an = np.sqrt(aw * aw + ax * ax + ay * ay + az * az)
                    aw, ax, ay, az = aw / an, ax / an, ay / an, az / an
        means[i, 0], means[i, 1], means[i, 2] = px, py, pz
        log_scales[i, 0], log_scales[i, 1], log_scales[i, 2] = v[3], v[4], v[5]
        if mode == 0:
            quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3] = qw, qx, qy, qz
        else:
            quats[i, 0] = aw * qw - ax * qx - ay * qy - az * qz
            quats[i, 1] = aw * qx + ax * qw + ay * qz - az * qy
            quats[i, 2] = aw * qy - ax * qz + ay * qw + az * qx
            quats[i, 3] = aw * qz + ax * qy - ay * qx + az * qw
        logits[i] = v[10]
        if c > 11:
            colour[i, 0], colour[i, 1], colour[i, 2] = v[11], v[12], v[13]


def blend(coef: np.ndarray, table: np.ndarray, scale: np.ndarray, chan_attr: np.ndarray, neutral: np.ndarray,
          neck_w: np.ndarray, mode: int, transforms) -> tuple:
    """Run the kernel. coef [A, K] float32;
    transforms = (r0 [3,3], t0 [3], q0 [4], r1, t1, q1) float32 (q1 sign-aligned to q0).

    Returns (means [N,3], log_scales [N,3], quats [N,4], logits [N], colour [N,3] or None).
    """
    n, c, k = table.shape
    coef = np.ascontiguousarray(coef, np.float32)
    means = np.empty((n, 3), np.float32)
    log_scales = np.empty((n, 3), np.float32)
    quats = np.empty((n, 4), np.float32)
    logits = np.empty(n, np.float32)
    colour = np.empty((n if c > 11 else 0, 3), np.float32)
    r0, t0, q0, r1, t1, q1 = (np.ascontiguousarray(a, np.float32) for a in transforms)
    work = np.empty((n, c), np.float32)
    _blend(coef, table, scale, chan_attr, neutral, neck_w, int(mode), r0, t0, q0, r1, t1, q1,
           work, means, log_scales, quats, logits, colour)
    return means, log_scales, quats, logits, (colour if c > 11 else None)


@njit(cache=True, fastmath=False)
def rotation_residual(quats, neutral_quats, out):
    """Fast twin of ``attributes.residual_row(.., "rotation")``: out [N, 4] = normalise(q)·sign − q_neutral,
    sign = sign(q · q_neutral) (+1 at 0)."""
    n = quats.shape[0]
    for i in range(n):
        w, x, y, z = quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3]
        a, b, c, d = neutral_quats[i, 0], neutral_quats[i, 1], neutral_quats[i, 2], neutral_quats[i, 3]
        nrm = np.sqrt(w * w + x * x + y * y + z * z)
        f = np.float32(1.0) / max(nrm, np.float32(1e-12))
        if w * a + x * b + y * c + z * d < 0:
            f = -f
        out[i, 0] = w * f - a
        out[i, 1] = x * f - b
        out[i, 2] = y * f - c
        out[i, 3] = z * f - d
