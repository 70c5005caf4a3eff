"""LAM skin ⇄ our head model: a ``skin.glb`` mesh becomes a HeadModel, an identity becomes anchors.

Import (``head_model_from_skin``): model space is the glb's world space (where LAM's renderer
draws: the head bone's skinning matrix M = world(head) · inverseBind(head) applied to the raw
POSITION), moved so that the mesh's bounding-box centre is the origin (or, for a zip we wrote,
the origin our exporter recorded, so a round trip keeps the avatar in place). Joints, FLAME order:
global at the ``neck`` bone, neck at the ``head`` bone, jaw and eyes at their bones (a missing
bone sits at the head bone). Skin weights of the jaw and eye bones (and their descendants) go to
those joints, every other bone's weight to the neck joint: with jaw and eyes at rest every vertex
follows the head bone, as in LAM's renderer. The joint regressor is an affine combination of four
vertices no morph target moves, so joints stay where the bones are under any expression.

Export (``anchors``): every Gaussian gets its own vertex, the rest-pose surface point it is bound
to, with expression deltas and skin weights interpolated from its face (barycentric).
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import GaussianHeadsError, InputFileError
from ..head_model.arkit import ARKIT_NAMES
from ..head_model.model import HeadModel, HeadParams
from .lam_glb import SkinnedMesh

OPTIONAL_TARGETS = ("tongueOut",)   # LAM's public exports have 51 targets: no tongueOut
ROLE_PATTERNS = {
    "neck": re.compile(r"neck", re.I),
    "jaw": re.compile(r"jaw", re.I),
    "eye_l": re.compile(r"(left.*eye|eye.*left|^l[_.]?eye|eye[_.]?l$)", re.I),
    "eye_r": re.compile(r"(right.*eye|eye.*right|^r[_.]?eye|eye[_.]?r$)", re.I),
}


def check_targets(where: str, names: tuple[str, ...]) -> None:
    """ARKit names only, no duplicates, all 51 of LAM's present (tongueOut optional)."""
    unknown = [n for n in names if n not in ARKIT_NAMES]
    if unknown:
        raise InputFileError(where, f"morph targets with non-ARKit names: {', '.join(unknown[:8])}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputFileError(where, f"morph targets named twice: {', '.join(dup)}")
    missing = [n for n in ARKIT_NAMES if n not in names and n not in OPTIONAL_TARGETS]
    if missing:
        raise InputFileError(where, f"missing ARKit morph targets: {', '.join(missing[:8])}"
                                    + (f" (and {len(missing) - 8} more)" if len(missing) > 8 else ""))


def _roles(skin: SkinnedMesh) -> dict[str, int]:
    names = skin.joint_names
    roles = {}
    heads = [k for k, n in enumerate(names) if n.lower() == "head"]
    if heads:
        roles["head"] = heads[0]
    for role, pattern in ROLE_PATTERNS.items():
        found = [k for k, n in enumerate(names) if pattern.search(n)]
        if found:  # the one nearest the root (e.g. 'neck' before 'neck_end')
            roles[role] = min(found, key=lambda k: _depth(skin.joint_parent, k))
    return roles


def _depth(parent: np.ndarray, k: int) -> int:
    d = 0
    while parent[k] != -1 and d <= len(parent):
        k, d = int(parent[k]), d + 1
    return d


def _static_regressor(where: str, vertices: np.ndarray, moving: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[P, V] rows expressing each point as an affine combination of 4 vertices (static ones first)."""
    order = np.argsort(moving, kind="stable")
    pool = order[: max(4, int((moving <= moving[order[0]] + 1e-9).sum()))]
    pts = vertices[pool].astype(np.float64)
    a = int(np.argmax(np.linalg.norm(pts - pts.mean(0), axis=1)))
    b = int(np.argmax(np.linalg.norm(pts - pts[a], axis=1)))
    ab = pts[b] - pts[a]
    c = int(np.argmax(np.linalg.norm(np.cross(pts - pts[a], ab), axis=1)))
    normal = np.cross(ab, pts[c] - pts[a])
    d = int(np.argmax(np.abs((pts - pts[a]) @ normal)))
    basis = np.stack([pts[b] - pts[a], pts[c] - pts[a], pts[d] - pts[a]], 1)
    if abs(np.linalg.det(basis)) < 1e-12:
        raise InputFileError(where, "the head mesh is flat (no four vertices span a volume)")
    coef = np.linalg.solve(basis, (points - pts[a]).T).T                      # [P, 3]
    rows = np.zeros((len(points), len(vertices)), np.float64)
    for p in range(len(points)):
        for idx, w in ((a, 1 - coef[p].sum()), (b, coef[p, 0]), (c, coef[p, 1]), (d, coef[p, 2])):
            rows[p, pool[idx]] += w
    return rows.astype(np.float32)


def head_model_from_skin(where: str, skin: SkinnedMesh, name: str) -> tuple[HeadModel, np.ndarray, np.ndarray]:
    """(HeadModel, origin [3] (glb world position of the model origin), M_head [4, 4])."""
    check_targets(where, skin.target_names)
    roles = _roles(skin)
    if "head" not in roles:
        raise InputFileError(where, "the skin has no bone named 'head' (LAM's renderer moves the splats with it)")
    m_head = skin.joint_world[roles["head"]] @ skin.inverse_bind[roles["head"]]
    lin = m_head[:3, :3]
    if not np.isfinite(m_head).all() or abs(np.linalg.det(lin)) < 1e-9:
        raise InputFileError(where, "the head bone's skinning matrix is singular or not finite")
    world = skin.positions.astype(np.float64) @ lin.T + m_head[:3, 3]
    origin = (world.min(0) + world.max(0)) / 2 if skin.origin_hint is None else skin.origin_hint
    v_template = (world - origin).astype(np.float32)
    v = v_template.shape[0]
    exprdirs = np.zeros((v, 3, len(ARKIT_NAMES)), np.float32)
    for t, tname in enumerate(skin.target_names):
        exprdirs[:, :, ARKIT_NAMES.index(tname)] = skin.targets[t].astype(np.float64) @ lin.T
    head_pos = skin.joint_world[roles["head"]][:3, 3]
    joint_world = [skin.joint_world[roles[r]][:3, 3] if r in roles else head_pos
                   for r in ("neck", "head", "jaw", "eye_l", "eye_r")]
    joints = np.stack(joint_world) - origin
    # each skin joint -> our joint: jaw/eyes (or their descendants) keep theirs, the rest -> neck (1)
    target = np.ones(len(skin.joint_names), np.int64)
    for k in range(len(skin.joint_names)):
        j = k
        while j != -1:
            hit = next((i for i, r in ((2, "jaw"), (3, "eye_l"), (4, "eye_r")) if roles.get(r) == j), None)
            if hit is not None:
                target[k] = hit
                break
            j = int(skin.joint_parent[j])
    weights = np.zeros((v, 5), np.float64)
    np.add.at(weights, (np.repeat(np.arange(v), skin.joints.shape[1]), target[skin.joints.reshape(-1)]),
              skin.weights.reshape(-1).astype(np.float64))
    total = weights.sum(1, keepdims=True)
    weights = np.where(total > 1e-8, weights / np.maximum(total, 1e-8), np.eye(5)[1])
    moving = np.abs(exprdirs).max(axis=(1, 2))
    j_regressor = _static_regressor(where, v_template, moving, joints)
    model = HeadModel(
        name=name, v_template=v_template, shapedirs=np.zeros((v, 3, 0), np.float32), exprdirs=exprdirs,
        expr_names=ARKIT_NAMES, j_regressor=j_regressor, parents=np.array([-1, 0, 1, 1, 1], np.int64),
        weights=weights.astype(np.float32), faces=skin.faces.astype(np.int32), expr_space="arkit",
        frame="LAM glb world space (+Y up, +Z forward), origin at the mesh's bounding-box centre")
    return model, origin.astype(np.float64), m_head


def anchors(identity) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(anchor [N, 3], expression deltas [N, 3, E], skin weights [N, 5]) in model space, rest pose."""
    from ..avatar.vertex_identity import VertexIdentity
    from ..head_model.lbs import shape_vertices

    model = identity.model
    if model.expr_space != "arkit":
        raise GaussianHeadsError("a LAM avatar animates with ARKit blendshapes; this avatar's head model has "
                                 f"{model.expr_space.upper()} expressions")
    if isinstance(identity, VertexIdentity):
        idx = identity.vertex
        v_shaped = shape_vertices(model, identity.shape)
        return (v_shaped[idx], np.asarray(model.exprdirs)[idx], np.asarray(model.weights)[idx])
    binding = getattr(identity, "binding", None)
    if binding is None:
        raise GaussianHeadsError(f"cannot export a {type(identity).__name__} as a LAM avatar "
                                 "(it is not bound to the head model's surface)")
    corners = np.asarray(model.faces)[binding.face_idx]                                   # [N, 3]
    bary = binding.bary.astype(np.float32)
    v_shaped = shape_vertices(model, identity.shape)
    anchor = np.einsum("nk,nkc->nc", bary, v_shaped[corners])
    deltas = np.einsum("nk,nkce->nce", bary, np.asarray(model.exprdirs, np.float32)[corners])
    weights = np.einsum("nk,nkj->nj", bary, np.asarray(model.weights, np.float32)[corners])
    return anchor.astype(np.float32), deltas.astype(np.float32), weights.astype(np.float32)


def rest_joints(model: HeadModel, shape: np.ndarray) -> np.ndarray:
    """[5, 3] joint positions of the shaped rest mesh (model space)."""
    from ..head_model import lbs

    params = HeadParams.neutral_for(model)
    params.shape = np.asarray(shape, np.float32)
    return np.asarray(lbs.forward(model, params).rest_joints, np.float64)
