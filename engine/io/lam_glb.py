"""The glTF side of a LAM avatar: read the skinned head mesh of ``skin.glb``, write ours.

glTF is parsed by pygltflib (bundled) from bytes; the binary data is decoded here with every
accessor bounds-checked (no sparse accessors, no external or data-URI buffers: a LAM glb keeps
everything in its BIN chunk). Shapes:

    SkinnedMesh
        positions    [V, 3] float32   raw POSITION (the skinned mesh's bind space)
        faces        [F, 3] int32     triangles
        target_names (T,)             morph target names (mesh.extras.targetNames)
        targets      [T, V, 3] float32 POSITION deltas per target
        joints       [V, K] int64     skin joint slots (JOINTS_0, JOINTS_1, ...)
        weights      [V, K] float32   their weights
        joint_names  (J,)             node names of the skin's joints
        joint_world  [J, 4, 4]        rest world matrix of each joint node (node TRS chain)
        inverse_bind [J, 4, 4]        the skin's inverseBindMatrices
        joint_parent [J] int          nearest ancestor that is also a skin joint (-1: none)
        origin_hint  [3] or None      our exporter's model origin (mesh node extras.model_origin)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import InputFileError

_COMPONENT = {5120: "i1", 5121: "u1", 5122: "i2", 5123: "u2", 5125: "u4", 5126: "f4"}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_NORMALIZED_SCALE = {"u1": 255.0, "u2": 65535.0}
MAX_VERTICES = 1 << 21
MAX_TARGETS = 256
MAX_NODES = 4096


@dataclass
class SkinnedMesh:
    positions: np.ndarray
    faces: np.ndarray
    target_names: tuple[str, ...]
    targets: np.ndarray
    joints: np.ndarray
    weights: np.ndarray
    joint_names: tuple[str, ...]
    joint_world: np.ndarray
    inverse_bind: np.ndarray
    joint_parent: np.ndarray
    origin_hint: np.ndarray | None = None


def load_gltf(where: str, data: bytes):
    """pygltflib's GLTF2 from glb bytes, and its BIN chunk; InputFileError if unreadable."""
    import pygltflib

    if len(data) < 12 or data[:4] != b"glTF":
        raise InputFileError(where, "not a binary glTF (.glb) file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gltf = pygltflib.GLTF2.load_from_bytes(data)
        blob = gltf.binary_blob() or b""
    except Exception as exc:  # pygltflib raises whatever its JSON/struct layers raise
        raise InputFileError(where, f"corrupt glTF ({type(exc).__name__}: {exc})") from None
    if gltf is None:
        raise InputFileError(where, "glTF has no JSON chunk")
    for buffer in gltf.buffers or []:
        if buffer.uri:
            raise InputFileError(where, "glTF refers to an external or data-URI buffer; a LAM glb keeps its "
                                        "data in the file")
    return gltf, bytes(blob)


def read_accessor(where: str, gltf, blob: bytes, index, what: str) -> np.ndarray:
    """Accessor ``index`` -> [count, width] array (normalised integers become float32 in [0, 1])."""
    accessors = gltf.accessors or []
    if not isinstance(index, int) or not 0 <= index < len(accessors):
        raise InputFileError(where, f"{what}: accessor {index!r} does not exist")
    acc = accessors[index]
    if acc.sparse is not None:
        raise InputFileError(where, f"{what}: sparse accessors are not supported")
    dtype = _COMPONENT.get(acc.componentType)
    width = _WIDTH.get(acc.type)
    count = acc.count
    if dtype is None or width is None or not isinstance(count, int) or not 0 <= count <= 64 * MAX_VERTICES:
        raise InputFileError(where, f"{what}: unsupported accessor ({acc.componentType}, {acc.type}, {count})")
    views = gltf.bufferViews or []
    if not isinstance(acc.bufferView, int) or not 0 <= acc.bufferView < len(views):
        raise InputFileError(where, f"{what}: accessor has no valid bufferView")
    view = views[acc.bufferView]
    if view.buffer != 0:
        raise InputFileError(where, f"{what}: data outside the glb's BIN chunk")
    item = np.dtype("<" + dtype).itemsize * width
    stride = view.byteStride or item
    start = int(view.byteOffset or 0) + int(acc.byteOffset or 0)
    view_end = int(view.byteOffset or 0) + int(view.byteLength or 0)
    if stride < item or start < 0 or view_end > len(blob) or (count and start + stride * (count - 1) + item > view_end):
        raise InputFileError(where, f"{what}: accessor runs past its buffer (truncated file?)")
    if count == 0:
        return np.zeros((0, width), np.float32 if dtype == "f4" else np.int64)
    raw = np.ndarray((count, width), dtype=np.dtype("<" + dtype), buffer=blob, offset=start,
                     strides=(stride, np.dtype(dtype).itemsize))
    out = np.array(raw)
    if acc.normalized and dtype in _NORMALIZED_SCALE:
        return (out / _NORMALIZED_SCALE[dtype]).astype(np.float32)
    if dtype == "f4":
        if not np.isfinite(out).all():
            raise InputFileError(where, f"{what}: NaN or infinite values")
        return out.astype(np.float32)
    return out.astype(np.int64)


def node_world_matrices(where: str, gltf) -> tuple[np.ndarray, np.ndarray]:
    """(world [nodes, 4, 4] float64 from the rest TRS/matrix chain, parent [nodes] int)."""
    nodes = gltf.nodes or []
    if len(nodes) > MAX_NODES:
        raise InputFileError(where, f"glTF has {len(nodes)} nodes (more than {MAX_NODES})")
    parent = np.full(len(nodes), -1, np.int64)
    for i, node in enumerate(nodes):
        for c in node.children or []:
            if not isinstance(c, int) or not 0 <= c < len(nodes) or parent[c] != -1 or c == i:
                raise InputFileError(where, f"glTF node {i} has an invalid or shared child {c!r}")
            parent[c] = i
    local = np.stack([local_matrix(where, n, i) for i, n in enumerate(nodes)]) if nodes else np.zeros((0, 4, 4))
    world = np.full((len(nodes), 4, 4), np.nan)
    for i in range(len(nodes)):
        chain = []
        j = i
        while j != -1 and np.isnan(world[j, 0, 0]):
            chain.append(j)
            if len(chain) > len(nodes):
                raise InputFileError(where, "glTF node hierarchy has a cycle")
            j = parent[j]
        m = np.eye(4) if j == -1 else world[j]
        for k in reversed(chain):
            m = m @ local[k]
            world[k] = m
    return world, parent


def local_matrix(where: str, node, index: int) -> np.ndarray:
    """A node's local 4x4 (matrix, or T·R·S with rotation as a unit xyzw quaternion)."""
    if node.matrix is not None:
        m = np.asarray(node.matrix, np.float64)
        if m.shape != (16,) or not np.isfinite(m).all():
            raise InputFileError(where, f"glTF node {index} has an invalid matrix")
        return m.reshape(4, 4).T  # column-major
    t = np.asarray(node.translation if node.translation is not None else (0, 0, 0), np.float64)
    r = np.asarray(node.rotation if node.rotation is not None else (0, 0, 0, 1), np.float64)
    s = np.asarray(node.scale if node.scale is not None else (1, 1, 1), np.float64)
    if t.shape != (3,) or r.shape != (4,) or s.shape != (3,) or not (np.isfinite(t).all() and np.isfinite(r).all()
                                                                     and np.isfinite(s).all()):
        raise InputFileError(where, f"glTF node {index} has an invalid translation/rotation/scale")
    norm = np.linalg.norm(r)
    if norm < 1e-8:
        raise InputFileError(where, f"glTF node {index} has a zero rotation quaternion")
    m = np.eye(4)
    m[:3, :3] = quat_xyzw_to_matrix(r / norm) * s[None, :]
    m[:3, 3] = t
    return m


def quat_xyzw_to_matrix(q: np.ndarray) -> np.ndarray:
    """Unit quaternion(s) [..., 4] (x, y, z, w) -> rotation matrices [..., 3, 3]."""
    x, y, z, w = np.moveaxis(np.asarray(q, np.float64), -1, 0)
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(np.shape(q)[:-1] + (3, 3))


def read_skinned_mesh(where: str, data: bytes) -> SkinnedMesh:
    """The one skinned triangle mesh of a LAM ``skin.glb`` (see the module docstring)."""
    gltf, blob = load_gltf(where, data)
    skinned = [i for i, n in enumerate(gltf.nodes or []) if n.mesh is not None and n.skin is not None]
    if len(skinned) != 1:
        raise InputFileError(where, f"expected one skinned mesh, found {len(skinned)}")
    node = gltf.nodes[skinned[0]]
    meshes, skins = gltf.meshes or [], gltf.skins or []
    if not (isinstance(node.mesh, int) and 0 <= node.mesh < len(meshes)
            and isinstance(node.skin, int) and 0 <= node.skin < len(skins)):
        raise InputFileError(where, "the skinned mesh node refers to a missing mesh or skin")
    mesh, skin = meshes[node.mesh], skins[node.skin]
    if len(mesh.primitives or []) != 1:
        raise InputFileError(where, f"the head mesh has {len(mesh.primitives or [])} primitives; expected one")
    prim = mesh.primitives[0]
    if prim.mode not in (None, 4):
        raise InputFileError(where, f"the head mesh is not made of triangles (mode {prim.mode})")
    attrs = prim.attributes
    positions = read_accessor(where, gltf, blob, attrs.POSITION, "POSITION")
    v = positions.shape[0]
    if positions.shape[1] != 3 or not 3 <= v <= MAX_VERTICES:
        raise InputFileError(where, f"POSITION has {v} vertices of width {positions.shape[1]}")
    if prim.indices is None:
        faces = np.arange(v - v % 3, dtype=np.int64).reshape(-1, 3)
    else:
        idx = read_accessor(where, gltf, blob, prim.indices, "indices")
        if idx.shape[1] != 1 or idx.shape[0] % 3 or idx.dtype.kind not in "iu":
            raise InputFileError(where, "triangle indices are not a multiple of 3 integers")
        faces = idx.reshape(-1, 3)
    if faces.size == 0 or faces.min() < 0 or faces.max() >= v:
        raise InputFileError(where, f"triangle indices outside the {v} vertices (or no triangles)")
    joints, weights = [], []
    for k in range(8):
        j_acc, w_acc = getattr(attrs, f"JOINTS_{k}", None), getattr(attrs, f"WEIGHTS_{k}", None)
        if j_acc is None and w_acc is None:
            break
        if j_acc is None or w_acc is None:
            raise InputFileError(where, f"JOINTS_{k} and WEIGHTS_{k} must come together")
        joints.append(read_accessor(where, gltf, blob, j_acc, f"JOINTS_{k}"))
        weights.append(read_accessor(where, gltf, blob, w_acc, f"WEIGHTS_{k}"))
    if not joints:
        raise InputFileError(where, "the head mesh has no skin weights (JOINTS_0/WEIGHTS_0)")
    joints_a = np.concatenate(joints, 1)
    weights_a = np.concatenate(weights, 1).astype(np.float32)
    if joints_a.shape != weights_a.shape or joints_a.shape[0] != v or joints_a.dtype.kind not in "iu":
        raise InputFileError(where, "skin joints/weights do not match the vertices")
    if (weights_a < -1e-6).any():
        raise InputFileError(where, "negative skin weights")
    n_joints = len(skin.joints or [])
    if n_joints == 0 or joints_a.max() >= n_joints:
        raise InputFileError(where, f"skin joint indices outside the skin's {n_joints} joints")
    nodes = gltf.nodes
    if any(not isinstance(j, int) or not 0 <= j < len(nodes) for j in skin.joints):
        raise InputFileError(where, "the skin lists a joint node that does not exist")
    world, parent = node_world_matrices(where, gltf)
    if skin.inverseBindMatrices is None:
        ibm = np.repeat(np.eye(4)[None], n_joints, 0)
    else:
        flat = read_accessor(where, gltf, blob, skin.inverseBindMatrices, "inverseBindMatrices")
        if flat.shape != (n_joints, 16):
            raise InputFileError(where, f"inverseBindMatrices has {flat.shape[0]} matrices for {n_joints} joints")
        ibm = flat.reshape(n_joints, 4, 4).transpose(0, 2, 1).astype(np.float64)
    slot = {node_i: k for k, node_i in enumerate(skin.joints)}
    joint_parent = np.full(n_joints, -1, np.int64)
    for k, node_i in enumerate(skin.joints):
        p = parent[node_i]
        while p != -1 and p not in slot:
            p = parent[p]
        joint_parent[k] = slot.get(int(p), -1) if p != -1 else -1
    targets_acc = prim.targets or []
    if len(targets_acc) > MAX_TARGETS:
        raise InputFileError(where, f"the head mesh has {len(targets_acc)} morph targets (more than {MAX_TARGETS})")
    names = (mesh.extras or {}).get("targetNames") if isinstance(mesh.extras, dict) else None
    if targets_acc and (not isinstance(names, list) or len(names) != len(targets_acc)
                        or not all(isinstance(n, str) for n in names)):
        raise InputFileError(where, "morph targets are unnamed (mesh.extras.targetNames missing or of the wrong "
                                    "length)")
    targets = np.zeros((len(targets_acc), v, 3), np.float32)
    for t, target in enumerate(targets_acc):
        acc = target.get("POSITION") if isinstance(target, dict) else None
        if acc is None:
            raise InputFileError(where, f"morph target '{names[t]}' has no POSITION deltas")
        delta = read_accessor(where, gltf, blob, acc, f"morph target '{names[t]}'")
        if delta.shape != (v, 3):
            raise InputFileError(where, f"morph target '{names[t]}' has {delta.shape[0]} deltas for {v} vertices")
        targets[t] = delta
    hint = (node.extras or {}).get("model_origin") if isinstance(node.extras, dict) else None
    try:
        hint = np.asarray(hint, np.float64) if hint is not None else None
    except (TypeError, ValueError):
        hint = None
    if hint is not None and (hint.shape != (3,) or not np.isfinite(hint).all()):
        hint = None
    return SkinnedMesh(origin_hint=hint, positions=positions, faces=faces.astype(np.int32), target_names=tuple(names or ()),
                       targets=targets, joints=joints_a, weights=weights_a,
                       joint_names=tuple(str(nodes[j].name or "") for j in skin.joints),
                       joint_world=world[list(skin.joints)], inverse_bind=ibm, joint_parent=joint_parent)
