"""Niantic's ``.spz``: gzip-compressed, quantised 3D Gaussians (format versions 2 and 3).

Layout of the decompressed stream (all little-endian), written from the public format
description (github.com/nianticlabs/spz, README "File Format"):

    header, 16 bytes: magic u32 = 0x5053474e ("NGSP"), version u32 (2 | 3), count u32,
                      sh_degree u8 (0..4), fractional_bits u8, flags u8 (0x1 antialiased,
                      0x2 extensions follow the header), reserved u8
    positions  [N, 3] 24-bit signed fixed point, value / 2**fractional_bits
    alphas     [N]    u8, sigmoid(opacity) * 255
    colours    [N, 3] u8, f_dc * 0.15 * 255 + 127.5
    scales     [N, 3] u8, (log scale + 10) * 16
    rotations  v2: [N, 3] u8, (x, y, z) * 127.5 + 127.5 of the unit quaternion with w >= 0;
               v3: [N] u32, "smallest three": bits 30-31 the index of the largest |component|
               (order x, y, z, w), then for the other three, from the top, 1 sign bit and a
               9-bit magnitude of |c| / sqrt(1/2) * 511
    sh         [N, D, 3] u8 (coefficient-major, colour inner; D = 3, 8, 15, 24), value * 128 + 128

SPZ stores RUB axes (OpenGL); the 3DGS PLY convention is RDF. Like Niantic's converter we flip
y and z on the way in and out, so a PLY and its SPZ conversion read back alike. Blender 5.3's own
SPZ importer (checked with bpy 5.3.0) places the RUB data Z-up, (x, -z, y), while its PLY importer
keeps coordinates as they are; ``BLENDER_FROM_RDF`` turns what ``read_spz`` returns into what
Blender's importer makes (the add-on applies it to .spz files only, and its inverse on export). Degree-4 SH is
read and dropped (GaussianSet holds degrees 0-3). Files with extensions (flag 0x2) and the
unreleased version 1 (float16 positions) are refused with a clear error.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from ..avatar.gaussian_set import GaussianSet
from ..errors import GaussianHeadsError, InputFileError
from ._common import opacity_logits_from_u8, read_capped, write_atomic

MAGIC = 0x5053474E
VERSIONS = (2, 3)
MAX_COUNT = 10_000_000          # Niantic's own reader stops here too
COLOR_SCALE = 0.15
_HEADER = struct.Struct("<IIIBBBB")
_SH_DIM = {0: 0, 1: 3, 2: 8, 3: 15, 4: 24}
_SQRT1_2 = np.float32(0.7071067811865476)
#: [4, 4] RDF (what read_spz returns) -> Blender 5.3's SPZ import frame: (x, y, z) -> (x, z, -y)
BLENDER_FROM_RDF = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])
# sign of each SH coefficient k >= 1 when y and z flip (RUB <-> RDF), 3DGS basis order
_FLIP_SH = np.array([-1, -1, 1,  -1, 1, 1, -1, 1,  -1, 1, -1, -1, 1, -1, 1], np.float32)


def _flip_axes(means, quats, sh):
    """RUB <-> RDF (a 180 degree turn about x): negate y, z; quaternion (w, x, -y, -z)."""
    means = means * np.array([1, -1, -1], np.float32)
    quats = quats * np.array([1, 1, -1, -1], np.float32)
    k = sh.shape[1]
    if k > 1:
        sh = sh.copy()
        sh[:, 1:] *= _FLIP_SH[:k - 1, None]
    return means, quats, sh


def _record_size(version: int, sh_degree: int) -> int:
    return 9 + 1 + 3 + 3 + (4 if version >= 3 else 3) + 3 * _SH_DIM[sh_degree]


def read_spz(path: str | os.PathLike) -> GaussianSet:
    """Read an ``.spz`` file -> GaussianSet (N), RDF axes like a 3DGS PLY."""
    path = os.fspath(path)
    raw = read_capped(path)
    if raw[:2] != b"\x1f\x8b":
        raise InputFileError(path, "not an SPZ file (it is not gzip-compressed)")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        head = inflater.decompress(raw, _HEADER.size)
        if len(head) < _HEADER.size:
            raise InputFileError(path, "SPZ file is truncated inside its header")
        magic, version, n, degree, frac, flags, _ = _HEADER.unpack(head)
        if magic != MAGIC:
            raise InputFileError(path, "not an SPZ file (wrong magic number)")
        if version not in VERSIONS:
            raise InputFileError(path, f"SPZ version {version} is not supported (only 2 and 3)")
        if n > MAX_COUNT:
            raise InputFileError(path, f"SPZ header claims {n:,} Gaussians, more than we accept ({MAX_COUNT:,})")
        if degree > 4:
            raise InputFileError(path, f"SPZ header has SH degree {degree} (0-4 allowed)")
        if frac > 23:
            raise InputFileError(path, f"SPZ header has {frac} fractional bits (at most 23)")
        if flags & 0x2:
            raise InputFileError(path, "SPZ file uses extensions, which this reader does not support")
        need = n * _record_size(version, degree)
        # never inflate more than the header's count allows (a gzip bomb stops here)
        body = inflater.decompress(inflater.unconsumed_tail, need) if need else b""
    except zlib.error as exc:
        raise InputFileError(path, f"SPZ file is damaged (gzip: {exc})") from None
    if len(body) < need:
        raise InputFileError(path, f"SPZ file is truncated: {n:,} Gaussians need {need:,} bytes, "
                                   f"it holds {len(body):,}")
    return _decode(body, n, version, degree, frac)


def _decode(body: bytes, n: int, version: int, degree: int, frac: int) -> GaussianSet:
    buf = np.frombuffer(body, np.uint8)
    at = 0

    def take(count):
        nonlocal at
        out = buf[at:at + count]
        at += count
        return out

    p = take(9 * n).reshape(n, 3, 3).astype(np.int32)
    fixed = p[..., 0] | (p[..., 1] << 8) | (p[..., 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    means = (fixed.astype(np.float64) / (1 << frac)).astype(np.float32)
    opacity = opacity_logits_from_u8(take(n))
    dc = (take(3 * n).reshape(n, 3).astype(np.float32) / 255.0 - 0.5) / COLOR_SCALE
    log_scales = take(3 * n).reshape(n, 3).astype(np.float32) / 16.0 - 10.0
    if version >= 3:
        xyzw = _unpack_smallest_three(take(4 * n).view("<u4"))
    else:
        xyz = take(3 * n).reshape(n, 3).astype(np.float32) / 127.5 - 1.0
        w = np.sqrt(np.maximum(0.0, 1.0 - (xyz * xyz).sum(1)))
        xyzw = np.concatenate([xyz, w[:, None]], 1)
    quats = xyzw[:, [3, 0, 1, 2]]
    norm = np.linalg.norm(quats, axis=1, keepdims=True)
    quats = np.where(norm > 1e-6, quats / np.maximum(norm, 1e-6), np.array([1, 0, 0, 0], np.float32))
    dim = _SH_DIM[degree]
    rest = (take(3 * dim * n).reshape(n, dim, 3).astype(np.float32) - 128.0) / 128.0
    keep = min(dim, 15)
    sh = np.concatenate([dc[:, None, :], rest[:, :keep]], 1)
    means, quats, sh = _flip_axes(means, quats, sh)
    return GaussianSet(means, log_scales, quats, opacity, sh)


def _unpack_smallest_three(comp: np.ndarray) -> np.ndarray:
    """[N] u32 -> [N, 4] float32 quaternions (x, y, z, w)."""
    comp = comp.astype(np.uint32)
    largest = (comp >> 30).astype(np.int64)
    out = np.zeros((comp.shape[0], 4), np.float32)
    sumsq = np.zeros(comp.shape[0], np.float32)
    rows = np.arange(comp.shape[0])
    slot = np.zeros(comp.shape[0], np.int64)   # how many small components taken (from the low bits)
    for i in (3, 2, 1, 0):
        here = largest != i
        shift = (10 * slot).astype(np.uint32)
        bits = (comp >> shift) & 0x3FF
        value = _SQRT1_2 * (bits & 0x1FF).astype(np.float32) / 511.0
        value = np.where(bits & 0x200, -value, value)
        out[rows, i] = np.where(here, value, out[rows, i])
        sumsq += np.where(here, value * value, 0.0).astype(np.float32)
        slot += here
    out[rows, largest] = np.sqrt(np.maximum(0.0, 1.0 - sumsq))
    return out


def _pack_smallest_three(xyzw: np.ndarray) -> np.ndarray:
    """[N, 4] unit quaternions (x, y, z, w) -> [N] u32."""
    n = xyzw.shape[0]
    rows = np.arange(n)
    largest = np.argmax(np.abs(xyzw), axis=1)
    negate = xyzw[rows, largest] < 0
    comp = largest.astype(np.uint32)
    for i in range(4):
        here = largest != i
        value = xyzw[:, i]
        sign = ((value < 0) ^ negate).astype(np.uint32)
        mag = np.minimum(np.floor(511.0 * np.abs(value) / _SQRT1_2 + 0.5), 511).astype(np.uint32)
        comp = np.where(here, (comp << 10) | (sign << 9) | mag, comp)
    return comp.astype("<u4")


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def spz_bytes(gaussians: GaussianSet, version: int = 3, antialiased: bool = False, level: int = 1) -> bytes:
    """Serialise Gaussians (N, RDF axes) to an ``.spz`` (gzip) byte string; deterministic.

    ``level``: gzip level. 1 writes 100k degree-3 Gaussians ~8x faster than 6 for files 3-5 %
    larger (docs/PERFORMANCE.md, "Splat files")."""
    if version not in VERSIONS:
        raise GaussianHeadsError(f"SPZ version {version} cannot be written (2 or 3)")
    g = gaussians
    n = len(g)
    if n > MAX_COUNT:
        raise GaussianHeadsError(f"{n:,} Gaussians are more than an SPZ file holds ({MAX_COUNT:,})")
    g.validate_finite("Gaussians to write")
    means, quats, sh = _flip_axes(g.means, g.quats, g.sh)
    extent = float(np.abs(means).max()) if n else 0.0
    frac = 12   # ~0.24 mm steps; fewer bits when the scene is larger than +-2 km
    while frac > 0 and extent * (1 << frac) >= (1 << 23) - 1:
        frac -= 1
    if extent * (1 << frac) >= (1 << 23) - 1:
        raise GaussianHeadsError(f"positions up to {extent:.0f} m do not fit SPZ's 24-bit coordinates")
    fixed = np.round(means.astype(np.float64) * (1 << frac)).astype(np.int32)
    pos = np.stack([fixed & 0xFF, (fixed >> 8) & 0xFF, (fixed >> 16) & 0xFF], -1).astype(np.uint8)
    alpha = _u8(g.opacities.astype(np.float64) * 255.0)
    colour = _u8(sh[:, 0] * (COLOR_SCALE * 255.0) + 127.5)
    scales = _u8((g.log_scales + 10.0) * 16.0)
    q = quats.astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    xyzw = q[:, [1, 2, 3, 0]]
    if version >= 3:
        rot = _pack_smallest_three(xyzw).view(np.uint8)
    else:
        xyzw = np.where(xyzw[:, 3:] < 0, -xyzw, xyzw)
        rot = _u8(xyzw[:, :3] * 127.5 + 127.5)
    rest = sh[:, 1:]
    body = b""
    if rest.shape[1]:
        q_sh = np.round(rest.astype(np.float64) * 128.0 + 128.0)
        bucket = np.full(rest.shape[1], 16.0)
        bucket[:3] = 8.0    # 5 bits for degree 1, 4 for higher bands (Niantic's defaults)
        q_sh = np.floor((q_sh + bucket[None, :, None] / 2) / bucket[None, :, None]) * bucket[None, :, None]
        body = np.clip(q_sh, 0, 255).astype(np.uint8).tobytes()
    header = _HEADER.pack(MAGIC, version, n, g.sh_degree, frac, 0x1 if antialiased else 0, 0)
    payload = b"".join([header, pos.tobytes(), alpha.tobytes(), colour.tobytes(), scales.tobytes(),
                        np.ascontiguousarray(rot).tobytes(), body])
    return gzip.compress(payload, compresslevel=level, mtime=0)


def write_spz(path: str | os.PathLike, gaussians: GaussianSet, version: int = 3) -> None:
    """Write Gaussians (N) as ``.spz`` (default version 3); atomic (temp file + rename)."""
    write_atomic(path, spz_bytes(gaussians, version))
