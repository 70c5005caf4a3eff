"""GaussianAvatars-format avatars (GaussianAvatars, STGA, GaussianAvatar-Editor) as BoundIdentity.

Input: a folder holding ``point_cloud.ply`` and ``flame_param.npz`` (or the PLY itself, with the
``.npz`` beside it), plus the user's own FLAME 2023 model. The format (docs/FORMATS.md):

    point_cloud.ply   3DGS vertex properties + ``binding_0`` (the face each Gaussian is bound to,
                      counting FLAME's faces, then the 168 teeth faces of ``head_model.teeth``);
                      x y z [N,3], scale_* [N,3] (log) and rot_* [N,4] (wxyz) in the face frame
    flame_param.npz   shape [S] or [1,S]; static_offset [1,V+120,3] or [V+120,3] (optional);
                      the training sequence (expr, rotation, neck/jaw/eyes_pose, translation),
                      read as an animation by ``engine.animation.formats.flame_npz``

GaussianAvatars' face frame of triangle (v0, v1, v2): a0 = n(v1 − v0), a1 = n(a0 × (v2 − v0)),
a2 = −n(a1 × a0), R_ga = [a0 a1 a2]; s_ga = (|v1 − v0| + |a2·(v2 − v0)|) / 2; centre c = the
mean of the corners; then mean = c + s_ga·R_ga·xyz, scale = exp(scale)·s_ga and
rot = q(R_ga) ⊗ n(rot). Ours (``binding``) is R = [x y z] with x = a0, z = a1 (the normal),
y = z × x = −a2, so R_ga = R·P with P the +90° turn about x: P·(a, b, c) = (a, −c, b), q(P) =
(cos 45°, sin 45°, 0, 0). Hence, exactly for every pose: offsets = P·xyz, log_scales = scale,
quats = q(P) ⊗ n(rot), barycentrics (1/3, 1/3, 1/3), and the identity poses with the
"edge_height" face scale rule (s_ga). Shape β and static offsets are folded into the model's
template (GaussianAvatars adds both before regressing the joints), so the identity's own β is 0
and Blender's 32 shape sliders add on top of the full 300-coefficient identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import GaussianHeadsError, InputFileError
from ..head_model.model import HeadModel
from ..head_model.teeth import N_TEETH_FACES, N_TEETH_VERTICES, add_teeth
from .binding import Binding
from .gaussian_set import GaussianSet
from .identity import BoundIdentity, CanonicalGaussians

PLY_NAME = "point_cloud.ply"
PARAM_NAME = "flame_param.npz"
FACE_SCALE_RULE = "edge_height"
_P = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])   # R_ga = R_ours · P
_Q_P = np.array([np.sqrt(0.5), np.sqrt(0.5), 0.0, 0.0])              # wxyz of P
_MAX_SHAPE = 1024
_MAX_FACE = 1 << 24              # binding_0 values beyond this are not FLAME faces
_MAX_LOCAL = 1e4                 # |xyz| in face sizes (trained avatars stay within a few)
_MAX_LOG_SCALE = 50.0
_MAX_EXTENT = 10.0               # metres: a shaped head mesh reaching beyond this is broken input


@dataclass(frozen=True)
class AvatarFiles:
    ply: str          # point_cloud.ply
    params: str       # flame_param.npz beside it ("" when absent)


@dataclass(frozen=True)
class AvatarData:
    """What the two files hold (N Gaussians; V' = FLAME vertices + 120 teeth vertices).

    faces [N] int64; local: GaussianSet in the face frames (means = xyz, log_scales = scale,
    quats = normalised rot); shape [S] float32; static_offset [V', 3] float32 or None.
    """

    files: AvatarFiles
    faces: np.ndarray
    local: GaussianSet
    shape: np.ndarray
    static_offset: np.ndarray | None


def locate(path: str | os.PathLike) -> AvatarFiles:
    """The avatar's files from a folder or its ``point_cloud.ply`` (InputFileError if missing)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        ply = os.path.join(path, PLY_NAME)
        if not os.path.isfile(ply):
            raise InputFileError(path, f"not a GaussianAvatars folder: it has no {PLY_NAME}")
    elif os.path.isfile(path):
        ply = path
    else:
        raise InputFileError(path, "no such GaussianAvatars folder or point_cloud.ply")
    params = os.path.join(os.path.dirname(os.path.abspath(ply)), PARAM_NAME)
    return AvatarFiles(ply, params if os.path.isfile(params) else "")


def _read_params(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    from ..animation.formats._safe_numpy import load_npz

    arrays = load_npz(path, ("shape", "static_offset"))
    if "shape" not in arrays:
        raise InputFileError(path, "has no 'shape' array (the avatar's FLAME identity)")
    shape = np.asarray(arrays["shape"])
    if shape.dtype.kind not in "fiu" or shape.ndim not in (1, 2) or (shape.ndim == 2 and shape.shape[0] != 1):
        raise InputFileError(path, f"'shape' has shape {shape.shape} and dtype {shape.dtype}, expected (S,) numbers")
    shape = shape.reshape(-1).astype(np.float32)
    if shape.shape[0] > _MAX_SHAPE or not np.isfinite(shape).all():
        raise InputFileError(path, "'shape' holds NaN/infinite values or too many coefficients")
    offset = arrays.get("static_offset")
    if offset is not None:
        offset = np.asarray(offset)
        if offset.ndim == 3 and offset.shape[0] == 1:
            offset = offset[0]
        if offset.dtype.kind not in "fiu" or offset.ndim != 2 or offset.shape[1] != 3:
            raise InputFileError(path, f"'static_offset' has shape {np.asarray(arrays['static_offset']).shape}, "
                                       "expected (1, V, 3) or (V, 3)")
        offset = offset.astype(np.float32)
        if not np.isfinite(offset).all():
            raise InputFileError(path, "'static_offset' holds NaN or infinite values")
    return shape, offset


def read_avatar(path: str | os.PathLike) -> AvatarData:
    """Read and check a GaussianAvatars folder or point_cloud.ply (no FLAME needed yet)."""
    from ..io.ply import read_ply_full

    files = locate(path)
    contents = read_ply_full(files.ply)
    binding = contents.extras.get("binding_0")
    if binding is None:
        raise InputFileError(files.ply, "has no 'binding_0' vertex property: not a GaussianAvatars point cloud")
    binding = np.asarray(binding)
    if binding.dtype.kind == "f":
        if not np.isfinite(binding).all() or (binding != np.round(binding)).any():
            raise InputFileError(files.ply, "'binding_0' holds values that are not whole face numbers")
    elif binding.dtype.kind not in "iu":
        raise InputFileError(files.ply, f"'binding_0' has type {binding.dtype}, expected integers")
    faces = binding.astype(np.float64)
    if len(faces) == 0:
        raise InputFileError(files.ply, "holds no Gaussians")
    if faces.min() < 0:
        raise InputFileError(files.ply, f"'binding_0' refers to face {faces.min():.0f} (negative)")
    if faces.max() >= _MAX_FACE:
        raise InputFileError(files.ply, f"'binding_0' refers to face {faces.max():.0f}, far beyond any FLAME model")
    g = contents.gaussians
    if np.abs(g.means).max() > _MAX_LOCAL or np.abs(g.log_scales).max() > _MAX_LOG_SCALE:
        raise InputFileError(files.ply, f"face-local positions beyond ±{_MAX_LOCAL:g} face sizes or log scales "
                                        f"beyond ±{_MAX_LOG_SCALE:g}: not a trained avatar")
    if not files.params:
        raise InputFileError(files.ply, f"no {PARAM_NAME} beside it (the avatar's FLAME shape and offsets)")
    shape, offset = _read_params(files.params)
    return AvatarData(files, faces.astype(np.int64), g, shape, offset)


def check_against_model(data: AvatarData, flame: HeadModel, flame_path: str) -> None:
    """Raise one GaussianHeadsError naming both files unless ``flame`` (without teeth) fits ``data``."""
    n_vertices = flame.n_vertices + N_TEETH_VERTICES
    n_faces = flame.faces.shape[0] + N_TEETH_FACES
    problems = []
    top = int(data.faces.max())
    if top >= n_faces:
        problems.append(f"{data.files.ply} binds Gaussians to face {top}, but the FLAME model with teeth has "
                        f"{n_faces} faces")
    if data.static_offset is not None and data.static_offset.shape[0] != n_vertices:
        problems.append(f"{data.files.params} has static offsets for {data.static_offset.shape[0]} vertices, but "
                        f"the FLAME model with teeth has {n_vertices}")
    if data.shape.shape[0] > flame.n_shape:
        problems.append(f"{data.files.params} has {data.shape.shape[0]} shape coefficients, the FLAME model "
                        f"{flame.n_shape}")
    if problems:
        raise GaussianHeadsError(f"{flame_path}: this FLAME model does not match the GaussianAvatars avatar "
                                 f"(expected FLAME 2023, {flame.n_vertices} vertices and {flame.faces.shape[0]} "
                                 f"faces here): " + "; ".join(problems))


def avatar_model(data: AvatarData, flame: HeadModel) -> HeadModel:
    """FLAME + teeth with the avatar's shape β and static offsets folded into the template."""
    from ..head_model.lbs import shape_vertices

    model = add_teeth(flame)
    beta = np.zeros(model.n_shape, np.float32)
    beta[:data.shape.shape[0]] = data.shape
    template = shape_vertices(model, beta)
    if data.static_offset is not None:
        template = template + data.static_offset
    if not np.isfinite(template).all() or np.abs(template).max() > _MAX_EXTENT:
        raise InputFileError(data.files.params, f"its 'shape' or 'static_offset' values move the FLAME mesh beyond "
                                                f"±{_MAX_EXTENT:g} m (corrupt parameters)")
    model.v_template = np.ascontiguousarray(template, np.float32)
    model.name = f"{flame.name}+teeth ({os.path.basename(os.path.dirname(os.path.abspath(data.files.ply)))})"
    return model


def canonical_from_local(local: GaussianSet) -> CanonicalGaussians:
    """GaussianAvatars' face-local attributes -> CanonicalGaussians in our face frame (module docstring)."""
    from .transforms import quat_multiply

    offsets = local.means.astype(np.float64) @ _P.T
    rot = local.quats.astype(np.float64)
    rot = rot / np.linalg.norm(rot, axis=1, keepdims=True)
    quats = quat_multiply(np.broadcast_to(_Q_P, rot.shape), rot)
    return CanonicalGaussians(offsets, local.log_scales, quats, local.opacity_logits, local.sh)


def _uv(model: HeadModel, faces: np.ndarray) -> np.ndarray:
    if not model.has_uv:
        return np.zeros((len(faces), 2), np.float32)
    return np.asarray(model.vt, np.float32)[np.asarray(model.ft)[faces]].mean(axis=1)


def load_avatar(path: str | os.PathLike, flame_path: str | os.PathLike | None,
                flame: HeadModel | None = None) -> BoundIdentity:
    """A GaussianAvatars folder or point_cloud.ply + the user's FLAME 2023 model -> BoundIdentity.

    Every problem is one GaussianHeadsError naming the file(s) concerned; the FLAME model is
    ``flame`` if given (already loaded from ``flame_path``), else loaded from ``flame_path``.
    """
    data = read_avatar(path)
    if flame is None:
        if not flame_path:
            raise InputFileError(data.files.ply, "a GaussianAvatars avatar needs your FLAME 2023 model; choose it "
                                                 "once in the preferences (Gaussian Heads > FLAME Model) or pass "
                                                 "--model PATH")
        from ..head_model import load_head_model

        try:
            flame = load_head_model(os.fspath(flame_path))
        except InputFileError as exc:
            raise GaussianHeadsError(f"{data.files.ply}: cannot pose this avatar: its FLAME model {exc}") from None
    flame_path = os.fspath(flame_path or flame.name)
    check_against_model(data, flame, flame_path)
    model = avatar_model(data, flame)
    canonical = canonical_from_local(data.local)
    n = len(canonical)
    binding = Binding(data.faces.astype(np.int32), np.full((n, 3), 1.0 / 3.0, np.float32), _uv(model, data.faces))
    meta = {"model": flame_path, "face_scale": FACE_SCALE_RULE, "source": "gaussian_avatars",
            "gaussian_avatars": os.path.abspath(data.files.ply)}
    return BoundIdentity(model, binding, canonical, np.zeros(model.n_shape, np.float32), meta=meta)
