"""Small rotation helpers for animation curves (numpy, float64 inside, no scipy needed).

Conventions: axis-angle vectors ``[..., 3]`` (radians, the model's native frame: +Y up, +Z forward,
+X the subject's left); quaternions ``[..., 4]`` in (w, x, y, z) order, unit length.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12


def axis_angle_to_quat(aa: np.ndarray) -> np.ndarray:
    """``aa [..., 3]`` axis-angle -> ``[..., 4]`` unit quaternion (w, x, y, z), float64."""
    aa = np.asarray(aa, np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    half = 0.5 * angle
    # sin(half)/angle, with its Taylor series near zero so tiny rotations stay exact.
    small = angle < 1e-6
    k = np.where(small, 0.5 - angle**2 / 48.0, np.sin(half) / np.where(small, 1.0, angle))
    return np.concatenate([np.cos(half), aa * k], axis=-1)


def quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """``q [..., 4]`` (w, x, y, z) -> ``[..., 3]`` axis-angle with angle in [0, π], float64."""
    q = np.asarray(q, np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), _EPS)
    q = np.where(q[..., :1] < 0.0, -q, q)  # shortest arc: w >= 0
    w = np.clip(q[..., :1], -1.0, 1.0)
    v = q[..., 1:]
    s = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, w)
    small = s < 1e-9
    k = np.where(small, 2.0 / np.maximum(w, _EPS), angle / np.where(small, 1.0, s))
    return v * k


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a ⊗ b`` of ``[..., 4]`` (w, x, y, z) quaternions."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a, np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, np.float64), -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between unit quaternions ``q0, q1 [N, 4]`` at ``t [N]`` in [0, 1].

    Takes the shorter arc; falls back to normalised lerp where the two are nearly equal.
    """
    q0 = np.asarray(q0, np.float64)
    q1 = np.asarray(q1, np.float64)
    t = np.asarray(t, np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0.0, -q1, q1)
    dot = np.abs(dot)
    near = dot > 0.9995
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_t = np.sin(theta)
    safe = np.where(near, 1.0, sin_t)
    w0 = np.where(near, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    w1 = np.where(near, t, np.sin(t * theta) / safe)
    out = w0 * q0 + w1 * q1
    return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), _EPS)


def _axis_quat(axis: int, angle: np.ndarray) -> np.ndarray:
    angle = np.asarray(angle, np.float64)
    q = np.zeros(angle.shape + (4,), np.float64)
    q[..., 0] = np.cos(0.5 * angle)
    q[..., 1 + axis] = np.sin(0.5 * angle)
    return q


def yaw_pitch_roll_to_axis_angle(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Head-style Euler angles (radians) -> axis-angle ``[..., 3]`` in the model frame.

    ``R = R_y(yaw) · R_x(pitch) · R_z(roll)``: yaw about +Y (up), pitch about +X (subject's left),
    roll about +Z (forward), applied roll first. The inverse is :func:`axis_angle_to_yaw_pitch_roll`.
    """
    q = quat_mul(quat_mul(_axis_quat(1, yaw), _axis_quat(0, pitch)), _axis_quat(2, roll))
    return quat_to_axis_angle(q)


def axis_angle_to_yaw_pitch_roll(aa: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`yaw_pitch_roll_to_axis_angle`: ``aa [..., 3]`` -> (yaw, pitch, roll) radians."""
    w, x, y, z = np.moveaxis(axis_angle_to_quat(aa), -1, 0)
    # Rotation-matrix entries of R = Ry Rx Rz that isolate the three angles.
    r12 = 2.0 * (y * z - w * x)  # -sin(pitch)
    r02 = 2.0 * (x * z + w * y)  # sin(yaw) cos(pitch)
    r22 = 1.0 - 2.0 * (x * x + y * y)  # cos(yaw) cos(pitch)
    r10 = 2.0 * (x * y + w * z)  # cos(pitch) sin(roll)
    r11 = 1.0 - 2.0 * (x * x + z * z)  # cos(pitch) cos(roll)
    pitch = np.arcsin(np.clip(-r12, -1.0, 1.0))
    yaw = np.arctan2(r02, r22)
    roll = np.arctan2(r10, r11)
    return yaw, pitch, roll


def interpolate_axis_angle(aa: np.ndarray, src_t: np.ndarray, dst_t: np.ndarray) -> np.ndarray:
    """Resample an axis-angle curve ``aa [T, ..., 3]`` sampled at ``src_t [T]`` onto ``dst_t [U]``.

    Slerp between the neighbouring samples (times outside the source range hold the end value).
    Returns ``[U, ..., 3]`` float64. Consecutive samples are interpolated along the shorter arc,
    so a curve that crosses the ±π wrap of axis-angle does not spin the long way round.
    """
    aa = np.asarray(aa, np.float64)
    src_t = np.asarray(src_t, np.float64)
    dst_t = np.asarray(dst_t, np.float64)
    T = aa.shape[0]
    if T == 1:
        return np.repeat(aa, len(dst_t), axis=0)
    inner = aa.shape[1:-1]
    q = axis_angle_to_quat(aa.reshape(T, -1, 3))  # [T, K, 4]
    idx = np.clip(np.searchsorted(src_t, dst_t, side="right") - 1, 0, T - 2)
    t0, t1 = src_t[idx], src_t[idx + 1]
    frac = np.clip((dst_t - t0) / np.maximum(t1 - t0, _EPS), 0.0, 1.0)
    K = q.shape[1]
    q0 = q[idx].reshape(-1, 4)
    q1 = q[idx + 1].reshape(-1, 4)
    out = slerp(q0, q1, np.repeat(frac, K))
    return quat_to_axis_angle(out).reshape((len(dst_t),) + inner + (3,))
