"""PropertyGroups: object.gaussian_heads, scene.gaussian_heads and pointcloud.gaussian_heads.

One PropertyGroup per ID type (hydra_storm's layout):

* ``Object.gaussian_heads`` (:class:`GaussianHeadsObjectProperties`): what makes an object an
  avatar, how it was sampled, and the animatable head parameters. The data paths are a contract
  (docs/DEVELOPING.md): ``gaussian_heads.expr[i].value``, ``.jaw``, ``.neck``, ``.head_rot``,
  ``.eyes``, ``.translation``, ``.shape``. All of them are ordinary animatable RNA properties, so
  the I key, the Graph Editor and imported F-curves work on them.
* ``Scene.gaussian_heads`` (:class:`GaussianHeadsSceneProperties`): render settings of the
  Gaussian Heads engine and the sampling panel's inputs (seed, truncation, gallery).
* ``PointCloud.gaussian_heads`` (:class:`GaussianHeadsPointCloudProperties`): the manifest of the
  identity arrays stored as point attributes (written by ``operators.storage``).

The add-on preferences live in ``preferences.py``.
"""

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty,
                       FloatVectorProperty, IntProperty, PointerProperty, StringProperty)

from .engine.avatar.sources import enum_items as _source_enum_items

#: Identity sources (engine/avatar/sources: one registry); .blend files store their numbers.
SOURCE_ITEMS = _source_enum_items()

#: Length of ``object.gaussian_heads.shape``: identity coefficients beyond it stay at 0.
MAX_SHAPE = 32


def _tag_avatar_changed(self, context):
    """Update callback of every head parameter: re-evaluate the object and redraw 3D views.

    The render engine's ``view_update`` runs on the depsgraph update, and the next F12 render
    reads the new value from the evaluated object.
    """
    owner = self.id_data
    if owner is not None:
        owner.update_tag()
    screen = getattr(context, "screen", None) if context is not None else None
    if screen is not None:
        for area in screen.areas:
            if area.type == 'VIEW_3D':
                area.tag_redraw()


def _tag_scene_changed(self, context):
    _tag_avatar_changed(self, context)


#: Soft range of every expression slider: the union of the ``expr_range`` of the head models of
#: the avatars in the file (the open model's ARKit channels: 0..1). RNA has one soft range per
#: property, not per collection item, so it is widened (never narrowed) as models appear.
_expr_soft_range = [0.0, 1.0]
EXPR_HARD_LIMIT = 10.0


def _expr_value_property(soft_min: float, soft_max: float):
    return FloatProperty(
        name="Value", description="Expression channel weight (keyframeable)",
        default=0.0, min=-EXPR_HARD_LIMIT, max=EXPR_HARD_LIMIT, soft_min=soft_min, soft_max=soft_max,
        step=1, precision=3, options={'ANIMATABLE', 'LIBRARY_EDITABLE'}, update=_tag_avatar_changed)


class GaussianHeadsExprChannel(bpy.types.PropertyGroup):
    """One expression channel: ``name`` is the head model's channel name, ``value`` its weight.

    The model's own range of the channel is kept in ``range_min``/``range_max``; the slider's
    soft range is the union over the file's models (see ``widen_expression_range``).
    """

    # ``name`` is inherited from PropertyGroup (and is what UIList filter_name matches).
    value: _expr_value_property(0.0, 1.0)
    range_min: FloatProperty(name="Range Min", default=0.0, options=set())
    range_max: FloatProperty(name="Range Max", default=1.0, options=set())
    group: StringProperty(
        name="Group", description="UI group: eyes, brows, mouth, jaw, cheeks, nose or other",
        default="other", options=set())


def widen_expression_range(low: float, high: float) -> bool:
    """Make the expression sliders' soft range cover [low, high] (re-defines the RNA property;
    stored values and F-curves are untouched). Returns True when it changed."""
    lo = max(-EXPR_HARD_LIMIT, min(_expr_soft_range[0], float(low)))
    hi = min(EXPR_HARD_LIMIT, max(_expr_soft_range[1], float(high)))
    if (lo, hi) == tuple(_expr_soft_range):
        return False
    _expr_soft_range[:] = [lo, hi]
    GaussianHeadsExprChannel.value = _expr_value_property(lo, hi)
    return True


def expression_soft_range() -> tuple[float, float]:
    return tuple(_expr_soft_range)


@bpy.app.handlers.persistent
def _fit_ranges_after_load(*_args):
    """After a file loads: cover the channel ranges of its avatars."""
    for obj in bpy.data.objects:
        props = getattr(obj, "gaussian_heads", None)
        if props is not None and props.is_avatar and len(props.expr):
            widen_expression_range(min(c.range_min for c in props.expr), max(c.range_max for c in props.expr))


class GaussianHeadsObjectProperties(bpy.types.PropertyGroup):
    is_avatar: BoolProperty(
        name="Gaussian Avatar", description="This object is a Gaussian head avatar",
        default=False, options=set())
    source: EnumProperty(
        name="Source", description="Where the identity came from",
        items=SOURCE_ITEMS, default='BUILTIN', options=set())
    checkpoint_path: StringProperty(
        name="Checkpoint", description="Generator checkpoint the identity was sampled from",
        subtype='FILE_PATH', options=set())
    seed: IntProperty(name="Seed", description="Seed the identity was sampled with",
                      default=0, min=0, options=set())
    truncation: FloatProperty(
        name="Truncation", description="Truncation the identity was sampled with",
        default=0.7, min=0.0, max=2.0, options=set())
    model_spec: StringProperty(
        name="Head Model", description='"open" (the built-in open head model) or a FLAME file path',
        default="open", options=set())

    expr: CollectionProperty(type=GaussianHeadsExprChannel, name="Expression",
                             description="Expression channels, named as the head model names them")
    expr_index: IntProperty(name="Active Channel", default=0, min=0, options=set())

    jaw: FloatVectorProperty(
        name="Jaw", description="Jaw axis-angle in the model frame (X opens the mouth)",
        size=3, subtype='XYZ', unit='ROTATION', default=(0.0, 0.0, 0.0),
        soft_min=-0.6, soft_max=0.6, update=_tag_avatar_changed)
    neck: FloatVectorProperty(
        name="Neck", description="Neck axis-angle in the model frame",
        size=3, subtype='XYZ', unit='ROTATION', default=(0.0, 0.0, 0.0),
        soft_min=-1.2, soft_max=1.2, update=_tag_avatar_changed)
    head_rot: FloatVectorProperty(
        name="Head Rotation", description="Global (head) axis-angle in the model frame",
        size=3, subtype='XYZ', unit='ROTATION', default=(0.0, 0.0, 0.0),
        soft_min=-3.1416, soft_max=3.1416, update=_tag_avatar_changed)
    eyes: FloatVectorProperty(
        name="Eyes", description="Eye gaze axis-angles: left eye [0:3], right eye [3:6]",
        size=6, subtype='NONE', unit='ROTATION', default=(0.0,) * 6,
        soft_min=-0.8, soft_max=0.8, update=_tag_avatar_changed)
    translation: FloatVectorProperty(
        name="Translation", description="Model-space translation of the head",
        size=3, subtype='TRANSLATION', unit='LENGTH', default=(0.0, 0.0, 0.0),
        update=_tag_avatar_changed)
    shape: FloatVectorProperty(
        name="Shape", description="Identity coefficients (β) of the head model",
        size=MAX_SHAPE, default=(0.0,) * MAX_SHAPE, soft_min=-3.0, soft_max=3.0,
        update=_tag_avatar_changed)
    shape_count: IntProperty(
        name="Shape Components", description="How many of the shape coefficients are used",
        default=0, min=0, max=MAX_SHAPE, options=set())

    show_baked: BoolProperty(
        name="Render Baked", description="Render the baked blendshapes instead of the full model",
        default=False, options=set(), update=_tag_avatar_changed)
    bake_status: StringProperty(name="Bake Status", description="Summary of the stored bake",
                                default="", options=set())
    bake_samples: IntProperty(name="Samples", description="Poses sampled for the bake",
                              default=2000, min=16, soft_max=20000, options=set())
    bake_components: IntProperty(name="Components", description="Blendshapes kept (k)",
                                 default=32, min=1, max=512, options=set())
    bake_seed: IntProperty(name="Seed", default=0, min=0, options=set())


class GaussianHeadsPointCloudProperties(bpy.types.PropertyGroup):
    """Manifest of the identity stored on a point cloud (see ``operators/storage.py``)."""

    manifest: StringProperty(name="Manifest", default="", options=set())
    content_hash: StringProperty(name="Content Hash", default="", options=set())
    bake_manifest: StringProperty(name="Bake Manifest", default="", options=set())
    bake_hash: StringProperty(name="Bake Hash", default="", options=set())


_gallery_provider = []  # the gallery's items function, handed over by operators.preview
_NO_GALLERY = [('NONE', "No thumbnails", "Build the gallery first", 'IMAGE_DATA', 0)]


def set_gallery_items(provider) -> None:
    """``operators.preview`` registers the gallery's enum items here (properties never import
    operators: DESIGN.md's floors); None when it unregisters."""
    _gallery_provider[:] = [] if provider is None else [provider]


def _gallery_items(self, context):
    return _gallery_provider[0](self, context) if _gallery_provider else _NO_GALLERY


def _gallery_pick(self, context):
    try:
        self.sample_seed = int(self.gallery)
    except (TypeError, ValueError):
        pass


#: Render backends; the numbers are what .blend files store (kept from the static enum's order).
_BACKEND_ITEMS = (
    ('AUTO', "Auto", "gsplat when CUDA is available, otherwise the CPU rasterizer", 0),
    ('CPU', "CPU", "Tile rasterizer compiled with numba", 1),
    ('GSPLAT', "gsplat", "CUDA rasterizer (needs an NVIDIA GPU)", 2),
    ('REFERENCE', "Reference", "Pure PyTorch reference (slow, exact)", 3),
)
_BACKEND_LISTS: dict = {}   # Blender needs the returned items kept alive


def _backend_items(self, context):
    """The backends offered: Reference only when PyTorch can be imported."""
    from .engine.raster import offered_backends

    offered = tuple(offered_backends())
    if offered not in _BACKEND_LISTS:
        _BACKEND_LISTS[offered] = [i for i in _BACKEND_ITEMS if i[0] == 'AUTO' or i[0].lower() in offered]
    return _BACKEND_LISTS[offered]


class GaussianHeadsSceneProperties(bpy.types.PropertyGroup):
    backend: EnumProperty(
        name="Backend", description="Rasterizer used by the Gaussian Heads engine",
        items=_backend_items, default=0, update=_tag_scene_changed)
    mode: EnumProperty(
        name="Mode", description="Rasterization mode",
        items=(('ANTIALIASED', "Anti-aliased", "Mip-splatting style 2D filter with opacity compensation"),
               ('CLASSIC', "Classic", "Original 3DGS dilation")),
        default='ANTIALIASED', update=_tag_scene_changed)
    sh_degree: IntProperty(
        name="SH Degree", description="Spherical-harmonic degree used for colour",
        default=3, min=0, max=3, update=_tag_scene_changed)
    viewport_scale: FloatProperty(
        name="Viewport Scale",
        description="Resolution factor of the interactive viewport while navigating "
                    "(it refines to full resolution when idle)",
        default=0.5, min=0.1, max=1.0, subtype='FACTOR', update=_tag_scene_changed)
    auto_standard_view: BoolProperty(
        name="Set Standard View",
        description="When the scene switches to Gaussian Heads or gets an avatar, set its view "
                    "transform to 'Standard' (AgX and Filmic wash out the avatars' sRGB colours)",
        default=True, options=set())

    sample_source: EnumProperty(
        name="Source", description="Identity source for Sample Identity",
        items=SOURCE_ITEMS, default='BUILTIN')
    sample_checkpoint: StringProperty(name="Checkpoint", subtype='FILE_PATH',
                                      description="Generator checkpoint for Sample Identity")
    sample_seed: IntProperty(name="Seed", default=7, min=0, description="Seed for Sample Identity")
    sample_truncation: FloatProperty(
        name="Truncation", description="Lower is closer to the average head",
        default=0.7, min=0.0, max=2.0, soft_max=1.0)
    sample_gaussians: IntProperty(
        name="Gaussians", description="Number of Gaussians of a built-in identity",
        default=65_536, min=1000, soft_max=200_000, max=2_000_000)
    sample_shape: FloatVectorProperty(
        name="Shape", description="Identity coefficients to start from (zero: sampled)",
        size=8, default=(0.0,) * 8, soft_min=-3.0, soft_max=3.0)
    gallery_first_seed: IntProperty(name="First Seed", default=0, min=0,
                                    description="First seed shown in the gallery")
    gallery_count: IntProperty(name="Thumbnails", default=8, min=1, max=64,
                               description="How many seeds the gallery shows")
    gallery: EnumProperty(name="Gallery", description="Pick a seed by its thumbnail",
                          items=_gallery_items, update=_gallery_pick)


classes = (
    GaussianHeadsExprChannel,
    GaussianHeadsObjectProperties,
    GaussianHeadsPointCloudProperties,
    GaussianHeadsSceneProperties,
)

_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()
    bpy.app.handlers.load_post.append(_fit_ranges_after_load)
    bpy.types.Object.gaussian_heads = PointerProperty(type=GaussianHeadsObjectProperties)
    bpy.types.Scene.gaussian_heads = PointerProperty(type=GaussianHeadsSceneProperties)
    bpy.types.PointCloud.gaussian_heads = PointerProperty(type=GaussianHeadsPointCloudProperties)


def unregister():
    if _fit_ranges_after_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_fit_ranges_after_load)
    del bpy.types.PointCloud.gaussian_heads
    del bpy.types.Scene.gaussian_heads
    del bpy.types.Object.gaussian_heads
    _unregister_classes()
