"""The CPU rasterizer's tile stages (numba): depth sort, tile binning, per-tile compositing.

Imported by ``cpu.py`` (which sets numba's cache folder first); the rules are in ``common.py``.
Every splat is one float32 record of ``RECORD`` values (one 64-byte cache line), laid out by
the field indices below; ``cpu._project`` writes one per Gaussian (``par`` [N, RECORD]).

* ``bin_splats``: ``_depth_order`` radix-sorts the visible splats front to back, ``_bin`` lists
  each, in that order, in every 16x16 tile its box touches (a counting sort by tile), so every
  tile's list is already front to back.
* ``composite`` (parallel over tiles): a tile first copies its splats' records into a local
  array (independent loads that overlap, instead of one cache miss at a time inside the blend
  loop), then blends them front to back into a small state block (transmittance, colour and
  depth sums per pixel, in L1) with ``_blend8``/``_blend16``: one box row at a time, 8 or 16
  pixels at once, without branches (AVX2/AVX-512 code: a polynomial exp, masks for ifs). A pixel
  stops on its own when its transmittance would fall to 1e-4; the tile stops once all of its
  pixels have.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .common import MAX_ALPHA, T_MIN, TILE, RenderResult

# Fields of a splat record: pixel centre, conic halves (sigma = half_a dx² + b dx dy + half_c dy²),
# opacity, smax = ln(opacity / alpha threshold), view depth, colour, and the inclusive pixel box
# (small integers held exactly as float32). Whether a splat is drawn at all is in ``tiles``.
U, V, HALF_A, B, HALF_C, OPACITY, SMAX, DEPTH, RED, GREEN, BLUE, X0, X1, Y0, Y1 = range(15)
RECORD = 16

_F = np.float32
_MAX_ALPHA = _F(MAX_ALPHA)
_T_MIN = _F(T_MIN)
_ROW = 5 * TILE   # per tile row of state: transmittance, r, g, b, depth sum; TILE lanes each


@njit(cache=True)
def _depth_order(par, tiles):
    """Indices [m] int32 of the visible splats (``tiles[g, 0] <= tiles[g, 1]``) sorted front to
    back by ``par[g, DEPTH]``, stably
    (equal depths keep index order, like the reference).

    LSD radix sort (3 passes of 11 bits) on the depth's float32 bits, made order-preserving for
    negative depths too (orthographic cameras may have a negative near plane).
    """
    n = par.shape[0]
    count = 0
    for g in range(n):
        if tiles[g, 0] <= tiles[g, 1]:
            count += 1
    order = np.empty(count, np.int32)
    keys = np.empty(count, np.uint32)
    depth = np.empty(1, np.float32)
    bits = depth.view(np.uint32)
    k = 0
    for g in range(n):
        if tiles[g, 0] <= tiles[g, 1]:
            order[k] = g
            depth[0] = par[g, DEPTH]
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
def _bin(order, tiles, tiles_x, tiles_y):
    """List the visible splats, front to back, in every tile their box touches.

    Returns (offsets [T + 1] int64, ids [M] int32): tile t's splats are
    ``par[ids[offsets[t]:offsets[t + 1]]]``, in the order of ``order`` (a counting sort by tile).
    """
    m = order.shape[0]
    boxes = np.empty((m, 4), np.int32)     # tile ranges in depth order: one tight gather whose
    for k in range(m):                     # loads overlap, then two passes in memory order
        g = order[k]
        for i in range(4):
            boxes[k, i] = tiles[g, i]
    counts = np.zeros(tiles_x * tiles_y + 1, np.int64)
    for k in range(m):
        for ty in range(boxes[k, 2], boxes[k, 3] + 1):
            for tx in range(boxes[k, 0], boxes[k, 1] + 1):
                counts[ty * tiles_x + tx + 1] += 1
    offsets = np.cumsum(counts)
    fill = offsets[:-1].copy()
    ids = np.empty(offsets[-1], np.int32)
    for k in range(m):
        for ty in range(boxes[k, 2], boxes[k, 3] + 1):
            for tx in range(boxes[k, 0], boxes[k, 1] + 1):
                t = ty * tiles_x + tx
                ids[fill[t]] = order[k]
                fill[t] += 1
    return offsets, ids


def _blend_function(lanes: int):
    """The splat-into-rows blend for a window of ``lanes`` pixels (a compile-time constant, so
    the lane loop becomes straight vector code: 8 lanes = one AVX2 register, 16 = a tile row)."""

    @njit(inline="always")      # inlined into _rasterize, whose fastmath flags apply
    def blend(st, r0, r1, w, ux, vy, half_a, cb, half_c, op, smax, red, green, blue, z):
        """Composite one splat into rows r0..r1 of a tile, lanes w..w + lanes - 1.

        st [TILE, 5 * TILE]: per tile row, transmittance (negative once the pixel has stopped;
        its magnitude is then the final value), then red, green, blue and depth sums, TILE lanes
        each. ux = u - (first pixel centre x), vy = v - (first row centre y); sigma(dx, dy) =
        half_a dx² + cb dx dy + half_c dy². Branch-free over the lanes so that it vectorises.

        exp(-sigma) is (Taylor_6(-sigma / 16))^16, relative error < 1e-5 on [0, 6], the
        polynomial in Estrin form (a shorter chain of dependent multiply-adds). Whether a
        pixel takes part is decided on sigma <= smax = ln(opacity * 255), i.e. exactly
        alpha >= 1/255, without the approximation.
        """
        w = w & (TILE - 1)          # provably non-negative: lets the lane loop vectorise
        for r in range(r0, r1 + 1):
            dy = vy - _F(r)
            bdy = cb * dy
            hq = half_c * dy * dy
            for lane in range(lanes):
                q = w + lane
                dx = ux - _F(q)
                sigma = (half_a * dx + bdy) * dx + hq
                s = min(max(sigma, _F(0.0)), _F(6.0)) * _F(-1.0 / 16.0)
                s2 = s * s
                e = ((_F(1.0) + s) + s2 * (_F(0.5) + s * _F(1.0 / 6.0))
                     + (s2 * s2) * ((_F(1.0 / 24.0) + s * _F(1.0 / 120.0)) + s2 * _F(1.0 / 720.0)))
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

    return blend


_blend8, _blend16 = _blend_function(8), _blend_function(TILE)


@njit(parallel=True, cache=True, fastmath={"contract"})  # the blends' multiply-adds become FMAs
def _rasterize(offsets, ids, par, tiles_x, width, height, bg, out_rgba, out_depth, out_alpha):
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
        # the tile's records first, in one tight loop whose independent loads overlap (read one by
        # one inside the blend loop below, each cache miss stalls it)
        first, count = offsets[t], offsets[t + 1] - offsets[t]
        splats = np.empty((count, RECORD), np.float32)
        for k in range(count):
            g = ids[first + k]
            for f in range(RECORD):
                splats[k, f] = par[g, f]
        since_check = 0
        for k in range(count):
            s = splats[k]
            q0, q1 = max(int(s[X0]), px0) - px0, min(int(s[X1]), px1) - px0
            r0, r1 = max(int(s[Y0]), py0) - py0, min(int(s[Y1]), py1) - py0
            ux, vy = s[U] - x0, s[V] - y0
            if q1 - q0 < 8:            # fits one 8-lane window (w..w+7 holds q0..q1): half the
                _blend8(st, r0, r1, min(q0, TILE - 8), ux, vy, s[HALF_A], s[B], s[HALF_C], s[OPACITY],
                        s[SMAX], s[RED], s[GREEN], s[BLUE], s[DEPTH])   # work where vectors are 8 wide
            else:
                _blend16(st, r0, r1, 0, ux, vy, s[HALF_A], s[B], s[HALF_C], s[OPACITY], s[SMAX], s[RED],
                         s[GREEN], s[BLUE], s[DEPTH])
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


def bin_splats(par, tiles, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Stage 2: sort the visible splats (``par`` [N, RECORD], ``tiles`` [N, 4] from
    ``cpu.project``) front to back and list them per 16x16 tile -> (offsets [T + 1] int64,
    ids [M] int32), see ``_bin``."""
    tiles_x, tiles_y = (width + TILE - 1) // TILE, (height + TILE - 1) // TILE
    return _bin(_depth_order(par, tiles), tiles, tiles_x, tiles_y)


def composite(par, tiles: tuple[np.ndarray, np.ndarray], width: int, height: int, background) -> RenderResult:
    """Stage 3: blend every tile's splats (``par`` records, ``tiles`` from ``bin_splats``) front to
    back -> RenderResult (rgba [H, W, 4], depth, alpha [H, W], float32). The caller holds
    ``PARALLEL_LOCK``."""
    offsets, ids = tiles
    rgba = np.empty((height, width, 4), np.float32)
    depth = np.empty((height, width), np.float32)
    alpha = np.empty((height, width), np.float32)
    # tiles differ a lot in work (the head is somewhere in the frame): hand them out in small
    # dynamic chunks rather than one contiguous half per thread
    with numba.parallel_chunksize(4):
        _rasterize(offsets, ids, par, (width + TILE - 1) // TILE, width, height, background, rgba, depth, alpha)
    return RenderResult(rgba, depth, alpha)
