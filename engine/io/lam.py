"""LAM avatar zips (aigc3d/LAM's OpenAvatarChat export), read and written (no bpy).

    avatar = read_lam_zip(path)          # -> LamAvatar(identity: VertexIdentity, animation_glb: bytes | None)
    write_lam_zip(identity, path)        # any avatar (built-in, checkpoint, imported) -> a LAM zip

The zip holds one folder ``<name>/`` with ``skin.glb`` (the skinned head mesh, ARKit morph
targets), ``offset.ply`` (a 3DGS PLY, one Gaussian per glb vertex, same order: x y z is the offset
from that vertex; ``f_dc_0..2`` hold the display colour in 0..1 itself, not the SH DC coefficient:
LAM's exporter saves RGB with ``rgb2sh=False`` and its renderer reads ``f_dc`` as RGB; higher
bands, which LAM's renderer ignores, keep our convention), ``vertex_order.json`` (the vertex indices sorted by height, a permutation; LAM's
renderer loads it but draws in PLY order) and ``animation.glb`` (template clips). Conventions and
where we learned them: docs/FORMATS.md. Every problem is one InputFileError naming the zip and member.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass

import numpy as np

from ..avatar.gaussian_set import GaussianSet, rgb_to_sh_dc, sh_dc_to_rgb
from ..errors import GaussianHeadsError, InputFileError
from ..head_model.arkit import ARKIT_NAMES
from ._common import write_atomic
from .lam_glb import read_skinned_mesh
from .lam_model import anchors, head_model_from_skin, rest_joints
from .lam_zip import read_members

MEMBERS = ("skin.glb", "offset.ply", "vertex_order.json")
OPTIONAL_MEMBERS = ("animation.glb",)
# Where the model origin (the head's centre) goes in the glb: LAM's renderer's default camera sits
# at (0, 1.8, 1) pitched 10° down, so it looks at (0, ~1.62, 0).
DEFAULT_HEAD_CENTRE = (0.0, 1.62, 0.0)


@dataclass
class LamAvatar:
    identity: object                 # VertexIdentity on the glb's head model
    animation_glb: bytes | None      # the zip's animation.glb, if any


def _where(path: str, member: str) -> str:
    return f"{path}:{member}"


def read_vertex_order(where: str, data: bytes, n: int) -> np.ndarray:
    """vertex_order.json -> [n] int64; it must be a permutation of 0..n-1."""
    try:
        order = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputFileError(where, f"not valid JSON ({exc})") from None
    if not isinstance(order, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in order):
        raise InputFileError(where, "expected a JSON list of vertex indices")
    if len(order) != n or any(not 0 <= i < n for i in order):     # before numpy: ints may be huge
        raise InputFileError(where, f"not a permutation of the {n} vertices ({len(order)} entries)")
    arr = np.asarray(order, np.int64)
    if n and np.bincount(arr, minlength=n).max() != 1:
        raise InputFileError(where, f"not a permutation of the {n} vertices ({len(order)} entries)")
    return arr


def _read_ply_bytes(where: str, data: bytes):
    from .ply import read_ply_full

    fd, tmp = tempfile.mkstemp(suffix=".ply")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            return read_ply_full(tmp).gaussians
        except InputFileError as exc:
            raise InputFileError(where, exc.problem) from None
    finally:
        os.remove(tmp)


def read_lam_zip(path: str | os.PathLike) -> LamAvatar:
    """Read a LAM avatar zip -> LamAvatar (its identity poses like LAM's renderer; module docstring)."""
    from ..avatar.vertex_identity import VertexIdentity

    path = os.fspath(path)
    members = read_members(path, MEMBERS, OPTIONAL_MEMBERS)
    skin = read_skinned_mesh(_where(path, "skin.glb"), members["skin.glb"])
    stem = os.path.splitext(os.path.basename(path))[0]
    model, origin, m_head = head_model_from_skin(_where(path, "skin.glb"), skin, f"lam:{stem}")
    gaussians = _read_ply_bytes(_where(path, "offset.ply"), members["offset.ply"])
    v = model.n_vertices
    if len(gaussians) != v:
        raise InputFileError(_where(path, "offset.ply"), f"has {len(gaussians)} Gaussians but skin.glb has {v} "
                                                         "vertices (LAM pairs them one to one)")
    read_vertex_order(_where(path, "vertex_order.json"), members["vertex_order.json"], v)
    offsets = gaussians.means.astype(np.float64) @ m_head[:3, :3].T
    if not np.isfinite(offsets).all():
        raise InputFileError(_where(path, "offset.ply"), "offsets are not finite after skinning")
    sh = gaussians.sh.copy()
    sh[:, 0, :] = rgb_to_sh_dc(sh[:, 0, :])  # LAM's f_dc hold the colour itself (module docstring)
    identity = VertexIdentity(model, np.arange(v), offsets, gaussians.log_scales, gaussians.quats,
                              gaussians.opacity_logits, sh, np.zeros(0, np.float32),
                              meta={"model": model.name, "source": "lam", "lam_origin": [float(x) for x in origin]})
    return LamAvatar(identity, members.get("animation.glb"))


def lam_zip_members(identity, head_centre=None) -> dict[str, bytes]:
    """The four members (base name -> bytes) of ``identity`` as a LAM avatar."""
    from .lam_glb_write import template_clips, write_animation_glb, write_skin_glb
    from .ply import ply_bytes

    if head_centre is None:
        head_centre = getattr(identity, "meta", {}).get("lam_origin", DEFAULT_HEAD_CENTRE)
    centre = np.asarray(head_centre, np.float64).reshape(3)
    anchor, deltas, weights = anchors(identity)
    rest = identity.pose(identity.neutral_params())
    rest.validate_finite("the avatar's rest pose")
    offsets = rest.means.astype(np.float64) - anchor
    model = identity.model
    keep = [i for i, n in enumerate(model.expr_names) if n in ARKIT_NAMES
            and (n != "tongueOut" or np.abs(deltas[:, :, i]).max(initial=0.0) > 0)]
    joints = rest_joints(model, identity.shape) + centre
    sh = rest.sh.copy()
    sh[:, 0, :] = sh_dc_to_rgb(sh[:, 0, :])  # LAM's f_dc hold the colour itself (module docstring)
    offset_set = GaussianSet(offsets.astype(np.float32), rest.log_scales, rest.quats, rest.opacity_logits, sh)
    positions = (anchor.astype(np.float64) + centre).astype(np.float32)
    faces = _faces_for(len(anchor))
    return {
        "skin.glb": write_skin_glb(positions, faces, [model.expr_names[i] for i in keep],
                                   np.moveaxis(deltas[:, :, keep], 2, 0), weights, joints, centre),
        "offset.ply": ply_bytes(offset_set, comments=("LAM offsets: x y z relative to skin.glb vertex i",)),
        "vertex_order.json": json.dumps(np.argsort(positions[:, 1], kind="stable").tolist()).encode("ascii"),
        "animation.glb": write_animation_glb(joints, template_clips()),
    }


def _faces_for(n: int) -> np.ndarray:
    """Triangles over the N anchor vertices (consecutive triples, the last one wrapping): LAM's
    loader needs a skinned triangle mesh, and our anchors have no surface of their own."""
    if n < 3:
        raise GaussianHeadsError("a LAM avatar needs at least 3 Gaussians")
    idx = np.arange(((n + 2) // 3) * 3) % n
    return idx.reshape(-1, 3).astype(np.uint32)


def write_lam_zip(identity, path: str | os.PathLike, *, name: str | None = None, head_centre=None) -> None:
    """Write ``identity`` as a LAM avatar zip at ``path`` (folder ``name``, default the file's stem).

    ``head_centre``: glb position of the model origin (default: where an imported LAM avatar had
    it, else ``DEFAULT_HEAD_CENTRE``, in view of LAM's renderer's default camera).
    """
    path = os.fspath(path)
    folder = name or os.path.splitext(os.path.basename(path))[0] or "avatar"
    if "/" in folder or "\\" in folder or folder in (".", ".."):
        raise GaussianHeadsError(f"'{folder}' is not a valid LAM avatar folder name")
    members = lam_zip_members(identity, head_centre)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo(folder + "/"), b"")          # LAM's loader looks for the folder entry
        for base in ("skin.glb", "offset.ply", "vertex_order.json", "animation.glb"):
            info = zipfile.ZipInfo(f"{folder}/{base}", date_time=(2025, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, members[base])
    write_atomic(path, buf.getvalue())
