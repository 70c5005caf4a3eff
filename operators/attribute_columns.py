"""Any named arrays as attributes of a point cloud, bit-exact, described by a JSON manifest (the
column codec under ``operators.storage``, which keeps avatars and bakes this way).

* per-Gaussian arrays (any array with an axis of length N; that axis is moved first) become
  named POINT attributes ``gh.<key>`` (or ``gh.<key>.<j>`` when split): float32 columns packed as
  FLOAT / FLOAT2 / FLOAT_VECTOR / QUATERNION / FLOAT4X4 (up to 16 per attribute), int32 columns
  as INT, anything else bit-cast to int32 columns.
* other arrays live inline in the manifest (base64 of the raw little-endian bytes, or the strings
  of a unicode array).

``new_pointcloud`` makes the point cloud on every supported Blender (4.2 has no ``resize``).
"""

from __future__ import annotations

import base64
import hashlib
import re

import bpy
import numpy as np

from ..engine.errors import GaussianHeadsError

MANIFEST_VERSION = 1
ATTR_PREFIX = "gh."
_CHUNK = 16
# columns per attribute -> (attribute type, foreach key, stored width)
_FLOAT_TYPES = {1: ('FLOAT', "value", 1), 2: ('FLOAT2', "vector", 2), 3: ('FLOAT_VECTOR', "vector", 3),
                4: ('QUATERNION', "value", 4)}
_FOREACH_KEY = {'FLOAT': "value", 'FLOAT2': "vector", 'FLOAT_VECTOR': "vector",
                'QUATERNION': "value", 'FLOAT4X4': "value", 'INT': "value", 'FLOAT_COLOR': "color"}


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


# --- point cloud attributes -----------------------------------------------------------------

_ODD_NUMBER_SUFFIX = re.compile(r"\.(\d{1,2}|\d{4,})$")


def id_name(name: str) -> str:
    """``name`` safe for a new data-block: a trailing ``.<number>`` that is not Blender's own
    three-digit suffix ('GaussianHead.3', 'scan.12') becomes ``_<number>``. Blender 4.2's name map
    counts 'X.3' as number 3 of 'X' yet never frees it as such, so after such objects are deleted
    a later one can get a name that is already taken and saving refuses the file ("Critical data
    corruption: ... data-blocks names"); reproduced with bpy 4.2.23."""
    return _ODD_NUMBER_SUFFIX.sub(r"_\1", name)


def new_pointcloud(name: str, count: int) -> "bpy.types.PointCloud":
    """A PointCloud with ``count`` points (positions zero; the caller writes the attributes).

    Blender 5.3+ resizes a point cloud from Python. Older ones (4.2-5.2) have no such call and
    4.2 cannot convert a mesh to a point cloud, so a temporary Geometry Nodes modifier (a Points
    node with ``count`` points) is applied to an empty point cloud: one path for every version,
    ~5 ms for 65,536 points, no change to the selection or the active object.
    """
    name = id_name(name)
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
    # Blender 4.2's name map can lose track of an ID whose data a modifier apply replaced, and a
    # later save then refuses the file ("Critical data corruption: ... data-blocks names"); a
    # rename through RNA re-registers the name.
    pointcloud.name = name
    return pointcloud


def write_attribute(pointcloud, name: str, attr_type: str, values: np.ndarray) -> None:
    existing = pointcloud.attributes.get(name)
    if existing is not None:
        pointcloud.attributes.remove(existing)
    attribute = pointcloud.attributes.new(name, attr_type, 'POINT')
    attribute.data.foreach_set(_FOREACH_KEY[attr_type], np.ascontiguousarray(values).reshape(-1))


def read_attribute(pointcloud, name: str, attr_type: str, count: int, width: int) -> np.ndarray:
    attribute = pointcloud.attributes.get(name)
    if attribute is None or attribute.data_type != attr_type:
        raise GaussianHeadsError(f"avatar data '{pointcloud.name}' lacks the attribute '{name}' "
                                 "(the .blend was edited or is damaged)")
    dtype = np.int32 if attr_type == 'INT' else np.float32
    out = np.empty(count * width, dtype)
    attribute.data.foreach_get(_FOREACH_KEY[attr_type], out)
    return out.reshape(count, width)


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
            write_attribute(pointcloud, name, attr_type, block)
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
            blocks.append(read_attribute(pointcloud, attr["name"], attr["type"], n, slot)[:, :attr["cols"]])
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
