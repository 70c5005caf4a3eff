"""Fused run-time blend of a baked identity (numba): one pass over the Gaussians per frame.

The bases are re-laid out per Gaussian for the CPU: table [L, C, K] where C = 11 channels
(xyz 3, log-scale 3, quaternion 4, opacity 1) (+3 colour DC when baked) and K coefficients are
contiguous, so Gaussian i reads one contiguous block, blends every channel, renormalises its
quaternion and applies the rigid head part (module ``baked``) before the next Gaussian:

    v[i, j]  = neutral[i, j] + scale[r, j] · Σ_k c[attr(j), k] · table[r, j, k]     r = row[i] >= 0
    v[i, :]  = neutral[i, :]                                                         row[i] = -1
    quat     = normalise(v[i, 6:10])               (neutral quaternion if the norm vanishes)
    mode 0: nothing; mode 1: one rigid transform; mode 2: per-Gaussian blend of root / neck

**Static Gaussians.** Most Gaussians of a head (scalp, back of the head, neck, ears) never move
with expressions, jaw or eyes. With ``coef_max [A, K]`` (max |coefficient| of attribute a's
component k over the bake's training samples, ``BakedIdentity.coef_max``) the largest change the
blend makes to channel j of Gaussian i on the training distribution is

    e[i, j] = Σ_k |basis_a(j)[k, i, j]| · coef_max[a(j), k]

(for a frame with coefficients c the change is at most e[i, j] · max_k (|c_k| / coef_max[a, k]):
the MLP may extrapolate beyond the training range). A channel is *static* when
e[i, j] < tol(attribute) (``StaticTolerances``); its scale is stored as 0 and the kernel keeps
the neutral value without reading its K table entries (one 64-byte line for int8, K = 64). A
Gaussian whose channels are all static gets no table row at all (``row[i] = -1``): the table
holds only the L live Gaussians, in Gaussian order, and the kernel copies the neutral row of a
static Gaussian (then applies the rigid head part as usual). Without ``coef_max`` (files written
before it existed) every Gaussian is live and only channels whose basis is exactly zero are
skipped (exact: their blend adds 0), as before.

``table`` is float32 (scale = 1: exact up to summation order) or int8 with a per-(r, j) scale
max_k |basis| / 127 (4x less memory traffic; the quantisation error is bounded by
scale/2 · Σ_k |c_k| per channel). ``baked.BakedIdentity.blend_numpy`` is the reference twin
(no skipping, no quantisation); tests hold them equal within the two bounds above.

The numba cache goes to ``NUMBA_CACHE_DIR``; if it is unset when this module is first imported it
is set to ``~/.cache/gaussian_heads/numba`` (Blender sets it to the extension's user folder).
``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` (idle OpenMP workers sleep instead of spinning; see
docs/PERFORMANCE.md, Rendering), which only helps if no OpenMP runtime has started yet.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import NamedTuple

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if not os.environ.get("NUMBA_CACHE_DIR"):
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(os.path.expanduser("~"), ".cache", "gaussian_heads", "numba")
    if "numba" in sys.modules:
        sys.modules["numba"].core.config.reload_config()

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from ..parallel import PARALLEL_LOCK  # noqa: E402

# channel layout of the table and the neutral array
CHANNELS: dict[str, tuple[int, int]] = {"xyz": (0, 3), "scale": (3, 6), "rotation": (6, 10), "opacity": (10, 11),
                                        "color": (11, 14)}


@dataclass(frozen=True)
class StaticTolerances:
    """Absolute tolerances below which a channel counts as static (``build_tables``).

    xyz       metres (1e-6 = 1 µm: a thousandth of a typical Gaussian's size on a 20 cm head)
    scale     natural-log units of the standard deviation (1e-5 = a 0.001 % size change)
    rotation  quaternion components (1e-5 ≈ 2e-5 rad ≈ 0.001° of rotation)
    opacity   logits (1e-4: opacity changes by at most 2.5e-5, a 1/160 of an 8-bit step)
    color     SH DC units (1e-5: colour changes by at most 2.8e-6, 1/1400 of an 8-bit step)
    All are far below anything visible in a render, and typically far below the int8 quantisation
    error of the live channels (scale/2 · Σ_k |c_k|).
    """

    xyz: float = 1e-6
    scale: float = 1e-5
    rotation: float = 1e-5
    opacity: float = 1e-4
    color: float = 1e-5

    def of(self, attribute: str) -> float:
        return float(getattr(self, attribute))


STATIC_TOLERANCES = StaticTolerances()


class BlendTables(NamedTuple):
    """What the kernel reads besides the coefficients (``build_tables``).

    table      [L, C, K] int8 or float32: the live Gaussians' blendshapes, in Gaussian order
    scale      [L, C] float32: per-(row, channel) scale; 0 marks a static channel (neutral kept)
    chan_attr  [C] int32: coefficient block of channel j's attribute (-1: not baked / all-zero basis)
    row        [N] int32: table row of Gaussian i, -1 for a static Gaussian
    live       [L] int32: Gaussian index of each table row (increasing)
    static     [N - L] int32: the static Gaussians (increasing)
    """

    table: np.ndarray
    scale: np.ndarray
    chan_attr: np.ndarray
    row: np.ndarray
    live: np.ndarray
    static: np.ndarray

    @property
    def live_fraction(self) -> float:
        """Fraction of the Gaussians that are live (have a table row)."""
        n = len(self.row)
        return float(len(self.live) / n) if n else 0.0

    @property
    def live_channel_fraction(self) -> float:
        """Fraction of all N·C channels that are blended (live Gaussian and non-zero scale)."""
        n, c = len(self.row), len(self.chan_attr)
        return float(np.count_nonzero(self.scale) / (n * c)) if n else 0.0


def channel_count(attributes) -> int:
    return 14 if "color" in attributes else 11


def change_bounds(bases: dict, attributes, n: int, k: int, coef_max: np.ndarray) -> np.ndarray:
    """e [N, C] float64: e[i, j] = Σ_k |basis_a(j)[k, i, j]| · coef_max[a(j), k] (module docstring).

    bases {name: [K, N·d]}, coef_max [A, K] (attribute order); channels of attributes not baked are 0.
    """
    c = channel_count(attributes)
    e = np.zeros((n, c), np.float64)
    cm = np.asarray(coef_max, np.float64)
    step = 1 << 16  # columns per chunk: bounds the float64 copy of |basis| to K · 65,536 · 8 B
    for a, name in enumerate(attributes):
        lo, hi = CHANNELS[name]
        b = bases[name].reshape(k, n * (hi - lo))
        out = np.empty(b.shape[1], np.float64)
        for s in range(0, b.shape[1], step):
            out[s:s + step] = cm[a] @ np.abs(b[:, s:s + step].astype(np.float64))
        e[:, lo:hi] = out.reshape(n, hi - lo)
    return e


def build_tables(bases: dict, attributes, n: int, k: int, quantise: bool, coef_max: np.ndarray | None = None,
                 tolerances: StaticTolerances = STATIC_TOLERANCES) -> BlendTables:
    """Per-Gaussian tables from bases {name: [K, N·d]} (and coef_max [A, K] or None).

    A channel is static when its basis is all zero (exact: it adds 0), or (with coef_max) when its
    change bound ``change_bounds`` is below ``tolerances``. With coef_max a Gaussian with only
    static channels gets no row; without it (older files) every Gaussian keeps its row.
    Returns ``BlendTables`` (int8 table with scale = max_k |basis| / 127 per (row, channel) when
    ``quantise``, else float32 with scale 1; scale 0 on static channels).
    """
    c = channel_count(attributes)
    chan_attr = np.full(c, -1, np.int32)
    moving = np.zeros((n, c), bool)
    for a, name in enumerate(attributes):
        lo, hi = CHANNELS[name]
        b = bases[name].reshape(k, n, hi - lo)
        if np.any(b):  # an all-zero basis (an attribute that never changes) is skipped
            chan_attr[lo:hi] = a
        moving[:, lo:hi] = np.any(b != 0, axis=0)
    if coef_max is not None:
        e = change_bounds(bases, attributes, n, k, coef_max)
        tol = np.full(c, np.inf)
        for name in attributes:
            lo, hi = CHANNELS[name]
            tol[lo:hi] = tolerances.of(name)
        moving &= e >= tol[None, :]
    moving &= chan_attr[None, :] >= 0
    keep = moving.any(axis=1) if coef_max is not None else np.ones(n, bool)  # no bounds: every row
    live = np.flatnonzero(keep).astype(np.int32)
    static = np.flatnonzero(~keep).astype(np.int32)
    row = np.full(n, -1, np.int32)
    row[live] = np.arange(len(live), dtype=np.int32)
    table = np.zeros((len(live), c, k), np.float32)
    for name in attributes:
        lo, hi = CHANNELS[name]
        table[:, lo:hi, :] = bases[name].reshape(k, n, hi - lo)[:, live, :].transpose(1, 2, 0)
    live_moving = moving[live]
    table[~live_moving] = 0.0
    if not quantise:
        scale = live_moving.astype(np.float32)
        return BlendTables(table, scale, chan_attr, row, live, static)
    peak = np.abs(table).max(axis=2)
    scale = np.where(live_moving & (peak > 0), peak / 127.0, 0.0).astype(np.float32)
    q = np.rint(table / np.where(scale > 0, scale, 1.0)[:, :, None])
    return BlendTables(np.clip(q, -127, 127).astype(np.int8), scale, chan_attr, row, live, static)


def neutral_table(neutral, attributes) -> np.ndarray:
    """[N, C] float32: means, log-scales, quaternion, opacity logit (+ colour DC) of the neutral."""
    parts = [neutral.means, neutral.log_scales, neutral.quats, neutral.opacity_logits[:, None]]
    if "color" in attributes:
        parts.append(neutral.sh[:, 0, :])
    return np.ascontiguousarray(np.concatenate(parts, axis=1), np.float32)


@njit(inline="always", cache=True, fastmath={"reassoc", "contract"})
def _channel(coef, table, scale, chan_attr, neutral, r, i, j):
    """Channel j of Gaussian i (table row r): neutral + scale · Σ_k c[attr, k] · table[r, j, k], or
    the neutral value when the channel is static (scale 0) or its attribute is not blended."""
    a = chan_attr[j]
    s = scale[r, j]
    if a < 0 or s == 0:
        return neutral[i, j]
    acc = np.float32(0.0)
    for m in range(table.shape[2]):
        acc += coef[a, m] * np.float32(table[r, j, m])
    return neutral[i, j] + s * acc


@njit(inline="always", cache=True, fastmath={"reassoc", "contract"})
def _emit(i, x, y, z, s0, s1, s2, qw, qx, qy, qz, logit, c0, c1, c2, neutral, neck_w, mode, r0, t0, q0, r1, t1, q1,
          means, log_scales, quats, logits, colour):
    """Write Gaussian i from its blended channels: renormalise the quaternion (neutral[i] 's if
    the norm vanishes), apply the rigid head part (mode 0 / 1 / 2), store."""
    nrm = np.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
    if nrm < 1e-6:
        qw, qx, qy, qz = neutral[i, 6], neutral[i, 7], neutral[i, 8], neutral[i, 9]
    else:
        qw, qx, qy, qz = qw / nrm, qx / nrm, qy / nrm, qz / nrm
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
    log_scales[i, 0], log_scales[i, 1], log_scales[i, 2] = s0, s1, s2
    if mode == 0:
        quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3] = qw, qx, qy, qz
    else:
        quats[i, 0] = aw * qw - ax * qx - ay * qy - az * qz
        quats[i, 1] = aw * qx + ax * qw + ay * qz - az * qy
        quats[i, 2] = aw * qy - ax * qz + ay * qw + az * qx
        quats[i, 3] = aw * qz + ax * qy - ay * qx + az * qw
    logits[i] = logit
    if colour.shape[0] > 0:
        colour[i, 0], colour[i, 1], colour[i, 2] = c0, c1, c2


@njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
def _blend(coef, table, scale, chan_attr, live, static, neutral, neck_w, mode, r0, t0, q0, r1, t1, q1,
           means, log_scales, quats, logits, colour):
    n_live = table.shape[0]
    has_colour = neutral.shape[1] > 11
    for r in prange(n_live):  # live Gaussians: blend the channels that move
        i = live[r]
        x = _channel(coef, table, scale, chan_attr, neutral, r, i, 0)
        y = _channel(coef, table, scale, chan_attr, neutral, r, i, 1)
        z = _channel(coef, table, scale, chan_attr, neutral, r, i, 2)
        s0 = _channel(coef, table, scale, chan_attr, neutral, r, i, 3)
        s1 = _channel(coef, table, scale, chan_attr, neutral, r, i, 4)
        s2 = _channel(coef, table, scale, chan_attr, neutral, r, i, 5)
        qw = _channel(coef, table, scale, chan_attr, neutral, r, i, 6)
        qx = _channel(coef, table, scale, chan_attr, neutral, r, i, 7)
        qy = _channel(coef, table, scale, chan_attr, neutral, r, i, 8)
        qz = _channel(coef, table, scale, chan_attr, neutral, r, i, 9)
        logit = _channel(coef, table, scale, chan_attr, neutral, r, i, 10)
        c0 = c1 = c2 = np.float32(0.0)
        if has_colour:
            c0 = _channel(coef, table, scale, chan_attr, neutral, r, i, 11)
            c1 = _channel(coef, table, scale, chan_attr, neutral, r, i, 12)
            c2 = _channel(coef, table, scale, chan_attr, neutral, r, i, 13)
        _emit(i, x, y, z, s0, s1, s2, qw, qx, qy, qz, logit, c0, c1, c2, neutral, neck_w, mode, r0, t0, q0, r1, t1,
              q1, means, log_scales, quats, logits, colour)
    for s in prange(static.shape[0]):  # static Gaussians: the neutral row, then the rigid part
        i = static[s]
        c0 = c1 = c2 = np.float32(0.0)
        if has_colour:
            c0, c1, c2 = neutral[i, 11], neutral[i, 12], neutral[i, 13]
        _emit(i, neutral[i, 0], neutral[i, 1], neutral[i, 2], neutral[i, 3], neutral[i, 4], neutral[i, 5],
              neutral[i, 6], neutral[i, 7], neutral[i, 8], neutral[i, 9], neutral[i, 10], c0, c1, c2, neutral,
              neck_w, mode, r0, t0, q0, r1, t1, q1, means, log_scales, quats, logits, colour)


def blend(coef: np.ndarray, tables: BlendTables, neutral: np.ndarray, neck_w: np.ndarray, mode: int,
          transforms) -> tuple:
    """Run the kernel. coef [A, K] float32; tables from ``build_tables``; neutral [N, C] float32
    (``neutral_table``); neck_w [N] float32; mode 0/1/2 (module docstring);
    transforms = (r0 [3,3], t0 [3], q0 [4], r1, t1, q1) float32 (q1 sign-aligned to q0).

    Returns (means [N,3], log_scales [N,3], quats [N,4], logits [N], colour [N,3] or None).
    """
    table = tables.table
    n, c = neutral.shape
    coef = np.ascontiguousarray(coef, np.float32)
    means = np.empty((n, 3), np.float32)
    log_scales = np.empty((n, 3), np.float32)
    quats = np.empty((n, 4), np.float32)
    logits = np.empty(n, np.float32)
    colour = np.empty((n if c > 11 else 0, 3), np.float32)
    r0, t0, q0, r1, t1, q1 = (np.ascontiguousarray(a, np.float32) for a in transforms)
    with PARALLEL_LOCK:  # never two parallel kernel launches at once (engine/parallel.py)
        _blend(coef, table, tables.scale, tables.chan_attr, tables.live, tables.static, neutral, neck_w,
               int(mode), r0, t0, q0, r1, t1, q1, means, log_scales, quats, logits, colour)
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
