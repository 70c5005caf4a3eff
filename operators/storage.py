"""Avatars inside the .blend: the identity's arrays as attributes of a point cloud object.

An avatar object is a POINTCLOUD object, so Solid view shows one point per Gaussian (at its
neutral-pose position, sized by its scale, coloured by its base colour in "Attribute" colour
mode). The identity's arrays are stored bit-exact by ``operators.attribute_columns`` (per-Gaussian
arrays as ``gh.<key>`` POINT attributes; identity β, metadata JSON and small deformation tensors
inline), described by its JSON manifest in ``pointcloud.gaussian_heads.manifest``; a bake's arrays
the same way under ``gh.bake.`` with ``bake_manifest``.

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

import json
from collections import OrderedDict

import bpy
import numpy as np

from ..engine.avatar.frames import MODEL_TO_BLENDER
from ..engine.avatar.gaussian_set import sh_dc_to_rgb
from ..engine.errors import GaussianHeadsError
from .attribute_columns import (ATTR_PREFIX, id_name, MANIFEST_VERSION, content_hash, new_pointcloud, read_arrays,  # noqa: F401
                                remove_arrays, write_arrays, write_attribute)

_CACHE_SIZE = 8
_identity_cache: "OrderedDict[str, object]" = OrderedDict()
_model_cache: dict[str, object] = {}  # spec, or "packed:<hash>" -> HeadModel
MODEL_PREFIX = "headmodel."


# --- display ---------------------------------------------------------------------------------

def _display_attributes(pointcloud, identity, n: int) -> None:
    """Neutral-pose positions (Blender frame), radius and colour, for Solid view only."""
    neutral = identity.pose(identity.neutral_params())
    means = neutral.means.astype(np.float64) @ MODEL_TO_BLENDER[:3, :3].T
    pointcloud.attributes["position"].data.foreach_set("vector", means.astype(np.float32).reshape(-1))
    radius = np.clip(np.exp(neutral.log_scales.mean(axis=1)), 2e-4, 4e-3).astype(np.float32)
    write_attribute(pointcloud, "radius", 'FLOAT', radius)
    rgb = np.clip(sh_dc_to_rgb(neutral.sh[:, 0]), 0.0, 1.0)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    colour = np.concatenate([linear, np.ones((n, 1))], axis=1).astype(np.float32)
    write_attribute(pointcloud, "Col", 'FLOAT_COLOR', colour)
    if "Col" in pointcloud.color_attributes:
        pointcloud.color_attributes.active = pointcloud.color_attributes["Col"]
    pointcloud.update_tag()  # positions changed: bounds (Frame Selected) and Solid view follow


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
    pointcloud = new_pointcloud(obj.name, n)
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
    name = id_name(name)
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
