"""LAM's ``animation.glb`` (and any glTF animation of a LAM-style rig) as a ParamSequence.

The first animation with channels we understand is sampled at ``FPS`` from 0 to its last key:

    node 'head' rotation      -> neck        (our neck joint sits at LAM's head bone)
    node '*neck*' rotation    -> global_rot  (our root sits at LAM's neck bone)
    node '*jaw*' rotation     -> jaw;  '*eye*' left/right rotations -> eyes
    mesh node 'weights'       -> expression channels, by the mesh's ARKit targetNames

A bone's rotation becomes the axis-angle of its change from rest in the glTF frame (the model
frame of an imported LAM avatar): R_parent_rest · (R_key · R_restᵀ) · R_parent_restᵀ.
LINEAR keys are interpolated (normalised lerp for quaternions), STEP keys held, CUBICSPLINE keys
use their values. Bad files raise one InputFileError naming the file.
"""

from __future__ import annotations

import os

import numpy as np

from ...errors import InputFileError
from ...head_model.arkit import ARKIT_NAMES
from ...io.lam_glb import load_gltf, node_world_matrices, quat_xyzw_to_matrix, read_accessor
from ...io.lam_model import ROLE_PATTERNS
from ..sequence import ParamSequence

FPS = 30.0
MAX_FRAMES = 100_000


def _role(name: str) -> str | None:
    if name.lower() == "head":
        return "neck"          # our neck param rotates about LAM's head bone
    for role, field in (("eye_l", "eye_l"), ("eye_r", "eye_r"), ("jaw", "jaw"), ("neck", "global_rot")):
        if ROLE_PATTERNS[role].search(name):
            return field
    return None


def _sample(times: np.ndarray, values: np.ndarray, grid: np.ndarray, interpolation: str) -> np.ndarray:
    if interpolation == "CUBICSPLINE":
        values = values.reshape(len(times), 3, -1)[:, 1]
    idx = np.clip(np.searchsorted(times, grid, side="right") - 1, 0, len(times) - 1)
    if interpolation == "STEP" or len(times) == 1:
        return values[idx]
    nxt = np.minimum(idx + 1, len(times) - 1)
    span = np.maximum(times[nxt] - times[idx], 1e-9)
    u = np.clip((grid - times[idx]) / span, 0.0, 1.0)[:, None]
    a, b = values[idx], values[nxt]
    if values.shape[1] == 4:   # quaternions: shortest arc, normalised lerp
        b = np.where(((a * b).sum(1) < 0)[:, None], -b, b)
        q = a * (1 - u) + b * u
        return q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    return a * (1 - u) + b * u


def _axis_angle(m: np.ndarray) -> np.ndarray:
    """[T, 3, 3] rotations -> [T, 3] axis-angle."""
    from ...avatar.transforms import matrix_to_quat

    q = matrix_to_quat(m)
    w = np.clip(q[:, 0], -1.0, 1.0)
    s = np.linalg.norm(q[:, 1:], axis=1)
    angle = 2 * np.arctan2(s, w)
    return np.where(s[:, None] > 1e-12, q[:, 1:] / np.maximum(s, 1e-12)[:, None] * angle[:, None], 0.0)


def sequence_from_glb(where: str, data: bytes, model=None) -> ParamSequence | None:
    """The sequence in glb ``data`` (None: no channel we understand). ``model``: the avatar's head
    model, whose expression names the sequence uses (default ARKit-52)."""
    gltf, blob = load_gltf(where, data)
    nodes = gltf.nodes or []
    world, parent = node_world_matrices(where, gltf)
    names = tuple(model.expr_names) if model is not None else ARKIT_NAMES
    for anim in gltf.animations or []:
        tracks = []
        for ch in anim.channels or []:
            node = ch.target.node if ch.target is not None else None
            if not isinstance(node, int) or not 0 <= node < len(nodes):
                continue
            samplers = anim.samplers or []
            if not isinstance(ch.sampler, int) or not 0 <= ch.sampler < len(samplers):
                raise InputFileError(where, "an animation channel refers to a missing sampler")
            s = samplers[ch.sampler]
            times = read_accessor(where, gltf, blob, s.input, "animation times")[:, 0].astype(np.float64)
            values = read_accessor(where, gltf, blob, s.output, "animation values").astype(np.float64)
            if len(times) == 0 or np.any(np.diff(times) < 0) or times[-1] > MAX_FRAMES / FPS:
                raise InputFileError(where, "animation key times are empty, unsorted or too long")
            tracks.append((node, ch.target.path, times, values, s.interpolation or "LINEAR"))
        useful = [t for t in tracks if (t[1] == "rotation" and _role(nodes[t[0]].name or ""))
                  or (t[1] == "weights" and nodes[t[0]].mesh is not None)]
        if not useful:
            continue
        end = max(t[2][-1] for t in useful)
        grid = np.arange(int(np.floor(end * FPS + 1e-6)) + 1) / FPS
        n = len(grid)
        fields = {k: np.zeros((n, 3)) for k in ("neck", "global_rot", "jaw", "eye_l", "eye_r")}
        expr = np.zeros((n, len(names)))
        for node, path, times, values, interp in useful:
            per_key = values.shape[0] // len(times) // (3 if interp == "CUBICSPLINE" else 1)
            if path == "rotation":
                if values.shape[1] != 4 or per_key != 1:
                    raise InputFileError(where, "a rotation channel does not hold one quaternion per key")
                q = _sample(times, values, grid, interp)
                rest = np.linalg.inv(world[parent[node]]) @ world[node] if parent[node] != -1 else world[node]
                rest_r = rest[:3, :3] / np.linalg.norm(rest[:3, :3], axis=0, keepdims=True)
                pr = world[parent[node]][:3, :3] if parent[node] != -1 else np.eye(3)
                pr = pr / np.linalg.norm(pr, axis=0, keepdims=True)
                delta = pr @ quat_xyzw_to_matrix(q) @ rest_r.T @ pr.T
                fields[_role(nodes[node].name or "")] = _axis_angle(delta)
            else:
                mesh = (gltf.meshes or [])[nodes[node].mesh] if nodes[node].mesh < len(gltf.meshes or []) else None
                targets = (mesh.extras or {}).get("targetNames", []) if mesh is not None and isinstance(
                    mesh.extras, dict) else []
                if values.shape[1] != 1 or not targets or per_key != len(targets):
                    raise InputFileError(where, "a morph-weight channel does not match its mesh's targets")
                w = _sample(times, values.reshape(len(times) * (3 if interp == "CUBICSPLINE" else 1), -1),
                            grid, interp)
                for k, tname in enumerate(targets):
                    if tname in names:
                        expr[:, names.index(tname)] = w[:, k]
        if not (np.isfinite(expr).all() and all(np.isfinite(v).all() for v in fields.values())):
            raise InputFileError(where, "animation values are not finite")
        return ParamSequence(
            fps=FPS, expr_names=names, expr=expr.astype(np.float32), jaw=fields["jaw"].astype(np.float32),
            neck=fields["neck"].astype(np.float32), global_rot=fields["global_rot"].astype(np.float32),
            eyes=np.stack([fields["eye_l"], fields["eye_r"]], 1).astype(np.float32),
            translation=np.zeros((n, 3), np.float32), space="arkit", source_format="lam_animation_glb",
            notes={"lam": f"glTF animation '{anim.name or ''}' sampled at {FPS:g} fps"})
    return None


def read_lam_animation_glb(path: str | os.PathLike) -> ParamSequence:
    """An animation .glb file -> ParamSequence (ARKit channels)."""
    from ...io._common import read_capped

    path = os.fspath(path)
    seq = sequence_from_glb(path, read_capped(path, 512 << 20))
    if seq is None:
        raise InputFileError(path, "holds no head-bone or morph-weight animation")
    return seq
