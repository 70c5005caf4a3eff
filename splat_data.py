"""Static Gaussian splat objects inside the .blend: point clouds with Blender 5.3's attribute names.

The one place that reads and writes splat attributes (operators and the render engine use it).
Every Blender version gets the layout Blender 5.3 renders natively, so files and .blend data
move between versions. POINT-domain attributes, N points:

    position        FLOAT_VECTOR  [N, 3] object-space mean
    scale           FLOAT_VECTOR  [N, 3] standard deviations (linear, not log)
    rotation        QUATERNION    [N, 4] unit (w, x, y, z)
    radiance:base   FLOAT4 on 5.3 ([N, 4] f_dc_0..2, sigmoid(opacity)); Blender before 5.3 has no
                    FLOAT4 attribute type, so FLOAT_COLOR holds the same four floats there
    radiance:sh_k   FLOAT_VECTOR  [N, 3], k = 0 .. (d+1)^2 - 2: SH coefficient k + 1 (R, G, B)

plus, for Solid view on every version, ``radius`` (display size) and ``Col`` (base colour).
On 5.3 the point cloud's ``type`` is set to 'GAUSSIAN_SPLAT'. Blender 5.3's own PLY/SPZ
importers make objects with the same names, which this module reads too.

Avatars (``operators/storage.py`` stores their identity) use the same layout for their pose at
the current frame: ``avatar_pose.py`` decides when, ``write_native_frame``/``write_native_sh``
write it (on 5.3, where the avatar is a native splat too; before 5.3 only the display
``position`` follows the pose).

Colour: Blender 5.3 reads ``radiance:base`` as SH DC exactly as 3DGS files and our engine do:
colour = 0.5 + C0·f_dc (plus the higher bands) is a display-referred sRGB value, which Cycles
converts to scene-linear itself. Measured: a splat wall with colour (0.5, 0.2, 0.8) renders in
Cycles (Standard view) as 8-bit (127, 50, 204), and a head-only Cycles render (256², 64
samples) matches our CPU render of the same camera at 40.4 dB PSNR (docs/SCENES.md). So the SH
coefficients are written unchanged: no conversion.
"""

from __future__ import annotations

import bpy
import numpy as np

from .engine.avatar.gaussian_set import GaussianSet, sh_dc_to_rgb
from .engine.errors import GaussianHeadsError

BASE = "radiance:base"
SH_PREFIX = "radiance:sh_"
REQUIRED = ("position", "scale", "rotation", BASE)
_FOUR_FLOAT_TYPES = {'FLOAT4': "vector", 'FLOAT_COLOR': "color", 'QUATERNION': "value"}
_KEY = {'FLOAT_VECTOR': "vector", 'QUATERNION': "value", 'FLOAT': "value", 'FLOAT_COLOR': "color",
        'FLOAT4': "vector"}


def base_attribute_type() -> str:
    """'FLOAT4' where Blender has it (5.3+), else 'FLOAT_COLOR'."""
    items = bpy.types.Attribute.bl_rna.properties["data_type"].enum_items
    return 'FLOAT4' if 'FLOAT4' in items else 'FLOAT_COLOR'


def is_splat_object(obj) -> bool:
    """A point cloud with the splat attributes that is not a Gaussian head avatar."""
    if obj is None or obj.type != 'POINTCLOUD' or obj.data is None:
        return False
    props = getattr(obj, "gaussian_heads", None)
    if props is not None and props.is_avatar:
        return False
    names = obj.data.attributes
    return all(names.get(n) is not None for n in REQUIRED)


def _write(pointcloud, name: str, attr_type: str, values: np.ndarray) -> None:
    existing = pointcloud.attributes.get(name)
    if existing is not None and name != "position":
        pointcloud.attributes.remove(existing)
        existing = None
    attribute = existing or pointcloud.attributes.new(name, attr_type, 'POINT')
    attribute.data.foreach_set(_KEY[attr_type], np.ascontiguousarray(values, np.float32).reshape(-1))


def _read(pointcloud, name: str, width: int, types) -> np.ndarray:
    attribute = pointcloud.attributes.get(name)
    if attribute is None or attribute.data_type not in types or attribute.domain != 'POINT':
        raise GaussianHeadsError(f"splat data '{pointcloud.name}' lacks a point attribute '{name}' "
                                 f"of type {' or '.join(types)}")
    out = np.empty(len(pointcloud.points) * width, np.float32)
    attribute.data.foreach_get(_KEY[attribute.data_type], out)
    return out.reshape(-1, width)


def native_supported() -> bool:
    """Whether this Blender renders Gaussian splat point clouds itself (5.3+)."""
    return "type" in bpy.types.PointCloud.bl_rna.properties and base_attribute_type() == 'FLOAT4'


def _ensure(pointcloud, name: str, attr_type: str):
    """The POINT attribute ``name`` of ``attr_type``, made (or remade) only when needed."""
    attribute = pointcloud.attributes.get(name)
    if attribute is not None and (attribute.data_type != attr_type or attribute.domain != 'POINT'):
        pointcloud.attributes.remove(attribute)
        attribute = None
    return attribute or pointcloud.attributes.new(name, attr_type, 'POINT')


def write_native_frame(pointcloud, frame) -> None:
    """One frame's ``engine.avatar.native_splat.FrameAttributes`` (N = number of points) into
    ``position``, ``scale``, ``rotation`` and ``radiance:base``, in place (5.3+)."""
    for name, attr_type, values in (("position", 'FLOAT_VECTOR', frame.position),
                                    ("scale", 'FLOAT_VECTOR', frame.scale),
                                    ("rotation", 'QUATERNION', frame.rotation),
                                    (BASE, 'FLOAT4', frame.base)):
        _ensure(pointcloud, name, attr_type).data.foreach_set(_KEY[attr_type], values.reshape(-1))


def write_native_sh(pointcloud, bands: np.ndarray) -> None:
    """``radiance:sh_k`` = ``bands[k]`` ([K - 1, N, 3]); other ``radiance:sh_*`` removed; the
    point cloud becomes a native ``GAUSSIAN_SPLAT`` (5.3+)."""
    keep = {f"{SH_PREFIX}{k}" for k in range(len(bands))}
    for name in [a.name for a in pointcloud.attributes if a.name.startswith(SH_PREFIX) and a.name not in keep]:
        pointcloud.attributes.remove(pointcloud.attributes[name])
    for k, band in enumerate(bands):
        _ensure(pointcloud, f"{SH_PREFIX}{k}", 'FLOAT_VECTOR').data.foreach_set("vector", band.reshape(-1))
    if pointcloud.type != 'GAUSSIAN_SPLAT':
        pointcloud.type = 'GAUSSIAN_SPLAT'


def display_attributes(pointcloud, gaussians: GaussianSet) -> None:
    """``radius`` and ``Col`` (linear base colour) so Solid view shows the splats."""
    radius = np.clip(np.exp(gaussians.log_scales.mean(axis=1)), 2e-4, 0.05)
    _write(pointcloud, "radius", 'FLOAT', radius)
    rgb = np.clip(sh_dc_to_rgb(gaussians.sh[:, 0]), 0.0, 1.0)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    _write(pointcloud, "Col", 'FLOAT_COLOR', np.concatenate([linear, np.ones((len(rgb), 1))], 1))
    if "Col" in pointcloud.color_attributes:
        pointcloud.color_attributes.active = pointcloud.color_attributes["Col"]


def write_gaussians(pointcloud, gaussians: GaussianSet) -> None:
    """Store object-space Gaussians (N = number of points) in the 5.3 splat layout."""
    g = gaussians
    if len(pointcloud.points) != len(g):
        raise GaussianHeadsError(f"point cloud '{pointcloud.name}' has {len(pointcloud.points)} points "
                                 f"for {len(g)} Gaussians")
    _write(pointcloud, "position", 'FLOAT_VECTOR', g.means)
    _write(pointcloud, "scale", 'FLOAT_VECTOR', g.scales)
    quats = g.quats / np.linalg.norm(g.quats, axis=1, keepdims=True)
    _write(pointcloud, "rotation", 'QUATERNION', quats)
    base = np.concatenate([g.sh[:, 0], g.opacities[:, None]], 1)
    _write(pointcloud, BASE, base_attribute_type(), base)
    for name in [a.name for a in pointcloud.attributes if a.name.startswith(SH_PREFIX)]:
        pointcloud.attributes.remove(pointcloud.attributes[name])
    for k in range(1, g.sh.shape[1]):
        _write(pointcloud, f"{SH_PREFIX}{k - 1}", 'FLOAT_VECTOR', g.sh[:, k])
    display_attributes(pointcloud, g)
    if hasattr(pointcloud, "type"):   # Blender 5.3+: render natively in Cycles/EEVEE/Workbench
        try:
            pointcloud.type = 'GAUSSIAN_SPLAT'
        except TypeError:
            pass
    pointcloud.update_tag()


def make_native(pointcloud) -> bool:
    """On Blender 5.3+, turn a splat point cloud saved by an older Blender into a native one:
    ``radiance:base`` FLOAT_COLOR -> FLOAT4 and ``type`` 'GAUSSIAN_SPLAT'. Returns whether it
    changed anything (nothing to do before 5.3, or when it is native already)."""
    if not hasattr(pointcloud, "type") or base_attribute_type() != 'FLOAT4':
        return False
    changed = False
    base = pointcloud.attributes.get(BASE)
    if base is not None and base.data_type != 'FLOAT4':
        values = _read(pointcloud, BASE, 4, tuple(_FOUR_FLOAT_TYPES))
        _write(pointcloud, BASE, 'FLOAT4', values)
        changed = True
    if pointcloud.type != 'GAUSSIAN_SPLAT':
        pointcloud.type = 'GAUSSIAN_SPLAT'
        changed = True
    if changed:
        pointcloud.update_tag()
    return changed


def make_all_native() -> int:
    """``make_native`` for every local splat object's point cloud; returns how many changed."""
    clouds = {obj.data for obj in bpy.data.objects if is_splat_object(obj) and obj.data.library is None}
    return sum(make_native(pointcloud) for pointcloud in clouds)


def read_gaussians(pointcloud) -> GaussianSet:
    """Object-space Gaussians from a splat point cloud (original or evaluated)."""
    means = _read(pointcloud, "position", 3, ('FLOAT_VECTOR',))
    scales = _read(pointcloud, "scale", 3, ('FLOAT_VECTOR',)).astype(np.float64)
    quats = _read(pointcloud, "rotation", 4, ('QUATERNION',))
    base = _read(pointcloud, BASE, 4, tuple(_FOUR_FLOAT_TYPES)).astype(np.float64)
    k = 1
    while k < 16 and pointcloud.attributes.get(f"{SH_PREFIX}{k - 1}") is not None:
        k += 1
    degree = int(np.floor(np.sqrt(k))) - 1        # the largest complete band
    sh = np.empty((len(means), (degree + 1) ** 2, 3), np.float32)
    sh[:, 0] = base[:, :3]
    for j in range(1, sh.shape[1]):
        sh[:, j] = _read(pointcloud, f"{SH_PREFIX}{j - 1}", 3, ('FLOAT_VECTOR',))
    alpha = np.clip(base[:, 3], 1e-7, 1 - 1e-7)
    norm = np.linalg.norm(quats, axis=1, keepdims=True)
    quats = np.where(norm > 1e-12, quats / np.maximum(norm, 1e-12), np.array([1, 0, 0, 0], np.float32))
    g = GaussianSet(means, np.log(np.maximum(scales, 1e-30)), quats, np.log(alpha / (1 - alpha)), sh)
    g.validate_finite(f"splat data '{pointcloud.name}'")
    return g


def create_splat_object(name: str, gaussians: GaussianSet, collection):
    """A new splat object holding ``gaussians`` (object space), linked to ``collection``."""
    from .operators.attribute_columns import id_name, new_pointcloud

    name = id_name(name)
    pointcloud = new_pointcloud(name, len(gaussians))
    try:
        write_gaussians(pointcloud, gaussians)
        obj = bpy.data.objects.new(name, pointcloud)
    except Exception:
        bpy.data.pointclouds.remove(pointcloud)
        raise
    try:
        collection.objects.link(obj)
    except RuntimeError as exc:
        bpy.data.objects.remove(obj)
        bpy.data.pointclouds.remove(pointcloud)
        raise GaussianHeadsError(f"cannot add '{name}' to collection '{collection.name}': {exc}") from None
    return obj


def remove_splat_object(obj) -> None:
    data = obj.data
    bpy.data.objects.remove(obj)
    if data is not None and data.users == 0:
        bpy.data.pointclouds.remove(data)


def splat_instances(depsgraph) -> list:
    """SplatInstance for every visible static splat object of the evaluated depsgraph."""
    from .engine.scene_render import SplatInstance

    found = []
    for instance in depsgraph.object_instances:
        obj = instance.object
        if not is_splat_object(obj) or not len(obj.data.points):
            continue
        found.append(SplatInstance(obj.name, read_gaussians(obj.data),
                                   np.array(instance.matrix_world, np.float64)))
    return found
