"""A posed avatar as Blender 5.3's native splat attributes (no bpy: plain float32 arrays).

Blender 5.3 renders a ``GAUSSIAN_SPLAT`` point cloud from these POINT attributes (object space,
N points): ``position`` [N, 3], ``scale`` [N, 3] (linear standard deviations), ``rotation``
[N, 4] (unit w, x, y, z), ``radiance:base`` [N, 4] (SH DC f_dc_0..2, sigmoid opacity) and
``radiance:sh_k`` [N, 3] (SH coefficient k + 1). An avatar poses in the head model's frame;
Blender's object space is ``frames.MODEL_TO_BLENDER`` of it, a fixed rotation, so per frame
only the geometry and the opacity change: ``frame_attributes`` converts those with index
shuffles and one quaternion product (the fast path), ``frame_attributes_reference`` with
``GaussianSet.transformed`` (the readable twin; tests hold them equal). The view-dependent
colour only turns with that fixed rotation: ``sh_attributes`` computes it once per identity.

Colour convention (measured with Cycles on bpy 5.3.0, docs/SCENES.md): Blender reads
0.5 + C0·f_dc (plus the higher bands) as a display-referred sRGB value, the same convention as
3DGS PLY files, gsplat and our engine, so no conversion is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .frames import MODEL_TO_BLENDER
from .gaussian_set import GaussianSet

# MODEL_TO_BLENDER is (x, y, z) -> (x, -z, y): a +90 degree turn about X, as a wxyz quaternion
_HALF = np.float32(np.sqrt(0.5))


@dataclass(frozen=True)
class FrameAttributes:
    """What changes from frame to frame, in Blender object space, float32, C-contiguous."""

    position: np.ndarray   # [N, 3]
    scale: np.ndarray      # [N, 3] linear
    rotation: np.ndarray   # [N, 4] unit wxyz
    base: np.ndarray       # [N, 4] f_dc_0..2, sigmoid(opacity)


def _base(gaussians: GaussianSet) -> np.ndarray:
    base = np.empty((len(gaussians), 4), np.float32)
    base[:, :3] = gaussians.sh[:, 0]
    base[:, 3] = gaussians.opacities
    return base


def frame_attributes(posed: GaussianSet) -> FrameAttributes:
    """Model-space posed Gaussians (N) -> their native attributes in Blender object space."""
    if not np.array_equal(MODEL_TO_BLENDER, _EXPECTED):
        return frame_attributes_reference(posed)
    m = np.asarray(posed.means, np.float32)
    position = np.empty_like(m)
    position[:, 0] = m[:, 0]
    np.negative(m[:, 2], out=position[:, 1])
    position[:, 2] = m[:, 1]
    scale = np.exp(np.asarray(posed.log_scales, np.float32))
    q = np.asarray(posed.quats, np.float32)
    norm = np.sqrt(np.einsum("ij,ij->i", q, q))
    k = _HALF / np.maximum(norm, np.float32(1e-12))
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    rotation = np.empty_like(q)   # (c, c, 0, 0) ⊗ q, normalised on the way
    rotation[:, 0] = (w - x) * k
    rotation[:, 1] = (x + w) * k
    rotation[:, 2] = (y - z) * k
    rotation[:, 3] = (z + y) * k
    return FrameAttributes(position, scale, rotation, _base(posed))


def frame_attributes_reference(posed: GaussianSet) -> FrameAttributes:
    """The readable twin of ``frame_attributes``: ``transformed(MODEL_TO_BLENDER)``."""
    moved = GaussianSet(posed.means, posed.log_scales, posed.quats, posed.opacity_logits,
                        posed.sh[:, :1]).transformed(MODEL_TO_BLENDER)
    quats = moved.quats / np.linalg.norm(moved.quats, axis=1, keepdims=True)
    return FrameAttributes(np.ascontiguousarray(moved.means, np.float32),
                           np.ascontiguousarray(moved.scales, np.float32),
                           np.ascontiguousarray(quats, np.float32), _base(moved))


def sh_attributes(sh: np.ndarray) -> np.ndarray:
    """Model-space SH [N, K, 3] -> the higher bands in Blender object space [K - 1, N, 3]
    (``radiance:sh_k`` = row k), float32; [0, N, 3] for degree 0."""
    sh = np.asarray(sh, np.float32)
    if sh.shape[1] <= 1:
        return np.empty((0, sh.shape[0], 3), np.float32)
    from .sh_rotation import rotate_sh

    turned = rotate_sh(sh, MODEL_TO_BLENDER[:3, :3])
    return np.ascontiguousarray(np.moveaxis(turned[:, 1:], 1, 0), np.float32)


_EXPECTED = np.array([[1.0, 0, 0, 0], [0, 0, -1.0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])
