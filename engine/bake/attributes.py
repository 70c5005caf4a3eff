"""What a bake regresses from and to: the parameter layout, attribute residuals, the rigid head part.

Input layout (one row per frame, float32, P = E + 9):
    [ expr[0..E) | jaw x, y, z | eye_l x, y, z | eye_r x, y, z ]
Eyelids are expression channels of the head model (ARKit eyeBlink*, or FLAME's expression space)
and need no separate slot. ``global_rot``, ``neck`` and ``translation`` are NOT inputs: they are
applied at run time as one rigid transform (``rigid_head_transform``).

Residuals (posed minus neutral, per Gaussian, flattened row-major to [N·d]):
    xyz       means                              [N, 3]
    scale     log_scales                         [N, 3]
    rotation  quats, sign-aligned to the neutral [N, 4]  (q -> -q when q·q_neutral < 0)
    opacity   opacity_logits                     [N]
    color     sh[:, 0, :] (the DC term)          [N, 3]  (optional)
Blending adds residuals to the neutral in these spaces, so scales stay positive (log space),
opacity stays in (0, 1) (logit space) and quaternions are renormalised.
"""

from __future__ import annotations

import numpy as np

from ..avatar.gaussian_set import GaussianSet
from ..errors import GaussianHeadsError, check_shape
from ..head_model.model import HeadParams
from .config import ATTRIBUTE_DIMS

EXTRA_INPUTS: tuple[str, ...] = ("jaw_x", "jaw_y", "jaw_z", "eye_l_x", "eye_l_y", "eye_l_z",
                                 "eye_r_x", "eye_r_y", "eye_r_z")


def input_names(expr_names) -> tuple[str, ...]:
    """Names of the P = E + 9 MLP input channels."""
    return tuple(f"expr:{name}" for name in expr_names) + EXTRA_INPUTS


def params_to_inputs(params: HeadParams, n_expr: int) -> np.ndarray:
    """HeadParams (one frame or a batch [B, ...]) -> inputs [P] or [B, P] float32 (P = n_expr + 9)."""
    expr = np.asarray(params.expr, np.float32)
    batched = expr.ndim == 2
    lead = expr.shape[:1] if batched else ()
    check_shape("expr", expr, lead + (n_expr,))
    jaw = np.asarray(params.jaw, np.float32)
    eyes = np.asarray(params.eyes, np.float32)
    check_shape("jaw", jaw, lead + (3,))
    check_shape("eyes", eyes, lead + (2, 3))
    return np.concatenate([expr, jaw, eyes.reshape(lead + (6,))], axis=-1)


def inputs_to_params(x: np.ndarray, shape: np.ndarray, n_expr: int) -> HeadParams:
    """One input row [P] -> HeadParams (shape = ``shape``; global, neck, translation zero)."""
    x = np.asarray(x, np.float32)
    check_shape("inputs", x, (n_expr + 9,))
    z3 = np.zeros(3, np.float32)
    return HeadParams(np.asarray(shape, np.float32).copy(), x[:n_expr].copy(), z3, z3.copy(),
                      x[n_expr:n_expr + 3].copy(), x[n_expr + 3:n_expr + 9].reshape(2, 3).copy(), z3.copy())


def attribute_values(gaussians: GaussianSet, name: str) -> np.ndarray:
    """The blended representation of one attribute: [N, d] float32 (see module docstring)."""
    if name == "xyz":
        return gaussians.means
    if name == "scale":
        return gaussians.log_scales
    if name == "rotation":
        q = gaussians.quats
        return q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    if name == "opacity":
        return gaussians.opacity_logits[:, None]
    if name == "color":
        return gaussians.sh[:, 0, :]
    raise GaussianHeadsError(f"unknown attribute '{name}'")


def residual_row(posed: GaussianSet, neutral_values: np.ndarray, name: str) -> np.ndarray:
    """Posed-minus-neutral of one attribute, flattened: [N·d] float32 (readable reference).

    neutral_values [N, d] = ``attribute_values(neutral, name)``. Rotations are sign-aligned to the
    neutral first (q and -q are the same rotation; the residual must not jump by 2q).
    """
    values = attribute_values(posed, name)
    if values.shape != neutral_values.shape:
        raise GaussianHeadsError(f"posed '{name}' has shape {values.shape}, neutral {neutral_values.shape}: "
                                 "the identity changed its Gaussian count between poses")
    if name == "rotation":
        sign = np.where((values * neutral_values).sum(1, keepdims=True) < 0, -1.0, 1.0).astype(np.float32)
        values = values * sign
    return (values - neutral_values).astype(np.float32, copy=False).reshape(-1)


def residual_into(posed: GaussianSet, neutral_values: np.ndarray, name: str, out: np.ndarray) -> None:
    """Fast twin of ``residual_row`` writing into ``out`` [N·d] float32 (no temporaries of size N·d
    beyond one for rotations). Tests hold the two equal."""
    n, d = neutral_values.shape
    if len(posed) != n:
        raise GaussianHeadsError(f"posed set has {len(posed)} Gaussians, the neutral {n}: "
                                 "the identity changed its Gaussian count between poses")
    target = out.reshape(n, d)
    if name == "xyz":
        np.subtract(posed.means, neutral_values, out=target)
    elif name == "scale":
        np.subtract(posed.log_scales, neutral_values, out=target)
    elif name == "opacity":
        np.subtract(posed.opacity_logits, neutral_values[:, 0], out=target[:, 0])
    elif name == "color":
        np.subtract(posed.sh[:, 0, :], neutral_values, out=target)
    elif name == "rotation":
        try:
            from .blend_kernel import rotation_residual
        except ImportError:  # no numba: vectorised numpy
            q = posed.quats
            norm = np.sqrt(np.einsum("ij,ij->i", q, q))
            dot = np.einsum("ij,ij->i", q, neutral_values)
            factor = np.where(dot < 0, -1.0, 1.0) / np.maximum(norm, 1e-12)
            np.multiply(q, factor.astype(np.float32)[:, None], out=target)
            target -= neutral_values
        else:
            rotation_residual(posed.quats, neutral_values, target)
    else:
        raise GaussianHeadsError(f"unknown attribute '{name}'")


def attribute_dims(names) -> list[int]:
    return [ATTRIBUTE_DIMS[n] for n in names]


def rodrigues(aa: np.ndarray) -> np.ndarray:
    """Axis-angle [3] (radians) -> rotation matrix [3, 3] float64."""
    aa = np.asarray(aa, np.float64).reshape(3)
    theta = float(np.linalg.norm(aa))
    if theta < 1e-12:
        return np.eye(3)
    k = aa / theta
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(theta) * kx + (1.0 - np.cos(theta)) * (kx @ kx)


def rigid_head_transform(global_rot, neck, translation, joints: np.ndarray) -> np.ndarray:
    """The run-time rigid part of a pose: [4, 4] float64 model-space transform.

    joints [2, 3]: the root (global) and neck joint positions of the identity's neutral shape.
    It is the LBS world transform of the neck joint (FLAME kinematics, rest pose removed):
        x' = R_g · (R_n · (x − J_neck) + J_neck − J_root) + J_root + t
    Applied to every Gaussian, it is exact for Gaussians skinned entirely to the neck chain
    (neck, jaw, eyes: the head) and approximates the lower neck, which LBS would blend with the
    root's transform; neck pose correctives (FLAME posedirs) are not reproduced.
    """
    joints = np.asarray(joints, np.float64)
    check_shape("joints", joints, (2, 3))
    r_g, r_n = rodrigues(global_rot), rodrigues(neck)
    j0, j1 = joints
    m = np.eye(4)
    m[:3, :3] = r_g @ r_n
    m[:3, 3] = r_g @ (j1 - j0 - r_n @ j1) + j0 + np.asarray(translation, np.float64).reshape(3)
    return m


def is_identity_transform(m: np.ndarray) -> bool:
    return bool(np.abs(m - np.eye(4)).max() < 1e-12)
