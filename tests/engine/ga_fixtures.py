"""Fixtures for GaussianAvatars-format tests: a synthetic FLAME-layout model with a mouth opening,
a synthetic GaussianAvatars folder on it, and a direct implementation of the format's maths.

``write_flame_npz(path)`` writes FLAME-keyed arrays (v_template, f, shapedirs = 300 shape + E
expression, posedirs, J_regressor, weights, kintree_table) of the synthetic ellipsoid head with a
slit cut in front as the mouth (the lower lip and below follow the jaw). ``write_avatar(folder,
flame_path)`` writes ``point_cloud.ply`` (face-local xyz / scale / rot, ``binding_0``, some of it on
the teeth) and ``flame_param.npz`` (shape, static_offset, a short sequence). ``reference_pose``
poses those files the way the format defines it, written straight from docs/FORMATS.md.
"""

from __future__ import annotations

import os

import numpy as np

from tests.engine.synthetic_head import _rodrigues, make_synthetic_head

N_EXPR = 10
ROOT_PARENT = 4294967295


def flame_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    base = make_synthetic_head(n_lat=24, n_lon=48, n_shape=300, seed=seed)
    v = base.v_template.astype(np.float64)
    faces = base.faces.astype(np.int64)
    centre = v[faces].mean(axis=1)
    slit = (np.abs(centre[:, 0]) < 0.03) & (np.abs(centre[:, 1] + 0.045) < 0.004) & (centre[:, 2] > 0.05)
    faces = faces[~slit]
    front = v[:, 2] > 0.02
    mouth_y = centre[slit, 1].mean()
    jaw = front & (v[:, 1] < mouth_y)
    weights = base.weights.astype(np.float64).copy()
    weights[:, 0] += weights[:, 2]
    weights[:, 2] = 0.0
    weights[jaw] = 0.0
    weights[jaw, 2] = 1.0
    rng = np.random.default_rng(seed + 1)
    x, y, z = (v / np.abs(v).max(axis=0)).T
    expr = np.stack([np.stack([np.sin(3 * x + k), np.cos(2 * y - k), np.sin(z * k)], -1) for k in range(N_EXPR)], -1)
    return {
        "v_template": v,
        "f": faces.astype(np.uint32),
        "shapedirs": np.concatenate([base.shapedirs, 0.002 * expr], axis=2),
        "posedirs": rng.normal(0, 2e-4, (len(v), 3, 36)),
        "J_regressor": base.j_regressor.astype(np.float64),
        "weights": weights,
        "kintree_table": np.array([[ROOT_PARENT, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
    }


def write_flame_npz(path, seed: int = 0) -> str:
    np.savez(path, **flame_arrays(seed))
    return os.fspath(path)


def _ply_bytes(props: dict[str, np.ndarray], binding: np.ndarray, binding_type: str) -> bytes:
    names = list(props)
    n = len(binding)
    dtype = [(nm, "<f4") for nm in names] + [("binding_0", "<i4" if binding_type == "int" else "<f4")]
    table = np.zeros(n, dtype)
    for nm in names:
        table[nm] = props[nm]
    table["binding_0"] = binding
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    header += [f"property float {nm}" for nm in names] + [f"property {binding_type} binding_0", "end_header"]
    return ("\n".join(header) + "\n").encode("ascii") + table.tobytes()


def avatar_arrays(n_faces_flame: int, n_vertices_flame: int, n: int = 600, seed: int = 3) -> dict:
    """Face-local Gaussians (a tenth on the teeth), shape β and static offsets, a 6-frame sequence."""
    rng = np.random.default_rng(seed)
    binding = rng.integers(0, n_faces_flame, n)
    binding[: n // 10] = n_faces_flame + rng.integers(0, 168, n // 10)
    rot = rng.normal(size=(n, 4))
    rot[:5] *= 3.0                      # not unit length: the format normalises
    sh = rng.normal(0, 0.5, (n, 4, 3))
    props = {"x": rng.normal(0, 0.3, n), "y": rng.normal(0, 0.3, n), "z": rng.normal(0, 0.3, n)}
    props.update({f"f_dc_{c}": sh[:, 0, c] for c in range(3)})
    props.update({f"f_rest_{c * 3 + j - 1}": sh[:, j, c] for c in range(3) for j in range(1, 4)})
    props["opacity"] = rng.normal(0, 1, n)
    props.update({f"scale_{i}": rng.normal(-1.0, 0.3, n) for i in range(3)})
    props.update({f"rot_{i}": rot[:, i] for i in range(4)})
    T = 6
    params = {
        "shape": rng.normal(0, 1, 300).astype(np.float32),
        "static_offset": rng.normal(0, 5e-4, (1, n_vertices_flame + 120, 3)).astype(np.float32),
        "expr": rng.normal(0, 1, (T, N_EXPR)).astype(np.float32),
        "rotation": rng.normal(0, 0.1, (T, 3)).astype(np.float32),
        "neck_pose": rng.normal(0, 0.1, (T, 3)).astype(np.float32),
        "jaw_pose": np.abs(rng.normal(0, 0.2, (T, 3))).astype(np.float32),
        "eyes_pose": rng.normal(0, 0.1, (T, 6)).astype(np.float32),
        "translation": rng.normal(0, 0.01, (T, 3)).astype(np.float32),
        "dynamic_offset": np.zeros((T, n_vertices_flame + 120, 3), np.float32),
    }
    return {"props": props, "binding": binding, "params": params}


def write_avatar(folder, flame: dict, binding_type: str = "float", **kw) -> dict:
    os.makedirs(folder, exist_ok=True)
    arrays = avatar_arrays(len(flame["f"]), len(flame["v_template"]), **kw)
    with open(os.path.join(folder, "point_cloud.ply"), "wb") as fh:
        fh.write(_ply_bytes(arrays["props"], arrays["binding"], binding_type))
    np.savez(os.path.join(folder, "flame_param.npz"), **arrays["params"])
    return arrays


# ------------------------------------------------------------------------------------------------
# The format's maths, written directly (numpy, float64)

def reference_vertices(teeth_model, beta, static_offset, expr, rotation, neck, jaw, eyes, translation):
    """FLAME(+teeth) LBS: v_shaped = template + dirs·(β, ψ) + static offset; joints from v_shaped;
    pose correctives; skinning; + translation."""
    m = teeth_model
    v_shaped = (m.v_template.astype(np.float64) + m.shapedirs.astype(np.float64) @ beta
                + m.exprdirs.astype(np.float64) @ expr + static_offset)
    joints = m.j_regressor.astype(np.float64) @ v_shaped
    rots = [_rodrigues(np.asarray(r, np.float64)) for r in (rotation, neck, jaw, eyes[:3], eyes[3:])]
    feat = np.concatenate([(r - np.eye(3)).reshape(-1) for r in rots[1:]])
    v_posed = v_shaped + m.posedirs.astype(np.float64) @ feat
    world = []
    for j, r in enumerate(rots):
        local = np.eye(4)
        local[:3, :3] = r
        parent = m.parents[j]
        local[:3, 3] = joints[j] - (joints[parent] if parent >= 0 else 0)
        world.append(local if parent < 0 else world[parent] @ local)
    skin = []
    for j, g in enumerate(world):
        a = g.copy()
        a[:3, 3] -= g[:3, :3] @ joints[j]
        skin.append(a)
    blend = np.einsum("vj,jab->vab", m.weights.astype(np.float64), np.stack(skin))
    return np.einsum("vab,vb->va", blend[:, :3, :3], v_posed) + blend[:, :3, 3] + translation


def _quat_of(r):
    w = np.sqrt(max(0.0, 1 + np.trace(r))) / 2
    x = np.copysign(np.sqrt(max(0.0, 1 + r[0, 0] - r[1, 1] - r[2, 2])) / 2, r[2, 1] - r[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1 - r[0, 0] + r[1, 1] - r[2, 2])) / 2, r[0, 2] - r[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1 - r[0, 0] - r[1, 1] + r[2, 2])) / 2, r[1, 0] - r[0, 1])
    return np.array([w, x, y, z])


def _qmul(a, b):
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw])


def reference_gaussians(vertices, faces, props, binding):
    """World means [N,3], log scales [N,3], rotation matrices [N,3,3] per docs/FORMATS.md."""
    xyz = np.stack([props["x"], props["y"], props["z"]], 1).astype(np.float64)
    log_s = np.stack([props[f"scale_{i}"] for i in range(3)], 1).astype(np.float64)
    rot = np.stack([props[f"rot_{i}"] for i in range(4)], 1).astype(np.float64)
    means, scales, mats = [], [], []
    for i, f in enumerate(binding):
        v0, v1, v2 = vertices[faces[int(f)]]
        a0 = (v1 - v0) / np.linalg.norm(v1 - v0)
        a1 = np.cross(a0, v2 - v0)
        a1 /= np.linalg.norm(a1)
        a2 = -np.cross(a1, a0)
        a2 /= np.linalg.norm(a2)
        r = np.stack([a0, a1, a2], 1)
        s = (np.linalg.norm(v1 - v0) + abs(a2 @ (v2 - v0))) / 2
        means.append((v0 + v1 + v2) / 3 + s * r @ xyz[i])
        scales.append(log_s[i] + np.log(s))
        q = _qmul(_quat_of(r), rot[i] / np.linalg.norm(rot[i]))
        w, x, y, z = q / np.linalg.norm(q)
        mats.append(np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                              [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                              [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]]))
    return np.array(means), np.array(scales), np.array(mats)
