"""Rigid/similarity transforms of Gaussian sets and quaternion helpers (wxyz)."""

from __future__ import annotations

import numpy as np

from ..errors import GaussianHeadsError


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a ⊗ b of [..., 4] wxyz quaternions."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """[..., 3, 3] rotation matrices -> [..., 4] unit wxyz quaternions (w >= 0)."""
    m = np.asarray(m, np.float64)
    t = np.trace(m, axis1=-2, axis2=-1)
    q = np.empty(m.shape[:-2] + (4,))
    q[..., 0] = np.sqrt(np.maximum(0.0, 1 + t)) / 2
    q[..., 1] = np.copysign(np.sqrt(np.maximum(0.0, 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2])) / 2,
                            m[..., 2, 1] - m[..., 1, 2])
    q[..., 2] = np.copysign(np.sqrt(np.maximum(0.0, 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2])) / 2,
                            m[..., 0, 2] - m[..., 2, 0])
    q[..., 3] = np.copysign(np.sqrt(np.maximum(0.0, 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2])) / 2,
                            m[..., 1, 0] - m[..., 0, 1])
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """[..., 4] wxyz quaternions (normalised here) -> [..., 3, 3] rotation matrices."""
    q = np.asarray(q, np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def split_similarity(matrix: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """4x4 -> (rotation [3,3], uniform scale, translation [3]). Raises on shear or mirroring."""
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        raise GaussianHeadsError("object transform must be a finite 4x4 matrix")
    linear = matrix[:3, :3]
    col_norms = np.linalg.norm(linear, axis=0)
    scale = float(col_norms.mean())
    if scale <= 0 or np.abs(col_norms - scale).max() > 1e-4 * scale:
        raise GaussianHeadsError("Gaussian avatars support only uniform object scale")
    rot = linear / scale
    if np.linalg.det(rot) < 0 or np.abs(rot.T @ rot - np.eye(3)).max() > 1e-4:
        raise GaussianHeadsError("Gaussian avatars do not support mirrored or sheared transforms")
    return rot, scale, matrix[:3, 3].copy()


def apply_similarity(gaussians, matrix: np.ndarray):
    """GaussianSet in model space -> GaussianSet in world space under a 4x4 similarity."""
    from .gaussian_set import GaussianSet

    rot, scale, trans = split_similarity(matrix)
    means = gaussians.means.astype(np.float64) @ rot.T * scale + trans
    quats = quat_multiply(matrix_to_quat(rot)[None], gaussians.quats.astype(np.float64))
    return GaussianSet(means, gaussians.log_scales + np.float32(np.log(scale)), quats,
                       gaussians.opacity_logits, gaussians.sh)
