"""Fused per-Gaussian lifting kernel (numba), with the numpy reference it must agree with.

``lift_gaussians(vertices, faces, face_idx, bary, offsets, log_scales, quats)`` computes, for every
Gaussian bound to triangle (v0, v1, v2) at barycentrics b (frame R as in ``binding``; the face
scale s by ``scale_rule``: "mean_edge" (ours, ``binding``) or "edge_height", GaussianAvatars' rule
s = (|v1 − v0| + distance of v2 from the line v0v1) / 2):

    means      [N, 3] = b·(v0, v1, v2) + s · R · offsets
    log_scales [N, 3] = log_scales + log(s)
    quats      [N, 4] = q(R) ⊗ quats

Inputs: vertices [V, 3] float32, faces [F, 3] int, face_idx [N] int, bary [N, 3],
offsets [N, 3], log_scales [N, 3], quats [N, 4] (all float32). ``impl`` = "numba" | "numpy" |
"auto" (numba when importable). The numba path computes each face's frame once (F), then
places the Gaussians (N). The numba kernels is single-threaded on purpose: Blender's render
threads and the user's other work share the cores.
"""

from __future__ import annotations

import numpy as np

from .binding import _frames_from_corners
from .transforms import matrix_to_quat

try:  # numba is part of the engine's stack, but the numpy path keeps us working without it
    import numba as _numba
except ImportError:  # pragma: no cover - exercised only where numba is absent
    _numba = None

_MIN = 1e-9


SCALE_RULES = ("mean_edge", "edge_height")


def _lift_numpy(vertices, corners, bary, offsets, log_scales, quats, rule=0):
    v = vertices.astype(np.float64)
    v0, v1, v2 = v[corners[:, 0]], v[corners[:, 1]], v[corners[:, 2]]
    rot, s = _frames_from_corners(v0, v1, v2)
    if rule == 1:
        e1, e2 = v1 - v0, v2 - v0
        height = np.abs(np.einsum("ni,ni->n", rot[:, :, 1], e2))
        s = np.maximum((np.linalg.norm(e1, axis=1) + height) / 2.0, _MIN)
    b = bary.astype(np.float64)
    points = v0 * b[:, 0:1] + v1 * b[:, 1:2] + v2 * b[:, 2:3]
    means = points + np.einsum("nij,nj->ni", rot, offsets.astype(np.float64) * s[:, None])
    out_ls = log_scales + np.log(s)[:, None]
    qf = matrix_to_quat(rot)
    q = quats.astype(np.float64)
    aw, ax, ay, az = qf.T
    bw, bx, by, bz = q.T
    out_q = np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                      aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], 1)
    return means.astype(np.float32), out_ls.astype(np.float32), out_q.astype(np.float32)


def _face_loop(vertices, faces, frame, rule):
    """Per face: frame[f] = (R row-major 9, s, log s, quat wxyz 4) in float64 (rule 1: edge_height)."""
    for f in range(faces.shape[0]):
        a = faces[f, 0]
        b = faces[f, 1]
        c = faces[f, 2]
        e1x = float(vertices[b, 0]) - float(vertices[a, 0])
        e1y = float(vertices[b, 1]) - float(vertices[a, 1])
        e1z = float(vertices[b, 2]) - float(vertices[a, 2])
        e2x = float(vertices[c, 0]) - float(vertices[a, 0])
        e2y = float(vertices[c, 1]) - float(vertices[a, 1])
        e2z = float(vertices[c, 2]) - float(vertices[a, 2])
        e3x, e3y, e3z = e2x - e1x, e2y - e1y, e2z - e1z
        l1 = np.sqrt(e1x * e1x + e1y * e1y + e1z * e1z)
        l2 = np.sqrt(e2x * e2x + e2y * e2y + e2z * e2z)
        l3 = np.sqrt(e3x * e3x + e3y * e3y + e3z * e3z)
        inv = 1.0 / max(l1, _MIN)
        xx, xy, xz = e1x * inv, e1y * inv, e1z * inv
        nx = e1y * e2z - e1z * e2y
        ny = e1z * e2x - e1x * e2z
        nz = e1x * e2y - e1y * e2x
        inv = 1.0 / max(np.sqrt(nx * nx + ny * ny + nz * nz), _MIN * _MIN)
        zx, zy, zz = nx * inv, ny * inv, nz * inv
        yx = zy * xz - zz * xy
        yy = zz * xx - zx * xz
        yz = zx * xy - zy * xx
        s = max((l1 + l2 + l3) / 3.0, _MIN)
        if rule == 1:
            s = max((l1 + abs(yx * e2x + yy * e2y + yz * e2z)) / 2.0, _MIN)
        # R = [[xx, yx, zx], [xy, yy, zy], [xz, yz, zz]] (columns x, y, z)
        frame[f, 0], frame[f, 1], frame[f, 2] = xx, yx, zx
        frame[f, 3], frame[f, 4], frame[f, 5] = xy, yy, zy
        frame[f, 6], frame[f, 7], frame[f, 8] = xz, yz, zz
        frame[f, 9] = s
        frame[f, 10] = np.log(s)
        # quaternion of R (Shepperd's method), w >= 0
        tr = xx + yy + zz
        if tr > 0.0:
            t = np.sqrt(tr + 1.0) * 2.0
            qw, qx, qy, qz = 0.25 * t, (yz - zy) / t, (zx - xz) / t, (xy - yx) / t
        elif xx > yy and xx > zz:
            t = np.sqrt(1.0 + xx - yy - zz) * 2.0
            qw, qx, qy, qz = (yz - zy) / t, 0.25 * t, (yx + xy) / t, (zx + xz) / t
        elif yy > zz:
            t = np.sqrt(1.0 + yy - xx - zz) * 2.0
            qw, qx, qy, qz = (zx - xz) / t, (yx + xy) / t, 0.25 * t, (zy + yz) / t
        else:
            t = np.sqrt(1.0 + zz - xx - yy) * 2.0
            qw, qx, qy, qz = (xy - yx) / t, (zx + xz) / t, (zy + yz) / t, 0.25 * t
        if qw < 0.0:
            qw, qx, qy, qz = -qw, -qx, -qy, -qz
        frame[f, 11], frame[f, 12], frame[f, 13], frame[f, 14] = qw, qx, qy, qz


def _gaussian_loop(vertices, faces, frame, face_idx, bary, offsets, log_scales, quats, means, out_ls, out_q):
    for i in range(face_idx.shape[0]):
        f = face_idx[i]
        a = faces[f, 0]
        b = faces[f, 1]
        c = faces[f, 2]
        s = frame[f, 9]
        b0, b1, b2 = bary[i, 0], bary[i, 1], bary[i, 2]
        ox, oy, oz = offsets[i, 0] * s, offsets[i, 1] * s, offsets[i, 2] * s
        for k in range(3):
            means[i, k] = (b0 * vertices[a, k] + b1 * vertices[b, k] + b2 * vertices[c, k]
                           + frame[f, 3 * k] * ox + frame[f, 3 * k + 1] * oy + frame[f, 3 * k + 2] * oz)
            out_ls[i, k] = log_scales[i, k] + frame[f, 10]
        qw, qx, qy, qz = frame[f, 11], frame[f, 12], frame[f, 13], frame[f, 14]
        bw, bx, by, bz = quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3]
        out_q[i, 0] = qw * bw - qx * bx - qy * by - qz * bz
        out_q[i, 1] = qw * bx + qx * bw + qy * bz - qz * by
        out_q[i, 2] = qw * by - qx * bz + qy * bw + qz * bx
        out_q[i, 3] = qw * bz + qx * by - qy * bx + qz * bw


_jitted: tuple | None = None


def _jit(func):
    try:
        return _numba.njit(cache=True, nogil=True)(func)
    except Exception:  # no writable cache location: compile without caching
        return _numba.njit(cache=False, nogil=True)(func)


def _kernels():
    global _jitted
    if _jitted is None:
        _jitted = (_jit(_face_loop), _jit(_gaussian_loop))
    return _jitted


def available_impls() -> list[str]:
    return ["numba", "numpy"] if _numba is not None else ["numpy"]


def lift_gaussians(vertices, faces, face_idx, bary, offsets, log_scales, quats, impl: str = "auto",
                   scale_rule: str = "mean_edge"):
    """See the module docstring. Returns (means [N,3], log_scales [N,3], quats [N,4]) float32."""
    if scale_rule not in SCALE_RULES:
        raise ValueError(f"unknown face scale rule '{scale_rule}' (have: {SCALE_RULES})")
    rule = SCALE_RULES.index(scale_rule)
    if impl == "auto":
        impl = "numba" if _numba is not None else "numpy"
    if impl == "numpy":
        corners = np.asarray(faces, np.int64)[face_idx]
        return _lift_numpy(vertices, corners, bary, offsets, log_scales, quats, rule)
    if impl != "numba" or _numba is None:
        raise ValueError(f"lift implementation '{impl}' is not available (have: {available_impls()})")
    face_loop, gaussian_loop = _kernels()
    n = face_idx.shape[0]
    vertices = np.ascontiguousarray(vertices, np.float32)
    faces = np.ascontiguousarray(faces, np.int32)
    frame = np.empty((faces.shape[0], 15), np.float64)
    face_loop(vertices, faces, frame, rule)
    means = np.empty((n, 3), np.float32)
    out_ls = np.empty((n, 3), np.float32)
    out_q = np.empty((n, 4), np.float32)
    gaussian_loop(vertices, faces, frame, np.ascontiguousarray(face_idx, np.int32),
                  np.ascontiguousarray(bary, np.float32), np.ascontiguousarray(offsets, np.float32),
                  np.ascontiguousarray(log_scales, np.float32), np.ascontiguousarray(quats, np.float32),
                  means, out_ls, out_q)
    return means, out_ls, out_q
