"""Avatars inside the .blend: the identity's arrays as attributes of a point cloud object.

An avatar object is a POINTCLOUD object, so Solid view shows one point per Gaussian (at its
neutral-pose position, sized by its scale, coloured by its base colour in "Attribute" colour
mode). Storage layout, described by a JSON manifest in ``pointcloud.gaussian_heads.manifest``:

* per-Gaussian arrays (any array with an axis of length N; that axis is moved first) become
  named POINT attributes ``gh.<key>`` (or ``gh.<key>.<j>`` when split): float32 columns packed as
  FLOAT / FLOAT2 / FLOAT_VECTOR / QUATERNION / FLOAT4X4 (up to 16 per attribute), int32 columns
  as INT, anything else bit-cast to int32 columns. Storage is bit-exact.
* other arrays (identity β, metadata JSON, small deformation tensors) live inline in the
  manifest (base64 of the raw little-endian bytes, or the strings of a unicode array).
* ``position`` is the neutral pose in the object's (Blender) frame, ``radius`` a display size and
  ``Col`` the base colour: these are for display only and are not part of the identity.

Packing (render farms, library links): a stored avatar needs no file outside the .blend and the
extension. An identity bound to a head model other than the built-in open one (a FLAME
``.pkl``/``.npz``) also stores that model's arrays as ``headmodel.<key>`` (the ``.npz`` layout of
``engine.head_model.storage``); a generator identity stores its checkpoint's deformation branch
as ``deformation.packed.*`` (``engine.generator.packed``). Paths in the metadata are only
informational. Avatars stored before packing existed still reopen their files by path (and a
missing file gives an error naming it).

``load_identity(obj)`` rebuilds the identity once per content hash (a module-level cache), so
the render engine calls it every frame for free.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import OrderedDict

import bpy
import numpy as np

from ..engine.avatar.frames import MODEL_TO_BLENDER
from ..engine.avatar.gaussian_set import sh_dc_to_rgb
from ..engine.errors import GaussianHeadsError

MANIFEST_VERSION = 1
ATTR_PREFIX = "gh."
_CHUNK = 16
# columns per attribute -> (attribute type, foreach key, stored width)
_FLOAT_TYPES = {1: ('FLOAT', "value", 1), 2: ('FLOAT2', "vector", 2), 3: ('FLOAT_VECTOR', "vector", 3),
                4: ('QUATERNION', "value", 4)}
_FOREACH_KEY = {'FLOAT': "value", 'FLOAT2': "vector", 'FLOAT_VECTOR': "vector",
                'QUATERNION': "value", 'FLOAT4X4': "value", 'INT': "value", 'FLOAT_COLOR': "color"}
_CACHE_SIZE = 8
_identity_cache: "OrderedDict[str, object]" = OrderedDict()
_model_cache: dict[str, object] = {}  # spec, or "packed:<hash>" -> HeadModel
MODEL_PREFIX = "headmodel."


# --- hashing and array packing (plain numpy) -----------------------------------------------

def content_hash(arrays: dict) -> str:
    """sha256 over sorted keys, dtypes, shapes and bytes of every array."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        digest.update(key.encode())
        digest.update(a.dtype.str.encode())
        digest.update(repr(a.shape).encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _inline_encode(array: np.ndarray) -> dict:
    a = np.asarray(array)
    if a.dtype.kind in "US":
        return {"kind": "strings", "dtype": a.dtype.str, "shape": list(a.shape),
                "strings": [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in a.reshape(-1)]}
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return {"kind": "bytes", "dtype": a.dtype.str, "shape": list(a.shape),
            "data": base64.b64encode(a.tobytes()).decode("ascii")}


def _inline_decode(entry: dict) -> np.ndarray:
    shape = tuple(entry["shape"])
    if entry["kind"] == "strings":
        return np.array(entry["strings"], dtype=entry["dtype"]).reshape(shape)
    raw = base64.b64decode(entry["data"].encode("ascii"))
    return np.frombuffer(raw, dtype=np.dtype(entry["dtype"])).reshape(shape).copy()


def _columns_plan(dtype: np.dtype, width: int) -> tuple[str, list[tuple[str, int]]]:
    """How a row of ``width`` values of ``dtype`` is stored: (encoding, [(attr type, cols)])."""
    if dtype == np.float32:
        plan, left = [], width
        while left > 0:
            cols = min(_CHUNK, left)
            plan.append((_FLOAT_TYPES[cols][0] if cols in _FLOAT_TYPES else 'FLOAT4X4', cols))
            left -= cols
        return "float32", plan
    if dtype == np.float16:  # widened to float32 (exact), narrowed back on reading
        return "float16", _columns_plan(np.dtype(np.float32), width)[1]
    if dtype == np.int32:
        return "int32", [('INT', 1)] * width
    # anything else: raw bytes, padded to a multiple of 4, as int32 columns
    nbytes = width * dtype.itemsize
    return "bytes", [('INT', 1)] * ((nbytes + 3) // 4)


def _slot_width(attr_type: str, cols: int) -> int:
    return 16 if attr_type == 'FLOAT4X4' else (_FLOAT_TYPES[cols][2] if attr_type in
                                                ('FLOAT', 'FLOAT2', 'FLOAT_VECTOR', 'QUATERNION') else 1)


def _per_gaussian_axis(array: np.ndarray, n: int) -> int | None:
    a = np.asarray(array)
    if a.dtype.kind in "USO" or a.ndim == 0:
        return None
    for axis, size in enumerate(a.shape):
        if size == n:
            return axis
    return None


# --- point cloud creation ------------------------------------------------------------------

def _new_pointcloud(name: str, count: int) -> "bpy.types.PointCloud":
    """A PointCloud with ``count`` points (positions zero; the caller writes the attributes).

    Blender 5.3+ resizes a point cloud from Python. Older ones (4.2-5.2) have no such call and
    4.2 cannot convert a mesh to a point cloud, so a temporary Geometry Nodes modifier (a Points
    node with ``count`` points) is applied to an empty point cloud: one path for every version,
    ~5 ms for 65,536 points, no change to the selection or the active object.
    """
    pointcloud = bpy.data.pointclouds.new(name)
    if hasattr(pointcloud, "resize"):
        pointcloud.resize(count)
        return pointcloud
    temp = bpy.data.objects.new(name + ".points", pointcloud)
    group = bpy.data.node_groups.new(name + ".points", 'GeometryNodeTree')
    bpy.context.scene.collection.objects.link(temp)
    try:
        group.interface.new_socket("Geometry", in_out='OUTPUT', socket_type='NodeSocketGeometry')
        points = group.nodes.new("GeometryNodePoints")
        points.inputs["Count"].default_value = count
        group.links.new(points.outputs["Points"], group.nodes.new("NodeGroupOutput").inputs[0])
        modifier = temp.modifiers.new("points", 'NODES')
        modifier.node_group = group
        with bpy.context.temp_override(object=temp, active_object=temp):
            result = bpy.ops.object.modifier_apply(modifier=modifier.name)
        if 'FINISHED' not in result or len(pointcloud.points) != count:
            raise GaussianHeadsError("Blender could not create the avatar's point cloud")
    except BaseException:
        bpy.data.objects.remove(temp)
        bpy.data.pointclouds.remove(pointcloud)
        raise
    finally:
        bpy.data.node_groups.remove(group)
    bpy.data.objects.remove(temp)
    return pointcloud


def _write_attribute(pointcloud, name: str, attr_type: str, values: np.ndarray) -> None:
    existing = pointcloud.attributes.get(name)
    if existing is not None:
        pointcloud.attributes.remove(existing)
    attribute = pointcloud.attributes.new(name, attr_type, 'POINT')
    attribute.data.foreach_set(_FOREACH_KEY[attr_type], np.ascontiguousarray(values).reshape(-1))


def _read_attribute(pointcloud, name: str, attr_type: str, count: int, width: int) -> np.ndarray:
    attribute = pointcloud.attributes.get(name)
    if attribute is None or attribute.data_type != attr_type:
        raise GaussianHeadsError(f"avatar data '{pointcloud.name}' lacks the attribute '{name}' "
                                 "(the .blend was edited or is damaged)")
    dtype = np.int32 if attr_type == 'INT' else np.float32
    out = np.empty(count * width, dtype)
    attribute.data.foreach_get(_FOREACH_KEY[attr_type], out)
    return out.reshape(count, width)


def _display_attributes(pointcloud, identity, n: int) -> None:
    """Neutral-pose positions (Blender frame), radius and colour, for Solid view only."""
    neutral = identity.pose(identity.neutral_params())
    means = neutral.means.astype(np.float64) @ MODEL_TO_BLENDER[:3, :3].T
    pointcloud.attributes["position"].data.foreach_set("vector", means.astype(np.float32).reshape(-1))
    radius = np.clip(np.exp(neutral.log_scales.mean(axis=1)), 2e-4, 4e-3).astype(np.float32)
    _write_attribute(pointcloud, "radius", 'FLOAT', radius)
    rgb = np.clip(sh_dc_to_rgb(neutral.sh[:, 0]), 0.0, 1.0)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    colour = np.concatenate([linear, np.ones((n, 1))], axis=1).astype(np.float32)
    _write_attribute(pointcloud, "Col", 'FLOAT_COLOR', colour)
    if "Col" in pointcloud.color_attributes:
        pointcloud.color_attributes.active = pointcloud.color_attributes["Col"]
    pointcloud.update_tag()  # positions changed: bounds (Frame Selected) and Solid view follow


def write_arrays(pointcloud, arrays: dict, n: int, prefix: str = "") -> dict:
    """Store ``arrays`` on ``pointcloud`` (N points) as attributes named ``gh.<prefix><key>``;
    returns the manifest dict (what ``read_arrays`` needs)."""
    entries = []
    for key in sorted(arrays):
        array = np.asarray(arrays[key])
        axis = _per_gaussian_axis(array, n)
        if axis is None:
            entries.append({"key": key, "store": "inline", **_inline_encode(array)})
            continue
        moved = np.ascontiguousarray(np.moveaxis(array, axis, 0))
        rows = moved.reshape(n, -1)
        width = rows.shape[1]
        encoding, plan = _columns_plan(array.dtype, width)
        if encoding == "float16":
            rows = rows.astype(np.float32)
        elif encoding == "bytes":
            raw = np.ascontiguousarray(rows).view(np.uint8).reshape(n, -1)
            pad = (-raw.shape[1]) % 4
            if pad:
                raw = np.concatenate([raw, np.zeros((n, pad), np.uint8)], axis=1)
            rows = np.ascontiguousarray(raw).view(np.int32).reshape(n, -1)
        attrs, start = [], 0
        for j, (attr_type, cols) in enumerate(plan):
            base = f"{ATTR_PREFIX}{prefix}{key}"
            name = base if len(plan) == 1 else f"{base}.{j}"
            block = rows[:, start:start + cols]
            slot = _slot_width(attr_type, cols)
            if slot > cols:
                block = np.concatenate([block, np.zeros((n, slot - cols), block.dtype)], axis=1)
            _write_attribute(pointcloud, name, attr_type, block)
            attrs.append({"name": name, "type": attr_type, "cols": cols})
            start += cols
        entries.append({"key": key, "store": "points", "dtype": array.dtype.str,
                        "shape": list(array.shape), "axis": axis, "encoding": encoding,
                        "attrs": attrs})
    return {"version": MANIFEST_VERSION, "n": n, "arrays": entries}


def remove_arrays(pointcloud, manifest: dict) -> None:
    """Remove the attributes a manifest lists."""
    for entry in manifest.get("arrays", ()):
        for attr in entry.get("attrs", ()):
            attribute = pointcloud.attributes.get(attr["name"])
            if attribute is not None:
                pointcloud.attributes.remove(attribute)


def read_arrays(pointcloud, manifest: dict) -> dict:
    """Inverse of write_arrays."""
    n = int(manifest["n"])
    if len(pointcloud.points) != n:
        raise GaussianHeadsError(f"avatar data '{pointcloud.name}' has {len(pointcloud.points)} points; "
                                 f"its manifest says {n}")
    out = {}
    for entry in manifest["arrays"]:
        key = entry["key"]
        if entry["store"] == "inline":
            out[key] = _inline_decode(entry)
            continue
        blocks = []
        for attr in entry["attrs"]:
            slot = _slot_width(attr["type"], attr["cols"])
            blocks.append(_read_attribute(pointcloud, attr["name"], attr["type"], n, slot)[:, :attr["cols"]])
        rows = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
        dtype = np.dtype(entry["dtype"])
        shape = list(entry["shape"])
        axis = int(entry["axis"])
        moved_shape = [shape[axis]] + shape[:axis] + shape[axis + 1:]
        if entry["encoding"] == "bytes":
            row_bytes = int(np.prod(moved_shape[1:], dtype=np.int64)) * dtype.itemsize
            raw = np.ascontiguousarray(rows).view(np.uint8).reshape(n, -1)[:, :row_bytes]
            moved = np.ascontiguousarray(raw).view(dtype).reshape(moved_shape)
        else:
            moved = np.ascontiguousarray(rows).astype(dtype, copy=False).reshape(moved_shape)
        out[key] = np.ascontiguousarray(np.moveaxis(moved, 0, axis))
    return out


# --- identities -----------------------------------------------------------------------------

def gaussian_count(identity) -> int:
    n = getattr(identity, "n_gaussians", None)
    if n is None:
        n = len(identity.pose(identity.neutral_params()))
    return int(n)


def store_identity(obj, identity) -> str:
    """Store ``identity`` on the POINTCLOUD object ``obj`` (its data is replaced). Returns the hash."""
    if obj.type != 'POINTCLOUD':
        raise GaussianHeadsError(f"'{obj.name}' is a {obj.type.lower()} object; avatars are point clouds")
    arrays = packed_arrays(identity)
    n = gaussian_count(identity)
    pointcloud = _new_pointcloud(obj.name, n)
    try:
        manifest = write_arrays(pointcloud, arrays, n)
        _display_attributes(pointcloud, identity, n)
        digest = content_hash(arrays)
        manifest["hash"] = digest
        pointcloud.gaussian_heads.manifest = json.dumps(manifest, separators=(",", ":"))
        pointcloud.gaussian_heads.content_hash = digest
    except Exception:
        bpy.data.pointclouds.remove(pointcloud)
        raise
    old = obj.data
    obj.data = pointcloud
    if old is not None and old.users == 0:
        bpy.data.pointclouds.remove(old)
    _remember(digest, identity)
    return digest


def create_avatar_object(name: str, identity, collection) -> "bpy.types.Object":
    """A new POINTCLOUD object holding ``identity``, linked to ``collection``."""
    obj = bpy.data.objects.new(name, bpy.data.pointclouds.new(name))
    try:
        try:
            collection.objects.link(obj)
        except RuntimeError as exc:
            raise GaussianHeadsError(f"cannot add the avatar to collection '{collection.name}': {exc}") from None
        store_identity(obj, identity)
    except Exception:
        remove_avatar_object(obj)
        raise
    return obj


def remove_avatar_object(obj) -> None:
    data = obj.data
    bpy.data.objects.remove(obj)
    if data is not None and data.users == 0 and isinstance(data, bpy.types.PointCloud):
        bpy.data.pointclouds.remove(data)


def stored_hash(obj) -> str:
    data = getattr(obj, "data", None)
    props = getattr(data, "gaussian_heads", None) if data is not None else None
    return props.content_hash if props is not None else ""


def has_identity(obj) -> bool:
    return obj is not None and obj.type == 'POINTCLOUD' and bool(stored_hash(obj))


def _remember(digest: str, identity) -> None:
    _identity_cache[digest] = identity
    _identity_cache.move_to_end(digest)
    while len(_identity_cache) > _CACHE_SIZE:
        _identity_cache.popitem(last=False)


def head_model(spec: str):
    """The head model for ``spec``, loaded once per session."""
    model = _model_cache.get(spec)
    if model is None:
        from ..engine.head_model import load_head_model

        model = load_head_model(spec)
        _model_cache[spec] = model
    return model


def packed_arrays(identity) -> dict:
    """``identity.to_arrays()`` plus what it would otherwise load from files at render time: the
    head model's arrays (``headmodel.*``) unless it is the built-in open model, and a generator's
    deformation branch (``deformation.packed.*``)."""
    from ..engine.avatar.identity import decode_meta

    pack = getattr(getattr(identity, "deformation", None), "pack", None)
    if pack is not None:
        pack()
    arrays = identity.to_arrays()
    spec = str(decode_meta(arrays["meta"]).get("model", "open")) if "meta" in arrays else "open"
    if spec not in ("open", "open_head"):
        from ..engine.head_model.storage import model_to_arrays

        arrays.update({MODEL_PREFIX + k: v for k, v in model_to_arrays(identity.model).items()})
    return arrays


def _packed_model(arrays: dict, spec: str):
    """The HeadModel stored in ``headmodel.*`` arrays, built once per content hash."""
    data = {k[len(MODEL_PREFIX):]: v for k, v in arrays.items() if k.startswith(MODEL_PREFIX)}
    key = "packed:" + content_hash(data)
    model = _model_cache.get(key)
    if model is None:
        from ..engine.head_model.storage import arrays_to_model

        model = arrays_to_model(data, spec)
        _model_cache[key] = model
    return model


def identity_from_arrays(arrays: dict):
    """Rebuild an identity from its arrays (dispatch on the metadata's ``kind``)."""
    from ..engine.avatar.identity import BoundIdentity, decode_meta

    meta = decode_meta(arrays["meta"]) if "meta" in arrays else {}
    kind = meta.get("kind", "bound_identity")
    if kind not in ("bound_identity", "vertex_identity"):
        raise GaussianHeadsError(f"stored avatar is of an unknown kind '{kind}' (update the extension)")
    spec = str(meta.get("model", "open"))
    if any(k.startswith(MODEL_PREFIX) for k in arrays):
        model = _packed_model(arrays, spec)
        arrays = {k: v for k, v in arrays.items() if not k.startswith(MODEL_PREFIX)}
    else:
        model = head_model(spec)
    if kind == "vertex_identity":  # a LAM avatar: Gaussians on the glb's vertices
        from ..engine.avatar.vertex_identity import VertexIdentity

        return VertexIdentity.from_arrays(arrays, model)
    return BoundIdentity.from_arrays(arrays, model)


def read_stored_arrays(obj) -> dict:
    """The identity arrays stored on ``obj`` (exactly what ``packed_arrays`` gave)."""
    if not has_identity(obj):
        raise GaussianHeadsError(f"'{obj.name}' holds no stored Gaussian avatar")
    pointcloud = obj.data
    try:
        manifest = json.loads(pointcloud.gaussian_heads.manifest)
    except ValueError:
        raise GaussianHeadsError(f"avatar data '{pointcloud.name}' has a damaged manifest") from None
    if int(manifest.get("version", 0)) > MANIFEST_VERSION:
        raise GaussianHeadsError(f"avatar '{obj.name}' was saved by a newer Gaussian Heads; update the extension")
    return read_arrays(pointcloud, manifest)


def load_identity(obj):
    """The identity stored on ``obj`` (original or evaluated), cached by content hash."""
    digest = stored_hash(obj)
    cached = _identity_cache.get(digest) if digest else None
    if cached is not None:
        _identity_cache.move_to_end(digest)
        return cached
    source = getattr(obj, "original", None) or obj
    identity = identity_from_arrays(read_stored_arrays(source))
    _remember(digest, identity)
    return identity


# --- bakes ----------------------------------------------------------------------------------------

BAKE_PREFIX = "bake."
_bake_cache: "OrderedDict[str, object]" = OrderedDict()


def has_bake(obj) -> bool:
    data = getattr(obj, "data", None)
    props = getattr(data, "gaussian_heads", None) if data is not None else None
    return props is not None and bool(props.bake_hash)


def store_bake(obj, baked) -> str:
    """Store a BakedIdentity on the avatar's point cloud (beside the identity). Returns its hash."""
    if not has_identity(obj):
        raise GaussianHeadsError(f"'{obj.name}' holds no stored avatar to attach a bake to")
    pointcloud = obj.data
    n = len(pointcloud.points)
    if int(baked.n_gaussians) != n:
        raise GaussianHeadsError(f"the bake has {baked.n_gaussians} Gaussians but '{obj.name}' has {n}")
    arrays = baked.to_arrays()
    digest = content_hash(arrays)
    clear_bake(obj)
    try:
        manifest = write_arrays(pointcloud, arrays, n, prefix=BAKE_PREFIX)
    except Exception:
        remove_arrays(pointcloud, {"arrays": [{"attrs": [{"name": a.name}]} for a in pointcloud.attributes
                                              if a.name.startswith(ATTR_PREFIX + BAKE_PREFIX)]})
        raise
    manifest["hash"] = digest
    pointcloud.gaussian_heads.bake_manifest = json.dumps(manifest, separators=(",", ":"))
    pointcloud.gaussian_heads.bake_hash = digest
    _bake_cache[digest] = baked
    return digest


def clear_bake(obj) -> None:
    """Remove a stored bake (no-op without one)."""
    pointcloud = obj.data
    props = pointcloud.gaussian_heads
    if props.bake_manifest:
        try:
            remove_arrays(pointcloud, json.loads(props.bake_manifest))
        except ValueError:
            pass
    props.bake_manifest = ""
    props.bake_hash = ""


def read_stored_bake_arrays(obj) -> dict:
    pointcloud = obj.data
    try:
        manifest = json.loads(pointcloud.gaussian_heads.bake_manifest)
    except ValueError:
        raise GaussianHeadsError(f"avatar data '{pointcloud.name}' has a damaged bake manifest") from None
    return read_arrays(pointcloud, manifest)


def load_bake(obj, identity=None):
    """The BakedIdentity stored on ``obj``, or None; cached by content hash."""
    if not has_bake(obj):
        return None
    digest = obj.data.gaussian_heads.bake_hash
    cached = _bake_cache.get(digest)
    if cached is not None:
        _bake_cache.move_to_end(digest)
        return cached
    from ..engine.bake.baked import BakedIdentity

    source = getattr(obj, "original", None) or obj
    model = identity.model if identity is not None else None
    baked = BakedIdentity.from_arrays(read_stored_bake_arrays(source), model)
    _bake_cache[digest] = baked
    while len(_bake_cache) > _CACHE_SIZE:
        _bake_cache.popitem(last=False)
    return baked


def clear_cache() -> None:
    _identity_cache.clear()
    _bake_cache.clear()


def register():
    pass


def unregister():
    clear_cache()
