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

Avatars (``operators/storage.py`` stores their identity) get their display ``position`` posed at
the current frame by ``pose_displays_on_frame_change`` (a ``frame_change_post`` handler).
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
    from .operators.storage import _new_pointcloud

    pointcloud = _new_pointcloud(name, len(gaussians))
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


# --- avatars in Solid view / Material Preview: display points posed at the current frame ----------

def pose_avatar_display(obj, depsgraph) -> bool:
    """Rewrite avatar ``obj``'s display ``position`` attribute with its pose at the depsgraph's
    frame (what Solid view and Material Preview draw; the bounds follow). The identity, which our
    renderer poses, is untouched. Returns whether it wrote."""
    from .engine.avatar.frames import MODEL_TO_BLENDER
    from .operators import storage
    from .render_engine import avatar_identity, head_params

    pointcloud = obj.data
    if not storage.has_identity(obj) or pointcloud.library is not None:
        return False
    evaluated = obj.evaluated_get(depsgraph)
    identity = avatar_identity(evaluated)
    posed = identity.pose(head_params(evaluated, identity))
    if len(posed) != len(pointcloud.points):
        return False
    means = posed.means.astype(np.float64) @ MODEL_TO_BLENDER[:3, :3].T + MODEL_TO_BLENDER[:3, 3]
    pointcloud.attributes["position"].data.foreach_set("vector", means.astype(np.float32).reshape(-1))
    pointcloud.update_tag()
    return True


_rendering = False   # set between render_init and render_complete/render_cancel
#: pose displays in background mode too (no viewport there: off, so scripts and render farms
#: pay nothing; tests switch it on)
POSE_IN_BACKGROUND = False


@bpy.app.handlers.persistent
def _render_started(*_args):
    global _rendering
    _rendering = True


@bpy.app.handlers.persistent
def _render_ended(*_args):
    global _rendering
    _rendering = False


#: (handler list name, function) pairs that ``operators/splat_io.py`` registers
HANDLERS = (("render_init", _render_started), ("render_complete", _render_ended),
            ("render_cancel", _render_ended))


@bpy.app.handlers.persistent
def pose_displays_on_frame_change(scene, depsgraph=None):
    """``frame_change_post``: every visible avatar's display follows the frame (timeline, playback,
    keyframed sliders). Skipped while rendering (data must not change under a render, which
    otherwise drew nothing; renderers pose from the identity anyway) and in background mode."""
    if _rendering or bpy.app.is_job_running('RENDER') or (bpy.app.background and not POSE_IN_BACKGROUND):
        return
    if depsgraph is None:
        depsgraph = bpy.context.evaluated_depsgraph_get()
    for obj in scene.objects:
        if obj.type != 'POINTCLOUD' or not obj.gaussian_heads.is_avatar or not obj.visible_get():
            continue
        try:
            pose_avatar_display(obj, depsgraph)
        except GaussianHeadsError:
            pass  # the viewport and F12 report the problem; the display keeps its last pose


HANDLERS += (("frame_change_post", pose_displays_on_frame_change),)
