"""FLAME-style linear blend skinning in numpy.

Pipeline (standard FLAME LBS, written from the published equations):
    v_shaped = v_template + shapedirs · shape + exprdirs · expr                 [.., V, 3]
    J        = j_regressor · v_shaped                                            [.., J, 3]
    R_j      = rodrigues(pose_j), pose = (global_rot, neck, jaw, eye_l, eye_r)   [.., J, 3, 3]
    v_posed  = v_shaped + posedirs · vec(R_1..R_{J-1} − I)     (only if the model has posedirs)
    G_j      = G_parent(j) · [R_j | J_j − J_parent(j)]       (root: [R_0 | J_0])  world joint frames
    A_j      = G_j · [I | −J_j]                                                   skinning transforms
    v        = Σ_j weights[:, j] · A_j · v_posed + translation

Shapes: V vertices, J = 5 joints, S identity and E expression components, B batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import GaussianHeadsError, check_shape
from .model import HeadModel, HeadParams

N_JOINTS = 5
CHUNK = 128          # frames per block in batched numpy forward passes


@dataclass
class HeadPose:
    """Result of :func:`forward`.

    vertices    [V, 3] or [B, V, 3]         posed vertices (metres, model frame, translation applied)
    joints      [J, 3] or [B, J, 3]         posed joint positions
    transforms  [J, 4, 4] or [B, J, 4, 4]   world transforms of the joints (rotation = accumulated
                                            joint rotation, translation = posed joint position)
    rest_joints [J, 3] or [B, J, 3]         joint positions of the shaped mesh before posing; the
                                            skinning transform of joint j is
                                            ``transforms[j] @ translate(-rest_joints[j])``
    """

    vertices: np.ndarray
    joints: np.ndarray
    transforms: np.ndarray
    rest_joints: np.ndarray

    def skinning_transforms(self) -> np.ndarray:
        """[.., J, 4, 4]: the transforms that map rest-pose (shaped) points to posed points."""
        a = self.transforms.copy()
        a[..., :3, 3] -= np.einsum("...ij,...j->...i", self.transforms[..., :3, :3], self.rest_joints)
        return a


def rodrigues(rotvec: np.ndarray) -> np.ndarray:
    """Axis-angle [..., 3] (radians) -> rotation matrices [..., 3, 3]. Smooth at zero."""
    r = np.asarray(rotvec)
    dtype = np.result_type(r.dtype, np.float32)
    r = r.astype(dtype, copy=False)
    th2 = np.sum(r * r, axis=-1)
    small = th2 < 1e-6
    th = np.sqrt(np.maximum(th2, 1e-12))
    a = np.where(small, 1.0 - th2 / 6.0, np.sin(th) / th).astype(dtype)
    b = np.where(small, 0.5 - th2 / 24.0, (1.0 - np.cos(th)) / np.maximum(th2, 1e-12)).astype(dtype)
    x, y, z = r[..., 0], r[..., 1], r[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(r.shape[:-1] + (3, 3))
    eye = np.eye(3, dtype=dtype)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def _as_batch(params: HeadParams, model: HeadModel) -> tuple[dict[str, np.ndarray], bool]:
    shape = np.asarray(params.shape, np.float32)
    batched = shape.ndim == 2
    lead = (None,) if batched else ()
    s, e = model.n_shape, model.n_expr
    arrays = {}
    for name, tail in (("shape", (s,)), ("expr", (e,)), ("global_rot", (3,)), ("neck", (3,)),
                       ("jaw", (3,)), ("eyes", (2, 3)), ("translation", (3,))):
        a = np.asarray(getattr(params, name), np.float32)
        check_shape(f"HeadParams.{name}", a, lead + tail)
        arrays[name] = a if batched else a[None]
    sizes = {a.shape[0] for a in arrays.values()}
    if len(sizes) != 1:
        raise GaussianHeadsError(f"HeadParams fields have different batch sizes {sorted(sizes)}")
    return arrays, batched


def shape_vertices(model: HeadModel, shape: np.ndarray) -> np.ndarray:
    """Template + identity only: shape [S] -> vertices [V, 3] (float32, no expression, no pose)."""
    shape = np.asarray(shape, np.float32)
    check_shape("shape", shape, (model.n_shape,))
    v = model.v_template.shape[0]
    return model.v_template + (model.shapedirs.reshape(v * 3, -1) @ shape).reshape(v, 3)


class _Prepared:
    """Per-model arrays laid out for speed (cached on the model; the model is treated as read-only)."""

    def __init__(self, model: HeadModel):
        n_v = model.v_template.shape[0]
        self.sources = _sources(model)
        dirs = np.concatenate([model.shapedirs, model.exprdirs], axis=2).astype(np.float32)   # [V, 3, S+E]
        self.dirs_t = np.ascontiguousarray(dirs.reshape(n_v * 3, -1).T)                        # [S+E, V*3]
        self.v_flat = np.ascontiguousarray(model.v_template, np.float32).reshape(-1)
        jr = model.j_regressor.astype(np.float64)
        self.joint_template = (jr @ model.v_template).astype(np.float32)                       # [J, 3]
        self.joint_dirs = np.einsum("jv,vce->ejc", jr, dirs).reshape(dirs.shape[2], -1).astype(np.float32)
        self.weights = np.ascontiguousarray(model.weights, np.float32)
        self.posedirs_t = None if model.posedirs is None else np.ascontiguousarray(
            model.posedirs.reshape(n_v * 3, -1).T.astype(np.float32))                          # [P, V*3]


def _sources(model: HeadModel) -> tuple:
    return (model.v_template, model.shapedirs, model.exprdirs, model.j_regressor, model.weights, model.posedirs)


def _prepared(model: HeadModel) -> _Prepared:
    """The model's _Prepared arrays, rebuilt whenever one of its arrays has been replaced."""
    prep = model.__dict__.get("_lbs_prepared")
    if prep is None or any(a is not b for a, b in zip(prep.sources, _sources(model))):
        prep = _Prepared(model)
        model.__dict__["_lbs_prepared"] = prep
    return prep


def forward(model: HeadModel, params: HeadParams) -> HeadPose:
    """Pose the head model.

    params: one frame (shape [S], expr [E], global_rot/neck/jaw [3], eyes [2,3], translation [3])
    or a batch (every field with a leading [B]). Returns a HeadPose with vertices [V,3] or [B,V,3].
    """
    p, batched = _as_batch(params, model)
    n_b = p["shape"].shape[0]
    if n_b > CHUNK:                     # bound the temporaries ([B, V, 12] floats) for big batches
        parts = [_forward_batch(model, {k: a[i:i + CHUNK] for k, a in p.items()}) for i in range(0, n_b, CHUNK)]
        return HeadPose(*(np.concatenate(f, axis=0) for f in zip(*(
            (q.vertices, q.joints, q.transforms, q.rest_joints) for q in parts))))
    pose = _forward_batch(model, p)
    if not batched:
        return HeadPose(pose.vertices[0], pose.joints[0], pose.transforms[0], pose.rest_joints[0])
    return pose


def _rows_times(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a [B, K] @ b [K, M]. A few rows go through numpy's own loops (einsum), not BLAS: the
    multi-threaded OpenBLAS of Blender 5.3's numpy took ~29 ms instead of ~0.5 ms for one
    [1, 84] @ [84, 14370] product on a busy 2-core machine (thread wake-ups); batches use BLAS."""
    return np.einsum("bk,km->bm", a, b) if a.shape[0] <= 4 else a @ b


def _forward_batch(model: HeadModel, p: dict[str, np.ndarray]) -> HeadPose:
    """forward() on validated, batched arrays (every field [B, ...])."""
    n_b = p["shape"].shape[0]
    n_v = model.v_template.shape[0]
    n_j = model.parents.shape[0]
    if n_j != N_JOINTS:
        raise GaussianHeadsError(f"head model has {n_j} joints, expected {N_JOINTS}")

    prep = _prepared(model)
    coeffs = np.concatenate([p["shape"], p["expr"]], axis=1)                           # [B, S+E]
    # blendshapes and joints (joints are linear in the coefficients: J_regressor · v_shaped)
    v_shaped = (_rows_times(coeffs, prep.dirs_t) + prep.v_flat).reshape(n_b, n_v, 3)
    joints = (coeffs @ prep.joint_dirs).reshape(n_b, n_j, 3) + prep.joint_template    # [B, J, 3]
    pose = np.concatenate([p["global_rot"][:, None], p["neck"][:, None], p["jaw"][:, None], p["eyes"]],
                          axis=1)                                                       # [B, J, 3]
    rot = rodrigues(pose)                                                               # [B, J, 3, 3]

    if model.posedirs is not None:
        feat = (rot[:, 1:] - np.eye(3, dtype=np.float32)).reshape(n_b, -1)              # [B, (J-1)*9]
        v_posed = v_shaped + _rows_times(feat, prep.posedirs_t).reshape(n_b, n_v, 3)
    else:
        v_posed = v_shaped

    world = np.zeros((n_b, n_j, 4, 4), np.float32)
    world[..., 3, 3] = 1.0
    parents = model.parents
    for j in range(n_j):
        local_t = joints[:, j] if parents[j] < 0 else joints[:, j] - joints[:, parents[j]]
        if parents[j] < 0:
            world[:, j, :3, :3] = rot[:, j]
            world[:, j, :3, 3] = local_t
        else:
            pw = world[:, parents[j]]
            world[:, j, :3, :3] = pw[:, :3, :3] @ rot[:, j]
            world[:, j, :3, 3] = np.einsum("bij,bj->bi", pw[:, :3, :3], local_t) + pw[:, :3, 3]

    # skinning transforms A_j = G_j [I | -J_j], blended per vertex: [B, V, 12]
    skin = world[:, :, :3, :].copy()
    skin[..., 3] -= np.einsum("bjik,bjk->bji", world[:, :, :3, :3], joints)
    blend = (prep.weights @ skin.reshape(n_b, n_j, 12)).reshape(n_b, n_v, 3, 4)
    verts = np.einsum("bvik,bvk->bvi", blend[..., :3], v_posed) + blend[..., 3]

    trans = p["translation"]
    verts += trans[:, None]
    world[:, :, :3, 3] += trans[:, None]
    posed_joints = world[:, :, :3, 3].copy()
    return HeadPose(verts, posed_joints, world, joints)
