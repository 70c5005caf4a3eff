"""Fast CPU rasterizer (numba): tiles of 16x16 pixels, the same rules as ``reference.py``.

Pipeline per frame:
1. ``_project`` (parallel over Gaussians): camera transform, EWA projection, dilation and
   antialiasing compensation, culling, conic (inverse 2D covariance), SH colour, and the pixel
   box outside which the splat's alpha is below 1/255.
2. ``_depth_order``: a stable radix sort of the visible splats by depth (ties keep index order,
   like the reference). ``_bin`` then lists each splat, in that order, in every 16x16 tile its
   box touches, so every tile's list is already front to back.
3. ``_rasterize`` (parallel over tiles): per tile, a small state block (transmittance, colour and
   depth sums per pixel); each splat is blended into the rows of its box by ``_blend``, which
   handles 8 pixels of a row at once without branches (it compiles to AVX vector code: a
   polynomial exp, masks instead of ifs). A pixel stops on its own when its transmittance would
   fall to 1e-4; the tile stops once all of its pixels have.

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
from .common import (ALPHA_THRESHOLD, EPS2D, EXTEND_MAX, FOV_CLAMP, MAX_ALPHA, SH_C0, SH_C1,  # noqa: E402
                     SH_C2, SH_C3, T_MIN, TILE, RenderResult, empty_result, prepare)

_F = np.float32
_LOG_THR = math.log(ALPHA_THRESHOLD)
_MAX_ALPHA = _F(MAX_ALPHA)
_T_MIN = _F(T_MIN)


@njit(cache=True, inline="always")
def _sh_colour(sh, g, degree, dx, dy, dz, out, o):
    """Colour of Gaussian g for the unit view direction (dx, dy, dz): out[o, :] = max(0, SH + 0.5)."""
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
        out[o, ch] = max(v + 0.5, 0.0)


@njit(parallel=True, cache=True)
def _project(means, quats, log_scales, logits, sh, degree, w2c, campos, fx, fy, cx, cy, near, far,
             ortho, width, height, antialiased, par, rgb, rect):
    """Project every Gaussian (float64 maths, float32 results).

    par [N, 8] float32: u, v, conic a, conic b, conic c, opacity, ln(opacity / threshold), depth z.
    rgb [N, 3] float32 colour. rect [N, 4] int32 inclusive pixel box x0, x1, y0, y1; x0 > x1
    marks a culled splat.
    """
    n = means.shape[0]
    tan_x = 0.5 * width / fx
    tan_y = 0.5 * height / fy
    lim_xp = (width - cx) / fx + (FOV_CLAMP - 1.0) * tan_x
    lim_xn = cx / fx + (FOV_CLAMP - 1.0) * tan_x
    lim_yp = (height - cy) / fy + (FOV_CLAMP - 1.0) * tan_y
    lim_yn = cy / fy + (FOV_CLAMP - 1.0) * tan_y
    for g in prange(n):
        rect[g, 0] = 1
        rect[g, 1] = 0
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
        par[g, 0] = u
        par[g, 1] = v
        inv_det = 1.0 / det
        par[g, 2] = cc * inv_det
        par[g, 3] = -cb * inv_det
        par[g, 4] = ca * inv_det
        par[g, 5] = op
        par[g, 6] = smax
        par[g, 7] = z
        dxw, dyw, dzw = mx - campos[0], my - campos[1], mz - campos[2]
        inv_dn = 1.0 / max(math.sqrt(dxw * dxw + dyw * dyw + dzw * dzw), 1e-12)
        _sh_colour(sh, g, degree, dxw * inv_dn, dyw * inv_dn, dzw * inv_dn, rgb, g)
        rect[g, 0] = np.int32(x0)
        rect[g, 1] = np.int32(x1)
        rect[g, 2] = np.int32(y0)
        rect[g, 3] = np.int32(y1)


@njit(cache=True)
def _depth_order(par, rect):
    """Indices of the visible splats sorted front to back, stably (equal depths keep index order).

    LSD radix sort (3 passes of 11 bits) on the depth's float32 bits, made order-preserving for
    negative depths too (orthographic cameras may have a negative near plane).
    """
    n = rect.shape[0]
    count = 0
    for g in range(n):
        if rect[g, 0] <= rect[g, 1]:
            count += 1
    order = np.empty(count, np.int32)
    keys = np.empty(count, np.uint32)
    depth = np.empty(1, np.float32)
    bits = depth.view(np.uint32)
    k = 0
    for g in range(n):
        if rect[g, 0] <= rect[g, 1]:
            order[k] = g
            depth[0] = par[g, 7]
            b = bits[0]
            keys[k] = ~b if b & np.uint32(0x80000000) else b | np.uint32(0x80000000)
            k += 1
    tmp_order = np.empty(count, np.int32)
    tmp_keys = np.empty(count, np.uint32)
    hist = np.empty(2049, np.int64)
    for shift in (0, 11, 22):
        hist[:] = 0
        for i in range(count):
            hist[((keys[i] >> np.uint32(shift)) & np.uint32(2047)) + 1] += 1
        for i in range(1, 2049):
            hist[i] += hist[i - 1]
        for i in range(count):
            d = (keys[i] >> np.uint32(shift)) & np.uint32(2047)
            pos = hist[d]
            hist[d] = pos + 1
            tmp_order[pos] = order[i]
            tmp_keys[pos] = keys[i]
        order, tmp_order = tmp_order, order
        keys, tmp_keys = tmp_keys, keys
    return order


@njit(cache=True)
def _bin(order, rect, tiles_x, tiles_y):
    """Lists of splats per tile, each front to back -> (offsets [T + 1] int64, ids [M] int32)."""
    m = order.shape[0]
    boxes = np.empty((m, 4), np.int32)            # tile ranges, in depth order
    counts = np.zeros(tiles_x * tiles_y + 1, np.int64)
    for k in range(m):
        g = order[k]
        tx0, tx1 = rect[g, 0] // TILE, rect[g, 1] // TILE
        ty0, ty1 = rect[g, 2] // TILE, rect[g, 3] // TILE
        boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3] = tx0, tx1, ty0, ty1
        for ty in range(ty0, ty1 + 1):
            for tx in range(tx0, tx1 + 1):
                counts[ty * tiles_x + tx + 1] += 1
    offsets = np.cumsum(counts)
    fill = offsets[:-1].copy()
    ids = np.empty(offsets[-1], np.int32)
    for k in range(m):
        g = order[k]
        for ty in range(boxes[k, 2], boxes[k, 3] + 1):
            for tx in range(boxes[k, 0], boxes[k, 1] + 1):
                t = ty * tiles_x + tx
                ids[fill[t]] = g
                fill[t] += 1
    return offsets, ids


_ROW = 5 * TILE   # per tile row of state: transmittance, r, g, b, depth sum; TILE lanes each


@njit(cache=True, fastmath=True)
def _blend(st, r0, r1, w, ux, vy, half_a, cb, half_c, op, smax, red, green, blue, z):
    """Composite one splat into rows r0..r1 of a tile, lanes w..w+7 (0 <= w <= TILE - 8).

    st [TILE, 5 * TILE]: per tile row, transmittance (negative once the pixel has stopped; its
    magnitude is then the final value), then red, green, blue and depth sums, TILE lanes each.
    ux = u - (first pixel centre x), vy = v - (first row centre y); sigma(dx, dy) =
    half_a dx^2 + cb dx dy + half_c dy^2. Branch-free over 8 lanes so that it vectorises.

    exp(-sigma) is (Taylor_6(-sigma / 16))^16, relative error < 1e-5 on [0, 6]. Whether a pixel
    takes part is decided on sigma <= smax = ln(opacity * 255), i.e. exactly alpha >= 1/255,
    without the approximation.
    """
    w = w & (TILE - 1)          # provably non-negative: lets the lane loop vectorise
    for r in range(r0, r1 + 1):
        dy = vy - _F(r)
        bdy = cb * dy
        hq = half_c * dy * dy
        for lane in range(8):
            q = w + lane
            dx = ux - _F(q)
            sigma = (half_a * dx + bdy) * dx + hq
            s = min(max(sigma, _F(0.0)), _F(6.0)) * _F(-1.0 / 16.0)
            e = ((((((s * _F(1.0 / 720.0) + _F(1.0 / 120.0)) * s + _F(1.0 / 24.0)) * s + _F(1.0 / 6.0)) * s
                   + _F(0.5)) * s + _F(1.0)) * s + _F(1.0))
            e = e * e
            e = e * e
            e = e * e
            e = e * e
            alpha = min(_MAX_ALPHA, op * e)
            tp = st[r, q]
            nt = tp * (_F(1.0) - alpha)
            hit = (sigma >= _F(0.0)) & (sigma <= smax) & (tp > _F(0.0))
            keep = hit & (nt > _T_MIN)
            stop = hit & (nt <= _T_MIN)
            weight = alpha * tp if keep else _F(0.0)
            st[r, TILE + q] += weight * red
            st[r, 2 * TILE + q] += weight * green
            st[r, 3 * TILE + q] += weight * blue
            st[r, 4 * TILE + q] += weight * z
            st[r, q] = nt if keep else (-tp if stop else tp)


@njit(parallel=True, cache=True)
def _rasterize(offsets, ids, par, rgb, rect, tiles_x, width, height, bg, out_rgba, out_depth, out_alpha):
    """Composite each tile front to back (float32). Writes out_rgba [H, W, 4], depth, alpha."""
    n_tiles = offsets.shape[0] - 1
    for t in prange(n_tiles):
        ty, tx = t // tiles_x, t % tiles_x
        px0, py0 = tx * TILE, ty * TILE
        px1, py1 = min(px0 + TILE, width) - 1, min(py0 + TILE, height) - 1
        st = np.zeros((TILE, _ROW), np.float32)
        for r in range(TILE):          # pixels outside the image start stopped
            for q in range(TILE):
                st[r, q] = _F(1.0) if (py0 + r <= py1 and px0 + q <= px1) else _F(-1.0)
        x0, y0 = _F(px0) + _F(0.5), _F(py0) + _F(0.5)
        since_check = 0
        for k in range(offsets[t], offsets[t + 1]):
            g = ids[k]
            q0, q1 = max(rect[g, 0], px0) - px0, min(rect[g, 1], px1) - px0
            # 8-lane windows covering lanes q0..q1: one if they fit, else both halves
            r0, r1 = max(rect[g, 2], py0) - py0, min(rect[g, 3], py1) - py0
            w = min(q0, TILE - 8)
            wide = q1 >= w + 8
            if wide:
                w = 0
            ux, vy = par[g, 0] - x0, par[g, 1] - y0
            half_a, cb, half_c = _F(0.5) * par[g, 2], par[g, 3], _F(0.5) * par[g, 4]
            _blend(st, r0, r1, w, ux, vy, half_a, cb, half_c, par[g, 5], par[g, 6], rgb[g, 0], rgb[g, 1],
                   rgb[g, 2], par[g, 7])
            if wide:
                _blend(st, r0, r1, TILE - 8, ux, vy, half_a, cb, half_c, par[g, 5], par[g, 6], rgb[g, 0],
                       rgb[g, 1], rgb[g, 2], par[g, 7])
            since_check += 1
            if since_check == 16:      # every 16 splats: stop the tile once every pixel has
                since_check = 0
                live = False
                for r in range(TILE):
                    for q in range(TILE):
                        live |= st[r, q] > _F(0.0)
                if not live:
                    break
        for j in range(py0, py1 + 1):
            r = j - py0
            for i in range(px0, px1 + 1):
                q = i - px0
                tf = abs(st[r, q])
                a = _F(1.0) - tf
                out_rgba[j, i, 0] = st[r, TILE + q] + tf * bg[0]
                out_rgba[j, i, 1] = st[r, 2 * TILE + q] + tf * bg[1]
                out_rgba[j, i, 2] = st[r, 3 * TILE + q] + tf * bg[2]
                out_rgba[j, i, 3] = a
                out_alpha[j, i] = a
                out_depth[j, i] = st[r, 4 * TILE + q] / a if a > _F(0.0) else np.inf


def render(gaussians: GaussianSet, camera: Camera, width: int, height: int, background=(0.0, 0.0, 0.0),
           *, mode: str = "antialiased", sh_degree: int | None = None, backend: str = "cpu") -> RenderResult:
    """Render ``gaussians`` [N] seen by ``camera`` into a ``height`` x ``width`` image (numba).

    Returns RenderResult(rgba [H, W, 4], depth [H, W], alpha [H, W]), float32; the same picture
    as ``reference.render`` (see common.py for the rules). ``backend`` is ignored.
    """
    inp = prepare(gaussians, camera, width, height, background, mode, sh_degree)
    n = inp.count
    if n == 0:
        return empty_result(inp)
    tiles_x = (inp.width + TILE - 1) // TILE
    tiles_y = (inp.height + TILE - 1) // TILE
    rgba = np.empty((inp.height, inp.width, 4), np.float32)
    depth = np.empty((inp.height, inp.width), np.float32)
    alpha = np.empty((inp.height, inp.width), np.float32)
    # One frame at a time: numba's fallback thread pool (where OpenMP is missing) is not safe for
    # concurrent launches (engine/parallel.py), and the per-Gaussian scratch arrays are reused.
    with PARALLEL_LOCK:
        par, rgb, rect = _scratch(n)
        _project(inp.means, inp.quats, inp.log_scales, inp.opacity_logits, inp.sh, inp.sh_degree,
                 inp.world_to_cam, inp.campos, inp.fx, inp.fy, inp.cx, inp.cy, inp.near, inp.far,
                 inp.orthographic, inp.width, inp.height, inp.antialiased, par, rgb, rect)
        offsets, ids = _bin(_depth_order(par, rect), rect, tiles_x, tiles_y)
        # tiles differ a lot in work (the head is somewhere in the frame): hand them out in
        # small dynamic chunks rather than one contiguous half per thread
        with numba.parallel_chunksize(4):
            _rasterize(offsets, ids, par, rgb, rect, tiles_x, inp.width, inp.height, inp.background,
                       rgba, depth, alpha)
    return RenderResult(rgba, depth, alpha)


_SCRATCH: list = []


def _scratch(n: int):
    """Per-Gaussian work arrays (par [n, 8], rgb [n, 3], rect [n, 4]) reused between frames."""
    if not _SCRATCH or _SCRATCH[0].shape[0] < n or _SCRATCH[0].shape[0] > 4 * n + 4096:
        _SCRATCH[:] = [np.empty((n, 8), np.float32), np.empty((n, 3), np.float32), np.empty((n, 4), np.int32)]
    return _SCRATCH[0][:n], _SCRATCH[1][:n], _SCRATCH[2][:n]


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
