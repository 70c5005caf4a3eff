"""Fast CPU rasterizer (numba): tiles of 16x16 pixels, the same rules as ``reference.py``.

Pipeline per frame (``render``), three stages the benchmark also times one by one:
1. ``project`` (``_project``, parallel over Gaussians): camera transform, EWA projection,
   dilation and antialiasing compensation, culling, conic (inverse 2D covariance), SH colour
   (once per Gaussian), and the pixel box outside which the splat's alpha is below 1/255; one
   64-byte float32 record per Gaussian (layout in ``cpu_tiles``).
2. ``cpu_tiles.bin_splats``: a stable radix sort of the visible splats by depth (ties keep
   index order, like the reference), then per 16x16 tile the list of its splats, front to back.
3. ``cpu_tiles.composite`` (parallel over tiles): blends each tile's splats front to back, 8 or
   16 pixels of a row at once in vector code.

``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` (see below). The numba cache lives in a writable
user folder: if ``NUMBA_CACHE_DIR`` is unset when this module
is first imported, it is set to ``~/.cache/gaussian_heads/numba`` (Blender sets it to the
extension's user folder before importing us).
"""

from __future__ import annotations

import os
import sys

if not os.environ.get("NUMBA_CACHE_DIR"):
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(os.path.expanduser("~"), ".cache", "gaussian_heads", "numba")
    if "numba" in sys.modules:  # numba read its configuration already: make it see the folder
        sys.modules["numba"].core.config.reload_config()

# OpenMP worker threads that spin between parallel regions burn a core each and, on a busy
# machine (Blender's own threads, other processes), make every launch wait for them to be
# scheduled: measured 15 ms per launch with spinning vs 0.3 ms passive on a loaded 2-core VM.
# Read when numba's OpenMP pool first starts, so it is set (if unset) before any kernel runs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import math  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from ..parallel import PARALLEL_LOCK  # noqa: E402

from ..avatar.gaussian_set import GaussianSet  # noqa: E402
from .camera import Camera  # noqa: E402
from .common import (ALPHA_THRESHOLD, EPS2D, EXTEND_MAX, FOV_CLAMP, SH_C0, SH_C1, SH_C2,  # noqa: E402
                     SH_C3, TILE, RenderInputs, RenderResult, empty_result, prepare)
from .cpu_tiles import (B, DEPTH, HALF_A, HALF_C, OPACITY, RECORD, RED, SMAX, U, V, X0, X1,  # noqa: E402
                        Y0, Y1, bin_splats, composite)

_LOG_THR = math.log(ALPHA_THRESHOLD)


@njit(cache=True, inline="always")
def _sh_colour(sh, g, degree, dx, dy, dz, out, o):
    """Colour of Gaussian g for the unit view direction (dx, dy, dz): out[o, RED:BLUE + 1] =
    max(0, SH + 0.5)."""
    b1 = b2 = b3 = b4 = b5 = b6 = b7 = b8 = 0.0
    b9 = b10 = b11 = b12 = b13 = b14 = b15 = 0.0
    x, y, z = dx, dy, dz
    if degree >= 1:
        b1, b2, b3 = -SH_C1 * y, SH_C1 * z, -SH_C1 * x
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        b4 = SH_C2[0] * x * y
        b5 = SH_C2[1] * y * z
        b6 = SH_C2[2] * (2.0 * zz - xx - yy)
        b7 = SH_C2[3] * x * z
        b8 = SH_C2[4] * (xx - yy)
        if degree >= 3:
            b9 = SH_C3[0] * y * (3.0 * xx - yy)
            b10 = SH_C3[1] * x * y * z
            b11 = SH_C3[2] * y * (4.0 * zz - xx - yy)
            b12 = SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy)
            b13 = SH_C3[4] * x * (4.0 * zz - xx - yy)
            b14 = SH_C3[5] * z * (xx - yy)
            b15 = SH_C3[6] * x * (xx - 3.0 * yy)
    for ch in range(3):
        v = SH_C0 * sh[g, 0, ch]
        if degree >= 1:
            v += b1 * sh[g, 1, ch] + b2 * sh[g, 2, ch] + b3 * sh[g, 3, ch]
        if degree >= 2:
            v += (b4 * sh[g, 4, ch] + b5 * sh[g, 5, ch] + b6 * sh[g, 6, ch] + b7 * sh[g, 7, ch]
                  + b8 * sh[g, 8, ch])
        if degree >= 3:
            v += (b9 * sh[g, 9, ch] + b10 * sh[g, 10, ch] + b11 * sh[g, 11, ch] + b12 * sh[g, 12, ch]
                  + b13 * sh[g, 13, ch] + b14 * sh[g, 14, ch] + b15 * sh[g, 15, ch])
        out[o, RED + ch] = max(v + 0.5, 0.0)


@njit(parallel=True, cache=True)
def _project(means, quats, log_scales, logits, sh, degree, w2c, campos, fx, fy, cx, cy, near, far,
             ortho, width, height, antialiased, par, tiles):
    """Project every Gaussian (float64 maths, float32 results) into par [N, RECORD], one splat
    record per Gaussian (fields in ``cpu_tiles``), and tiles [N, 4] int32, the range of 16x16
    tiles its box touches (tx0, tx1, ty0, ty1; tx0 > tx1 marks a culled splat): a compact copy
    that sorting and binning read (1 MB stays in a core's L2 cache, the records do not).
    """
    n = means.shape[0]
    tan_x = 0.5 * width / fx
    tan_y = 0.5 * height / fy
    lim_xp = (width - cx) / fx + (FOV_CLAMP - 1.0) * tan_x
    lim_xn = cx / fx + (FOV_CLAMP - 1.0) * tan_x
    lim_yp = (height - cy) / fy + (FOV_CLAMP - 1.0) * tan_y
    lim_yn = cy / fy + (FOV_CLAMP - 1.0) * tan_y
    for g in prange(n):
        tiles[g, 0] = 1
        tiles[g, 1] = 0
        mx, my, mz = np.float64(means[g, 0]), np.float64(means[g, 1]), np.float64(means[g, 2])
        x = w2c[0, 0] * mx + w2c[0, 1] * my + w2c[0, 2] * mz + w2c[0, 3]
        y = w2c[1, 0] * mx + w2c[1, 1] * my + w2c[1, 2] * mz + w2c[1, 3]
        z = w2c[2, 0] * mx + w2c[2, 1] * my + w2c[2, 2] * mz + w2c[2, 3]
        if not (z >= near and z <= far):
            continue
        # rotation from the quaternion (zero quaternion: identity)
        qw, qx, qy, qz = (np.float64(quats[g, 0]), np.float64(quats[g, 1]),
                          np.float64(quats[g, 2]), np.float64(quats[g, 3]))
        qn = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
        if qn > 0.0:
            inv = 1.0 / qn
            qw, qx, qy, qz = qw * inv, qx * inv, qy * inv, qz * inv
        else:
            qw, qx, qy, qz = 1.0, 0.0, 0.0, 0.0
        sx = math.exp(log_scales[g, 0])      # float32 in, float32 exp: ample for a scale
        sy = math.exp(log_scales[g, 1])
        sz = math.exp(log_scales[g, 2])
        r00, r01, r02 = 1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qw * qz), 2 * (qx * qz + qw * qy)
        r10, r11, r12 = 2 * (qx * qy + qw * qz), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qw * qx)
        r20, r21, r22 = 2 * (qx * qz - qw * qy), 2 * (qy * qz + qw * qx), 1 - 2 * (qx * qx + qy * qy)
        # M = W R S  (camera-space axes of the ellipsoid); Σ_cam = M M^T
        m00 = (w2c[0, 0] * r00 + w2c[0, 1] * r10 + w2c[0, 2] * r20) * sx
        m01 = (w2c[0, 0] * r01 + w2c[0, 1] * r11 + w2c[0, 2] * r21) * sy
        m02 = (w2c[0, 0] * r02 + w2c[0, 1] * r12 + w2c[0, 2] * r22) * sz
        m10 = (w2c[1, 0] * r00 + w2c[1, 1] * r10 + w2c[1, 2] * r20) * sx
        m11 = (w2c[1, 0] * r01 + w2c[1, 1] * r11 + w2c[1, 2] * r21) * sy
        m12 = (w2c[1, 0] * r02 + w2c[1, 1] * r12 + w2c[1, 2] * r22) * sz
        m20 = (w2c[2, 0] * r00 + w2c[2, 1] * r10 + w2c[2, 2] * r20) * sx
        m21 = (w2c[2, 0] * r01 + w2c[2, 1] * r11 + w2c[2, 2] * r21) * sy
        m22 = (w2c[2, 0] * r02 + w2c[2, 1] * r12 + w2c[2, 2] * r22) * sz
        if ortho:
            u = fx * x + cx
            v = fy * y + cy
            j00, j02, j11, j12 = fx, 0.0, fy, 0.0
        else:
            rz = 1.0 / z
            u = fx * x * rz + cx
            v = fy * y * rz + cy
            tx = z * min(lim_xp, max(-lim_xn, x * rz))
            ty = z * min(lim_yp, max(-lim_yn, y * rz))
            j00, j02 = fx * rz, -fx * tx * rz * rz
            j11, j12 = fy * rz, -fy * ty * rz * rz
        # T = J M (2x3); Σ_2d = T T^T
        t00, t01, t02 = j00 * m00 + j02 * m20, j00 * m01 + j02 * m21, j00 * m02 + j02 * m22
        t10, t11, t12 = j11 * m10 + j12 * m20, j11 * m11 + j12 * m21, j11 * m12 + j12 * m22
        ca = t00 * t00 + t01 * t01 + t02 * t02
        cb = t00 * t10 + t01 * t11 + t02 * t12
        cc = t10 * t10 + t11 * t11 + t12 * t12
        det_orig = ca * cc - cb * cb
        ca += EPS2D
        cc += EPS2D
        det = ca * cc - cb * cb
        if not (det > 0.0):
            continue
        op = 1.0 / (1.0 + math.exp(-logits[g]))
        if antialiased:
            op *= math.sqrt(max(0.0, det_orig / det))
        if not (op >= ALPHA_THRESHOLD):
            continue
        smax = math.log(op) - _LOG_THR
        # the ellipse sigma <= smax (alpha >= threshold) has half-sizes sqrt(2 smax Σ_ii); gsplat's
        # box radius is ceil(min(3.33, sqrt(2 smax)) sqrt(Σ_ii)), the same since smax <= ln 255
        extend2 = min(EXTEND_MAX * EXTEND_MAX, 2.0 * smax)
        hx = math.sqrt(extend2 * ca)
        hy = math.sqrt(extend2 * cc)
        rx, ry = np.ceil(hx), np.ceil(hy)
        if rx <= 0.0 and ry <= 0.0:
            continue
        if u + rx <= 0.0 or u - rx >= width or v + ry <= 0.0 or v - ry >= height:
            continue
        hx += 1e-3      # pixel box: a hair wider for rounding
        hy += 1e-3
        x0 = max(0.0, np.ceil(u - hx - 0.5))
        x1 = min(width - 1.0, np.floor(u + hx - 0.5))
        y0 = max(0.0, np.ceil(v - hy - 0.5))
        y1 = min(height - 1.0, np.floor(v + hy - 0.5))
        if x0 > x1 or y0 > y1:
            continue
        par[g, U] = u
        par[g, V] = v
        half_inv_det = 0.5 / det
        par[g, HALF_A] = cc * half_inv_det
        par[g, B] = -2.0 * cb * half_inv_det
        par[g, HALF_C] = ca * half_inv_det
        par[g, OPACITY] = op
        par[g, SMAX] = smax
        par[g, DEPTH] = z
        dxw, dyw, dzw = mx - campos[0], my - campos[1], mz - campos[2]
        inv_dn = 1.0 / max(math.sqrt(dxw * dxw + dyw * dyw + dzw * dzw), 1e-12)
        _sh_colour(sh, g, degree, dxw * inv_dn, dyw * inv_dn, dzw * inv_dn, par, g)
        par[g, X0] = x0
        par[g, X1] = x1
        par[g, Y0] = y0
        par[g, Y1] = y1
        tiles[g, 0] = np.int32(x0) // TILE
        tiles[g, 1] = np.int32(x1) // TILE
        tiles[g, 2] = np.int32(y0) // TILE
        tiles[g, 3] = np.int32(y1) // TILE


def render(gaussians: GaussianSet, camera: Camera, width: int, height: int, background=(0.0, 0.0, 0.0),
           *, mode: str = "antialiased", sh_degree: int | None = None, backend: str = "cpu") -> RenderResult:
    """Render ``gaussians`` [N] seen by ``camera`` into a ``height`` x ``width`` image (numba).

    Returns RenderResult(rgba [H, W, 4], depth [H, W], alpha [H, W]), float32; the same picture
    as ``reference.render`` (see common.py for the rules). ``backend`` is ignored.
    """
    inp = prepare(gaussians, camera, width, height, background, mode, sh_degree)
    if inp.count == 0:
        return empty_result(inp)
    # One frame at a time: numba's fallback thread pool (where OpenMP is missing) is not safe for
    # concurrent launches (engine/parallel.py), and the per-Gaussian records are reused.
    with PARALLEL_LOCK:
        par, tiles = project(inp)
        return composite(par, bin_splats(par, tiles, inp.width, inp.height), inp.width, inp.height,
                         inp.background)


def project(inp: RenderInputs) -> tuple[np.ndarray, np.ndarray]:
    """Stage 1: every Gaussian's splat record and tile range -> (par [N, RECORD] float32, tiles
    [N, 4] int32), both reused by the next call. The caller holds ``PARALLEL_LOCK``."""
    par, tiles = _PAR.get(inp.count), _TILES.get(inp.count)
    _project(inp.means, inp.quats, inp.log_scales, inp.opacity_logits, inp.sh, inp.sh_degree,
             inp.world_to_cam, inp.campos, inp.fx, inp.fy, inp.cx, inp.cy, inp.near, inp.far,
             inp.orthographic, inp.width, inp.height, inp.antialiased, par, tiles)
    return par, tiles


class Scratch:
    """A [rows, columns] array reused from frame to frame (fresh pages for megabytes cost page
    faults every frame). Used under ``PARALLEL_LOCK`` only; what ``get`` returns is overwritten
    by its next call."""

    def __init__(self, columns: int, dtype):
        self.buffer = np.empty((0, columns), dtype)

    def get(self, rows: int) -> np.ndarray:
        if self.buffer.shape[0] < rows or self.buffer.shape[0] > 4 * rows + 65536:
            self.buffer = np.empty((rows + rows // 4, self.buffer.shape[1]), self.buffer.dtype)
        return self.buffer[:rows]


_PAR, _TILES = Scratch(RECORD, np.float32), Scratch(4, np.int32)


def warm_up() -> None:
    """Compile (or load from the numba cache) every kernel by rendering one tiny frame.

    The first compile takes 10-25 s on 2 cores; later sessions load the cache in well under a
    second. Call it early, e.g. from a background thread when the add-on is enabled.
    """
    from .camera import look_at

    one = GaussianSet(np.zeros((1, 3)), np.full((1, 3), -3.0), np.array([[1.0, 0.0, 0.0, 0.0]]),
                      np.zeros(1), np.zeros((1, 1, 3)))
    render(one, Camera(look_at((0.0, -1.0, 0.0), (0.0, 0.0, 0.0)), 20.0, 20.0, 8.0, 8.0, 16, 16), 16, 16)


def threads() -> int:
    """Threads numba renders with."""
    return int(numba.get_num_threads())
