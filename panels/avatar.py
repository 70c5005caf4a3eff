"""The "Gaussian Heads" sidebar tab of the 3D view and the avatar panel of Object properties.

Panels draw properties and operator buttons only. Every head parameter is an ordinary animatable
property, so hovering one and pressing I keys it and the Graph Editor shows its curve.
"""

import bpy
from bpy.props import EnumProperty

from ..engine.scene_render import CHANNEL_GROUPS


def active_avatar(context):
    obj = context.active_object
    return obj if obj is not None and obj.gaussian_heads.is_avatar else None


class GaussianHeadsSidebar:
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "Gaussian Heads"


class AvatarPanel:
    """Shown only while the active object is a Gaussian head avatar."""

    @classmethod
    def poll(cls, context):
        return active_avatar(context) is not None


class ObjectTabPanel(AvatarPanel):
    """A panel in the Properties editor's Object tab."""

    bl_space_type = 'PROPERTIES'
    bl_region_type = 'WINDOW'
    bl_context = "object"


class GAUSSIAN_HEADS_UL_expression(bpy.types.UIList):
    """Expression channels: a slider per channel, filtered by name and group, grouped in order."""

    group: EnumProperty(
        name="Group", description="Show one group of channels",
        items=[('ALL', "All", "Every channel")] + [(g.upper(), g.title(), f"{g.title()} channels")
                                                    for g in CHANNEL_GROUPS],
        default='ALL')

    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index, flag):
        row = layout.row(align=True)
        split = row.split(factor=0.5, align=True)
        split.label(text=item.name, translate=False)
        split.prop(item, "value", text="", slider=True)

    def draw_filter(self, context, layout):
        row = layout.row(align=True)
        row.prop(self, "filter_name", text="", icon='VIEWZOOM')
        row.prop(self, "use_filter_invert", text="", icon='ARROW_LEFTRIGHT')
        layout.prop(self, "group", text="Group")

    def filter_items(self, context, data, propname):
        import fnmatch

        channels = getattr(data, propname)
        text = self.filter_name.strip().lower()
        pattern = text if any(c in text for c in "*?[") else f"*{text}*"
        group = self.group.lower()
        flags = []
        invert = bool(getattr(self, "use_filter_invert", False)) and bool(text)
        for channel in channels:
            name_ok = not text or fnmatch.fnmatchcase(channel.name.lower(), pattern)
            shown = (name_ok != invert) and (group == "all" or channel.group == group)
            flags.append(self.bitflag_filter_item if shown else 0)
        rank = {g: i for i, g in enumerate(CHANNEL_GROUPS)}
        by_group = sorted(range(len(channels)), key=lambda i: (rank.get(channels[i].group, len(rank)), i))
        order = [0] * len(channels)
        for position, i in enumerate(by_group):
            order[i] = position
        return flags, order


def _source_status(scene_props):
    """The identity source registry's line about the chosen input (None: nothing to say)."""
    from ..engine.avatar.sources import SourceSpec, source_status

    from ..preferences import flame_model_path

    path = bpy.path.abspath(scene_props.sample_checkpoint) if scene_props.sample_checkpoint else ""
    source = scene_props.sample_source.lower()
    model = flame_model_path() if source == "gaussian_avatars" else "open"   # GaussianAvatars need FLAME
    return source_status(SourceSpec(source, path, model_spec=model))


class GAUSSIAN_HEADS_PT_sample(GaussianHeadsSidebar, bpy.types.Panel):
    bl_label = "Sample Identity"

    def draw(self, context):
        layout = self.layout
        props = context.scene.gaussian_heads
        col = layout.column()
        col.prop(props, "sample_source", text="Source")
        if props.sample_source != 'BUILTIN':   # every other kind reads a file or folder
            col.prop(props, "sample_checkpoint", text="")
        status = _source_status(props)
        if status is not None:  # e.g. an untrained checkpoint: samples are structured noise
            col.label(text=status.text, icon='ERROR' if status.warning else 'CHECKMARK')
        col.prop(props, "sample_seed")
        col.prop(props, "sample_truncation")
        if props.sample_source == 'BUILTIN':
            col.prop(props, "sample_gaussians")
        op = col.operator("gaussian_heads.sample_identity", icon='USER')
        op.source = props.sample_source
        op.checkpoint = props.sample_checkpoint
        op.seed = props.sample_seed
        op.truncation = props.sample_truncation
        op.shape = props.sample_shape
        op.n_gaussians = props.sample_gaussians


class GAUSSIAN_HEADS_PT_sample_shape(GaussianHeadsSidebar, bpy.types.Panel):
    bl_label = "Shape"
    bl_parent_id = "GAUSSIAN_HEADS_PT_sample"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        col = self.layout.column(align=True)
        col.prop(context.scene.gaussian_heads, "sample_shape", text="")


class GAUSSIAN_HEADS_PT_gallery(GaussianHeadsSidebar, bpy.types.Panel):
    bl_label = "Gallery"
    bl_parent_id = "GAUSSIAN_HEADS_PT_sample"

    def draw(self, context):
        layout = self.layout
        props = context.scene.gaussian_heads
        layout.template_icon_view(props, "gallery", show_labels=True, scale=6.0, scale_popup=5.0)
        row = layout.row(align=True)
        row.prop(props, "gallery_first_seed")
        row.prop(props, "gallery_count")
        layout.operator("gaussian_heads.build_gallery", icon='RENDER_STILL')


class GAUSSIAN_HEADS_PT_expression(AvatarPanel, GaussianHeadsSidebar, bpy.types.Panel):
    bl_label = "Expression"

    def draw(self, context):
        layout = self.layout
        props = active_avatar(context).gaussian_heads
        layout.template_list("GAUSSIAN_HEADS_UL_expression", "", props, "expr", props, "expr_index",
                             rows=8, maxrows=20)
        row = layout.row(align=True)
        row.operator("gaussian_heads.reset_expression", text="Reset", icon='LOOP_BACK')
        row.operator("gaussian_heads.mirror_expression", text="Mirror", icon='MOD_MIRROR')


class GAUSSIAN_HEADS_PT_pose(AvatarPanel, GaussianHeadsSidebar, bpy.types.Panel):
    bl_label = "Pose"

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        props = active_avatar(context).gaussian_heads
        col = layout.column()
        col.prop(props, "jaw")
        col.prop(props, "neck")
        col.prop(props, "head_rot")
        col = layout.column(align=True)
        col.label(text="Eye Gaze (left, right)")
        row = col.row(align=True)
        for i in range(3):
            row.prop(props, "eyes", index=i, text="")
        row = col.row(align=True)
        for i in range(3, 6):
            row.prop(props, "eyes", index=i, text="")
        layout.prop(props, "translation")
        op = layout.operator("gaussian_heads.reset_expression", text="Reset Pose and Expression",
                             icon='LOOP_BACK')
        op.include_pose = True


def draw_avatar_info(layout, obj):
    from ..operators import storage

    props = obj.gaussian_heads
    col = layout.column(align=True)
    source = "Built-in" if props.source == 'BUILTIN' else bpy.path.basename(props.checkpoint_path)
    col.label(text=f"Source: {source}, seed {props.seed}, truncation {props.truncation:.2f}")
    col.label(text=f"Head model: {props.model_spec}")
    if storage.has_identity(obj):
        col.label(text=f"{len(obj.data.points):,} Gaussians stored in the .blend")
    else:
        col.label(text="No stored Gaussians", icon='ERROR')
    layout.operator("gaussian_heads.export_ply", icon='EXPORT')


def draw_bake(layout, obj):
    from ..operators import storage

    props = obj.gaussian_heads
    col = layout.column(align=True)
    col.prop(props, "bake_samples")
    col.prop(props, "bake_components")
    col.prop(props, "bake_seed")
    row = layout.row(align=True)
    row.operator("gaussian_heads.bake_blendshapes", icon='RENDER_RESULT')
    row.operator("gaussian_heads.clear_bake", text="", icon='X')
    if storage.has_bake(obj):
        layout.label(text=props.bake_status or "Baked", icon='CHECKMARK')
        layout.prop(props, "show_baked")
        layout.operator("gaussian_heads.export_bake", icon='EXPORT')


class GAUSSIAN_HEADS_PT_avatar(AvatarPanel, GaussianHeadsSidebar, bpy.types.Panel):
    bl_label = "Avatar"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        draw_avatar_info(self.layout, active_avatar(context))


class GAUSSIAN_HEADS_PT_bake(AvatarPanel, GaussianHeadsSidebar, bpy.types.Panel):
    bl_label = "Bake"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        draw_bake(self.layout, active_avatar(context))


class GAUSSIAN_HEADS_PT_object(ObjectTabPanel, bpy.types.Panel):
    bl_label = "Gaussian Head"

    def draw(self, context):
        obj = active_avatar(context)
        draw_avatar_info(self.layout, obj)
        props = obj.gaussian_heads
        self.layout.template_list("GAUSSIAN_HEADS_UL_expression", "object", props, "expr", props,
                                  "expr_index", rows=5)


class GAUSSIAN_HEADS_PT_object_bake(ObjectTabPanel, bpy.types.Panel):
    bl_label = "Bake"
    bl_parent_id = "GAUSSIAN_HEADS_PT_object"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        draw_bake(self.layout, active_avatar(context))


class GAUSSIAN_HEADS_PT_object_pose(ObjectTabPanel, bpy.types.Panel):
    bl_label = "Pose"
    bl_parent_id = "GAUSSIAN_HEADS_PT_object"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        props = active_avatar(context).gaussian_heads
        for name in ("jaw", "neck", "head_rot", "eyes", "translation"):
            layout.prop(props, name)
        layout.prop(props, "shape")


classes = (GAUSSIAN_HEADS_UL_expression, GAUSSIAN_HEADS_PT_sample, GAUSSIAN_HEADS_PT_sample_shape,
           GAUSSIAN_HEADS_PT_gallery, GAUSSIAN_HEADS_PT_expression, GAUSSIAN_HEADS_PT_pose,
           GAUSSIAN_HEADS_PT_avatar, GAUSSIAN_HEADS_PT_bake, GAUSSIAN_HEADS_PT_object, GAUSSIAN_HEADS_PT_object_pose,
           GAUSSIAN_HEADS_PT_object_bake)
register, unregister = bpy.utils.register_classes_factory(classes)
