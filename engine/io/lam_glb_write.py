"""Writing the glTF files of a LAM avatar zip (``skin.glb``, ``animation.glb``) with pygltflib.

The rig is what LAM's web renderer looks for: a root bone ``hip`` (it updates the skeleton from
there), a chain ``neck`` → ``head`` (the bone that moves the splats) with ``jaw``, ``leftEye`` and
``rightEye`` under the head. Bones have identity rest rotations, so a bone's local axes are the
model's; inverse bind matrices are the inverse rest world matrices (rest skinning = identity).

    write_skin_glb(positions [V,3], faces [F,3], target_names (T,), targets [T,V,3],
                   weights [V,5] (columns: neck, head, jaw, leftEye, rightEye), joints [5,3]) -> bytes
    write_animation_glb(joints [5,3], clips [(name, times [K], head_quats_xyzw [K,4])]) -> bytes
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BONES = ("hip", "neck", "head", "jaw", "leftEye", "rightEye")
_BONE_PARENT = (-1, 0, 1, 2, 2, 2)
WEIGHT_BONES = (1, 2, 3, 4, 5)          # weights columns -> BONES index
HIP_BELOW_NECK = 0.45                   # metres from the neck bone down to the hip bone


@dataclass(frozen=True)
class Rig:
    """Bones: names (B,), parents (B,) (-1: root), world rest positions [B, 3], and which bone
    each weights column (neck, head, jaw, eye_l, eye_r) skins to (5,)."""

    names: tuple[str, ...]
    parents: tuple[int, ...]
    world: np.ndarray
    weight_bones: tuple[int, ...]


class _Builder:
    """Accumulates the BIN chunk, buffer views and accessors of one glb."""

    def __init__(self):
        import pygltflib

        self.g = pygltflib
        self.gltf = pygltflib.GLTF2(asset=pygltflib.Asset(version="2.0", generator="Gaussian Heads"))
        self.blob = bytearray()

    def accessor(self, array: np.ndarray, kind: str, target: int | None = None, minmax: bool = False) -> int:
        g = self.g
        array = np.ascontiguousarray(array)
        component = {np.dtype("float32"): g.FLOAT, np.dtype("uint32"): g.UNSIGNED_INT,
                     np.dtype("uint16"): g.UNSIGNED_SHORT}[array.dtype]
        while len(self.blob) % 4:
            self.blob.append(0)
        view = g.BufferView(buffer=0, byteOffset=len(self.blob), byteLength=array.nbytes, target=target)
        self.blob.extend(array.tobytes())
        self.gltf.bufferViews.append(view)
        count = array.shape[0] if kind != "SCALAR" else array.size
        acc = g.Accessor(bufferView=len(self.gltf.bufferViews) - 1, componentType=component, count=int(count),
                         type=kind)
        if minmax:
            flat = array.reshape(count, -1)
            acc.min = [float(x) for x in flat.min(0)] if count else None
            acc.max = [float(x) for x in flat.max(0)] if count else None
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1

    def rig(self, joints: np.ndarray, bones: Rig | None = None) -> list[int]:
        """The bone nodes at ``joints`` (neck, head, jaw, eye_l, eye_r; or ``bones``); root list."""
        if bones is None:
            world = np.vstack([joints[0] - [0.0, HIP_BELOW_NECK, 0.0], joints]).astype(np.float64)
            bones = Rig(BONES, _BONE_PARENT, world, WEIGHT_BONES)
        first = len(self.gltf.nodes)
        for b, name in enumerate(bones.names):
            p = bones.parents[b]
            local = bones.world[b] - (bones.world[p] if p >= 0 else 0.0)
            self.gltf.nodes.append(self.g.Node(name=name, translation=[float(x) for x in local]))
        for b, p in enumerate(bones.parents):
            if p >= 0:
                self.gltf.nodes[first + p].children.append(first + b)
        self._rig = bones
        return [first + b for b, p in enumerate(bones.parents) if p < 0]

    def finish(self, roots: list[int]) -> bytes:
        g = self.g
        self.gltf.scenes = [g.Scene(nodes=roots)]
        self.gltf.scene = 0
        self.gltf.buffers = [g.Buffer(byteLength=len(self.blob))]
        self.gltf.set_binary_blob(bytes(self.blob))
        return b"".join(bytes(part) for part in self.gltf.save_to_bytes())


def write_skin_glb(positions, faces, target_names, targets, weights, joints, model_origin=None,
                   rig: Rig | None = None) -> bytes:
    """The skinned head mesh (see the module docstring); float32 throughout. ``model_origin`` [3]
    (glb position of our model's origin) is kept in the mesh node's extras for our own import."""
    b = _Builder()
    g = b.g
    roots = b.rig(np.asarray(joints, np.float64), rig)
    w = np.asarray(weights, np.float32)
    top = np.argsort(-w, axis=1, kind="stable")[:, :4]                              # 4 influences
    top_w = np.take_along_axis(w, top, 1)
    top_w /= np.maximum(top_w.sum(1, keepdims=True), 1e-8)
    joint_idx = np.asarray(b._rig.weight_bones, np.uint16)[top]
    attrs = g.Attributes(
        POSITION=b.accessor(np.asarray(positions, np.float32), "VEC3", g.ARRAY_BUFFER, minmax=True),
        JOINTS_0=b.accessor(joint_idx.astype(np.uint16), "VEC4", g.ARRAY_BUFFER),
        WEIGHTS_0=b.accessor(top_w.astype(np.float32), "VEC4", g.ARRAY_BUFFER))
    morph = [{"POSITION": b.accessor(np.asarray(t, np.float32), "VEC3", g.ARRAY_BUFFER, minmax=True)}
             for t in targets]
    indices = b.accessor(np.asarray(faces, np.uint32).reshape(-1), "SCALAR", g.ELEMENT_ARRAY_BUFFER)
    prim = g.Primitive(attributes=attrs, indices=indices, mode=g.TRIANGLES, targets=morph)
    b.gltf.meshes.append(g.Mesh(name="head", primitives=[prim], weights=[0.0] * len(morph),
                                extras={"targetNames": list(target_names)}))
    n_bones = len(b._rig.names)
    ibm = np.stack([np.linalg.inv(_translation(p)) for p in b._rig.world]).transpose(0, 2, 1)  # column-major
    b.gltf.skins.append(g.Skin(joints=list(range(n_bones)), skeleton=0,
                               inverseBindMatrices=b.accessor(ibm.reshape(n_bones, 16).astype(np.float32), "MAT4")))
    extras = {} if model_origin is None else {"model_origin": [float(x) for x in model_origin]}
    b.gltf.nodes.append(g.Node(name="head_mesh", mesh=0, skin=0, extras=extras))
    return b.finish(roots + [len(b.gltf.nodes) - 1])


def write_animation_glb(joints, clips) -> bytes:
    """The rig and one animation per clip rotating the ``head`` bone (xyzw local quaternions)."""
    b = _Builder()
    g = b.g
    roots = b.rig(np.asarray(joints, np.float64))
    head_node = BONES.index("head")
    for name, times, quats in clips:
        t_acc = b.accessor(np.asarray(times, np.float32), "SCALAR", minmax=True)
        q_acc = b.accessor(np.asarray(quats, np.float32), "VEC4")
        b.gltf.animations.append(g.Animation(
            name=name, samplers=[g.AnimationSampler(input=t_acc, output=q_acc, interpolation="LINEAR")],
            channels=[g.AnimationChannel(sampler=0, target=g.AnimationChannelTarget(node=head_node,
                                                                                    path="rotation"))]))
    return b.finish(roots)


def template_clips(fps: float = 30.0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Twelve gentle head motions in the order LAM's renderer assigns them (hello ×2, idle,
    speak ×6, think ×3): nods and turns of a few degrees, each starting and ending at rest."""
    clips = []
    names = ["hello_1", "hello_2", "idle", *(f"speak_{i}" for i in range(1, 7)), *(f"think_{i}" for i in range(1, 4))]
    for i, name in enumerate(names):
        seconds = 2.0 + (i % 3)
        t = np.arange(int(seconds * fps) + 1) / fps
        amp = np.radians(3.0 + 2.0 * (i % 4))
        angle = amp * np.sin(2 * np.pi * t / seconds * (1 + i % 2))
        axis = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])[i % 3]
        quats = np.concatenate([np.sin(angle / 2)[:, None] * axis, np.cos(angle / 2)[:, None]], 1)
        clips.append((name, t, quats))
    return clips


def _translation(p) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = p
    return m
