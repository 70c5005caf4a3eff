"""Sample Identity, Reset / Mirror Expression and Export PLY.

Thin operators: properties -> a frozen settings dataclass -> ``engine`` -> Blender data. A
``GaussianHeadsError`` becomes an ERROR report and CANCELLED, with nothing added to the scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, FloatVectorProperty, IntProperty, StringProperty

from ..engine.avatar import sources
from ..engine.errors import GaussianHeadsError
from ..engine.scene_render import channel_group, mirrored_values
from ..properties import MAX_SHAPE, widen_expression_range
from . import storage
from .context import poll_active_avatar, poll_avatar_with_identity, poll_object_mode, select_only

SOURCE_ITEMS = sources.enum_items()
UI_SHAPE = 8  # shape sliders offered by the operator (the rest are sampled)


DEFAULT_GAUSSIANS = 65_536


@dataclass(frozen=True)
class SampleSettings:
    source: str = "builtin"                 # a kind of engine.avatar.sources: "builtin" | "checkpoint" | …
    checkpoint: str = ""                    # the source's input path (checkpoint, GaussianAvatars folder, …)
    seed: int = 0
    truncation: float = 0.7
    shape: tuple[float, ...] | None = None  # leading identity coefficients; None: sampled
    n_gaussians: int = DEFAULT_GAUSSIANS    # built-in source only
    model_spec: str = "open"                # built-in: open or FLAME; gaussian_avatars: the FLAME file

    def spec(self) -> sources.SourceSpec:
        """The engine's source spec (only the built-in source takes a Gaussian count; the built-in
        source and GaussianAvatars take a model: the open model or a FLAME file)."""
        if self.source == "builtin":
            return sources.SourceSpec("builtin", "", self.n_gaussians, self.model_spec)
        if self.source == "gaussian_avatars":
            return sources.SourceSpec(self.source, self.checkpoint, model_spec=self.model_spec)
        return sources.SourceSpec(self.source, self.checkpoint)


def source_model_spec(source: str, context=None) -> str:
    """The model a source kind is opened with: the preferences' FLAME model for GaussianAvatars."""
    if source.lower() != "gaussian_avatars":
        return "open"
    from ..preferences import flame_model_path

    return flame_model_path(context)


def sample_identity(settings: SampleSettings):
    """Sample an identity (the engine's source registry does the work)."""
    return sources.sample_identity(settings.spec(), settings.seed, shape=settings.shape,
                                   truncation=settings.truncation)


def fill_avatar_properties(obj, identity, settings: SampleSettings, model_spec: str = "open") -> None:
    """Mark ``obj`` as an avatar and fill its channels and pose from ``identity``'s model."""
    props = obj.gaussian_heads
    model = identity.model
    props.is_avatar = True
    props.source = settings.source.upper()
    props.checkpoint_path = settings.checkpoint
    props.seed = settings.seed
    props.truncation = settings.truncation
    props.model_spec = str(getattr(identity, "meta", {}).get("model", model_spec))
    props.expr.clear()
    ranges = model.expr_range
    for i, name in enumerate(model.expr_names):
        channel = props.expr.add()
        channel.name = name
        channel.group = channel_group(name)
        if ranges is not None:
            channel.range_min, channel.range_max = (float(v) for v in ranges[i])
        else:
            channel.range_min, channel.range_max = -1.0, 1.0
    props.expr_index = 0
    if len(props.expr):
        widen_expression_range(min(c.range_min for c in props.expr), max(c.range_max for c in props.expr))
    shape = np.zeros(MAX_SHAPE, np.float32)
    used = min(MAX_SHAPE, int(np.asarray(identity.shape).shape[0]))
    shape[:used] = np.asarray(identity.shape, np.float32)[:used]
    props.shape = shape.tolist()
    props.shape_count = used
    for name in ("jaw", "neck", "head_rot", "translation"):
        setattr(props, name, (0.0, 0.0, 0.0))
    props.eyes = (0.0,) * 6


def add_avatar(name: str, identity, settings: SampleSettings, collection):
    """A new avatar object in ``collection`` holding ``identity``, its properties filled from
    ``settings``; on ``GaussianHeadsError`` nothing is left in the scene and the error is raised."""
    obj = storage.create_avatar_object(name, identity, collection)
    try:
        fill_avatar_properties(obj, identity, settings)
    except GaussianHeadsError:
        storage.remove_avatar_object(obj)
        raise
    return obj


class GAUSSIAN_HEADS_OT_sample_identity(bpy.types.Operator):
    """Sample a new Gaussian head avatar and add it to the active collection"""

    bl_idname = "gaussian_heads.sample_identity"
    bl_label = "Sample Identity"
    bl_options = {'REGISTER', 'UNDO'}

    source: EnumProperty(name="Source", items=SOURCE_ITEMS, default='BUILTIN')
    checkpoint: StringProperty(name="Checkpoint", subtype='FILE_PATH')
    seed: IntProperty(name="Seed", default=7, min=0)
    truncation: FloatProperty(name="Truncation", default=0.7, min=0.0, max=2.0, soft_max=1.0)
    n_gaussians: IntProperty(name="Gaussians", description="Number of Gaussians (built-in source)",
                             default=DEFAULT_GAUSSIANS, min=1000, soft_max=200_000, max=2_000_000)
    shape: FloatVectorProperty(name="Shape", size=UI_SHAPE, default=(0.0,) * UI_SHAPE,
                               soft_min=-3.0, soft_max=3.0,
                               description="Leading identity coefficients (all zero: sampled)")

    @classmethod
    def poll(cls, context):
        return poll_object_mode(cls, context)

    def settings(self) -> SampleSettings:
        shape = tuple(float(v) for v in self.shape)
        return SampleSettings(source=self.source.lower(), checkpoint=bpy.path.abspath(self.checkpoint),
                              seed=int(self.seed), truncation=float(self.truncation),
                              shape=shape if any(shape) else None, n_gaussians=int(self.n_gaussians),
                              model_spec=source_model_spec(self.source))

    def execute(self, context):
        settings = self.settings()
        try:
            identity = sample_identity(settings)
            obj = add_avatar(f"GaussianHead_{settings.seed}", identity, settings, context.collection)
        except GaussianHeadsError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        select_only(context, [obj])
        self.report({'INFO'}, f"Sampled '{obj.name}': {storage.gaussian_count(identity):,} Gaussians")
        from .color_management import after_avatar_added  # 'Standard' view for avatar colours
        after_avatar_added(self, context.scene)
        return {'FINISHED'}


class GAUSSIAN_HEADS_OT_reset_expression(bpy.types.Operator):
    """Set the active avatar's expression channels (and optionally its pose) back to neutral"""

    bl_idname = "gaussian_heads.reset_expression"
    bl_label = "Reset Expression"
    bl_options = {'REGISTER', 'UNDO'}

    include_pose: BoolProperty(name="Include Pose", default=False,
                               description="Also reset jaw, neck, head rotation, eyes and translation")

    @classmethod
    def poll(cls, context):
        return poll_active_avatar(cls, context) is not None

    def execute(self, context):
        props = context.active_object.gaussian_heads
        if len(props.expr):
            props.expr.foreach_set("value", np.zeros(len(props.expr), np.float32))
        if self.include_pose:
            for name in ("jaw", "neck", "head_rot", "translation"):
                setattr(props, name, (0.0, 0.0, 0.0))
            props.eyes = (0.0,) * 6
        context.active_object.update_tag()
        return {'FINISHED'}


class GAUSSIAN_HEADS_OT_mirror_expression(bpy.types.Operator):
    """Swap the values of the Left and Right expression channels (by name)"""

    bl_idname = "gaussian_heads.mirror_expression"
    bl_label = "Mirror Expression"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        obj = poll_active_avatar(cls, context)
        if obj is None:
            return False
        if not len(obj.gaussian_heads.expr):
            cls.poll_message_set("The avatar has no expression channels")
            return False
        return True

    def execute(self, context):
        props = context.active_object.gaussian_heads
        names = [c.name for c in props.expr]
        values = np.zeros(len(names), np.float32)
        props.expr.foreach_get("value", values)
        props.expr.foreach_set("value", mirrored_values(names, values))
        context.active_object.update_tag()
        return {'FINISHED'}


class GAUSSIAN_HEADS_OT_export_ply(bpy.types.Operator):
    """Write the active avatar, posed at the current frame, as a 3D Gaussian Splatting PLY"""

    bl_idname = "gaussian_heads.export_ply"
    bl_label = "Export Gaussian PLY"
    bl_options = {'REGISTER'}

    filepath: StringProperty(subtype='FILE_PATH')
    filter_glob: StringProperty(default="*.ply", options={'HIDDEN'})
    space: EnumProperty(
        name="Space",
        items=(('MODEL', "Head Model", "The head model's frame (+Y up, the face looks down +Z)"),
               ('WORLD', "Blender World", "Blender world space (Z up), with the object transform")),
        default='MODEL')

    @classmethod
    def poll(cls, context):
        return poll_avatar_with_identity(cls, context) is not None

    def invoke(self, context, event):
        if not self.filepath:
            self.filepath = bpy.path.ensure_ext(context.active_object.name, ".ply")
        context.window_manager.fileselect_add(self)
        return {'RUNNING_MODAL'}

    def execute(self, context):
        from ..engine.avatar.frames import MODEL_TO_BLENDER
        from ..engine.io.ply import write_ply
        from ..render_engine import head_params

        if not self.filepath:
            self.report({'ERROR'}, "Choose a file to write")
            return {'CANCELLED'}
        path = bpy.path.ensure_ext(bpy.path.abspath(self.filepath), ".ply")
        depsgraph = context.evaluated_depsgraph_get()
        obj = context.active_object.evaluated_get(depsgraph)
        try:
            identity = storage.load_identity(obj)
            gaussians = identity.pose(head_params(obj, identity))
            if self.space == 'WORLD':
                gaussians = gaussians.transformed(np.array(obj.matrix_world, np.float64) @ MODEL_TO_BLENDER)
            write_ply(path, gaussians, comments=(f"Gaussian Heads avatar {obj.name}",))
        except (GaussianHeadsError, OSError) as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        self.report({'INFO'}, f"Wrote {len(gaussians):,} Gaussians to {path}")
        return {'FINISHED'}


classes = (GAUSSIAN_HEADS_OT_sample_identity, GAUSSIAN_HEADS_OT_reset_expression,
           GAUSSIAN_HEADS_OT_mirror_expression, GAUSSIAN_HEADS_OT_export_ply)
register, unregister = bpy.utils.register_classes_factory(classes)
