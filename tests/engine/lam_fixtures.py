"""A synthetic LAM-style avatar zip built from our open head model (no real person's avatar).

``make_lam_zip(path, ...)`` writes the open model's mesh (one Gaussian per vertex, random small
offsets, Gaussian attributes), its 51 ARKit targets (no tongueOut), a skin with neck, jaw and eye
bones inside a bigger body rig (hip, spine, chest, shoulders, with bone names as LAM's rig might
spell them), a shuffled ``vertex_order.json`` and an ``animation.glb``. The returned ``LamTruth``
holds what the zip encodes in glb space, for direct computations in the tests.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass

import numpy as np

from engine.avatar.gaussian_set import GaussianSet
from engine.head_model import load_head_model
from engine.head_model.arkit import ARKIT_NAMES
from engine.io.lam_glb_write import Rig, template_clips, write_animation_glb, write_skin_glb
from engine.io.ply import ply_bytes

CENTRE = np.array([0.0, 1.6, 0.02])
RIG_NAMES = ("hip", "spine", "chest", "Neck", "head", "Jaw", "LeftEye", "RightEye", "shoulder_l", "shoulder_r")
RIG_PARENTS = (-1, 0, 1, 2, 3, 4, 4, 4, 2, 2)


@dataclass
class LamTruth:
    positions: np.ndarray      # [V, 3] glb
    targets: np.ndarray        # [51, V, 3]
    target_names: tuple
    offsets: np.ndarray        # [V, 3]
    gaussians: GaussianSet     # offsets as means, attributes as written
    bone_world: np.ndarray     # [B, 3]
    order: np.ndarray          # [V] vertex_order.json


def lam_members(seed: int = 0, stride: int = 1) -> tuple[dict[str, bytes], LamTruth]:
    """The zip members (base name -> bytes) and the truth. ``stride`` > 1 keeps every stride-th
    face's vertices (a smaller avatar for fuzzing)."""
    rng = np.random.default_rng(seed)
    model = load_head_model("open")
    faces = np.asarray(model.faces)[::stride]
    used = np.unique(faces)
    remap = np.full(model.n_vertices, -1)
    remap[used] = np.arange(len(used))
    faces = remap[faces]
    v = len(used)
    positions = np.asarray(model.v_template, np.float64)[used] + CENTRE
    names = tuple(n for n in ARKIT_NAMES if n != "tongueOut")
    targets = np.stack([np.asarray(model.exprdirs)[used, :, model.expr_names.index(n)] for n in names])
    joints = np.asarray(model.j_regressor, np.float64) @ np.asarray(model.v_template, np.float64) + CENTRE
    neck, head, jaw, eye_l, eye_r = joints
    world = np.array([neck - [0, 0.5, 0], neck - [0, 0.3, 0], neck - [0, 0.1, 0], neck, head, jaw, eye_l, eye_r,
                      neck + [0.15, -0.1, 0], neck + [-0.15, -0.1, 0]])
    rig = Rig(RIG_NAMES, RIG_PARENTS, world, (3, 4, 5, 6, 7))
    weights = np.asarray(model.weights, np.float32)[used]
    offsets = rng.normal(0, 0.002, (v, 3))
    gaussians = GaussianSet(offsets.astype(np.float32), rng.normal(-6.5, 0.3, (v, 3)).astype(np.float32),
                            rng.normal(0, 1, (v, 4)).astype(np.float32), rng.normal(1, 1, v).astype(np.float32),
                            rng.normal(0, 0.5, (v, 1, 3)).astype(np.float32))
    gaussians = GaussianSet(gaussians.means, gaussians.log_scales,
                            gaussians.quats / np.linalg.norm(gaussians.quats, axis=1, keepdims=True),
                            gaussians.opacity_logits, gaussians.sh)
    order = rng.permutation(v)
    members = {
        "skin.glb": write_skin_glb(positions.astype(np.float32), faces, names, targets, weights, joints, rig=rig),
        "offset.ply": ply_bytes(gaussians),
        "vertex_order.json": json.dumps(order.tolist()).encode(),
        "animation.glb": write_animation_glb(joints - 0.0, template_clips()[:3]),
    }
    return members, LamTruth(positions, targets.astype(np.float32), names, offsets, gaussians, world, order)


def zip_bytes(members: dict[str, bytes], folder: str = "avatar", extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo(folder + "/"), b"")
        for base, data in members.items():
            zf.writestr(f"{folder}/{base}", data)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def make_lam_zip(path, seed: int = 0, stride: int = 1) -> LamTruth:
    members, truth = lam_members(seed, stride)
    with open(path, "wb") as fh:
        fh.write(zip_bytes(members))
    return truth
