"""Render properties for the Gaussian Heads engine, and Blender's own panels made to show for it.

Blender's built-in panels list the engines they draw for in ``COMPAT_ENGINES``; at register we add
'GAUSSIAN_HEADS' to the ones that apply to us (output, format, frame range, colour management,
camera, view layer, world, point cloud data) and remove it again at unregister.
"""

import bpy

from ..engine.composite import COMPOSITE_ENGINES, composite_offer
from ..render_engine import ENGINE_ID

#: Built-in panels that make sense for the Gaussian Heads engine.
BUILTIN_PANELS = (
    # Output properties
    "RENDER_PT_format", "RENDER_PT_frame_range", "RENDER_PT_time_stretching", "RENDER_PT_stereoscopy",
    "RENDER_PT_output", "RENDER_PT_output_views", "RENDER_PT_output_color_management",
    "RENDER_PT_output_pixel_density", "RENDER_PT_encoding", "RENDER_PT_encoding_video",
    "RENDER_PT_encoding_audio", "RENDER_PT_post_processing", "RENDER_PT_stamp", "RENDER_PT_stamp_note",
    "RENDER_PT_stamp_burn",
    # Render properties
    "RENDER_PT_color_management", "RENDER_PT_color_management_advanced",
    "RENDER_PT_color_management_curves", "RENDER_PT_color_management_white_balance",
    "RENDER_PT_color_management_working_space",
    # Camera data
    "DATA_PT_context_camera", "DATA_PT_camera", "DATA_PT_lens", "DATA_PT_camera_display",
    "DATA_PT_camera_display_composition_guides", "DATA_PT_camera_safe_areas",
    "DATA_PT_camera_safe_areas_center_cut", "DATA_PT_camera_background_image",
    "DATA_PT_camera_animation", "DATA_PT_custom_props_camera", "CAMERA_PT_presets",
    "CAMERA_PT_safe_areas_presets",
    # Point cloud data (the avatar's stored Gaussians)
    "DATA_PT_context_pointcloud", "DATA_PT_pointcloud_attributes", "DATA_PT_custom_props_pointcloud",
    # Object, view layer, world
    "OBJECT_PT_visibility", "OBJECT_PT_custom_props", "VIEWLAYER_PT_context_layer", "VIEWLAYER_PT_layer",
    "WORLD_PT_context_world", "WORLD_PT_custom_props", "WORLD_PT_animation",
)

_added: list[str] = []


class GaussianHeadsRenderPanel:
    bl_space_type = 'PROPERTIES'
    bl_region_type = 'WINDOW'
    bl_context = "render"
    COMPAT_ENGINES = {ENGINE_ID}

    @classmethod
    def poll(cls, context):
        return context.engine in cls.COMPAT_ENGINES


class GAUSSIAN_HEADS_PT_render_settings(GaussianHeadsRenderPanel, bpy.types.Panel):
    bl_label = "Gaussian Splatting"

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        props = context.scene.gaussian_heads
        col = layout.column()
        col.prop(props, "backend")
        col.prop(props, "mode")
        col.prop(props, "sh_degree")
        col.prop(props, "viewport_scale")
        _draw_status(layout)


def _draw_status(layout):
    """The background kernel compile while it runs (or if it failed), and the last render."""
    from .. import preferences, render_engine

    progress = preferences.warmup_progress()
    if progress is not None and (progress.running or progress.errors):
        layout.label(text=progress.text(), icon='SORTTIME' if progress.running else 'ERROR')
    stats = render_engine.last_stats
    if stats is not None:
        layout.label(text=f"Last render: {stats.backend}, {stats.n_gaussians:,} splats, {stats.ms:.0f} ms",
                     icon='INFO')
        if stats.fallback:
            layout.label(text=stats.fallback[:160], icon='ERROR')


class GAUSSIAN_HEADS_PT_render_color(GaussianHeadsRenderPanel, bpy.types.Panel):
    """The view transform avatars need ('Standard'), its state and the one-click fix."""

    bl_label = "Avatar Colours"

    def draw(self, context):
        from ..operators.color_management import STANDARD_VIEW, WHY, view_problem

        layout = self.layout
        scene = context.scene
        problem = view_problem(scene)
        col = layout.column()
        if problem is None:
            col.label(text=f"View transform: {STANDARD_VIEW}", icon='CHECKMARK')
        else:
            col.alert = True
            col.label(text=f"The {problem} washes out avatars", icon='ERROR')
            col.label(text=WHY.capitalize())
            col.operator("gaussian_heads.use_standard_view", icon='COLOR')
        layout.prop(scene.gaussian_heads, "auto_standard_view")


class GAUSSIAN_HEADS_PT_render_film(GaussianHeadsRenderPanel, bpy.types.Panel):
    bl_label = "Film"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        scene = context.scene
        layout.prop(scene.render, "film_transparent", text="Transparent")
        world = scene.world
        row = layout.row()
        row.active = not scene.render.film_transparent
        if world is not None:
            row.prop(world, "color", text="Background")
        else:
            row.label(text="No world: the background is black")


class GAUSSIAN_HEADS_PT_render_passes(GaussianHeadsRenderPanel, bpy.types.Panel):
    bl_context = "view_layer"
    bl_label = "Passes"

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        view_layer = context.view_layer
        layout.prop(view_layer, "use_pass_combined")
        layout.prop(view_layer, "use_pass_z")


class GAUSSIAN_HEADS_PT_render_composite(bpy.types.Panel):
    """Cycles/EEVEE/Workbench scenes with avatars: set up or remove the Gaussian Heads composite
    (operators/composite.py); on Blender 5.3+, which renders avatars itself, it is an option."""

    bl_space_type = 'PROPERTIES'
    bl_region_type = 'WINDOW'
    bl_context = "render"
    bl_label = "Gaussian Heads Composite"
    COMPAT_ENGINES = set(COMPOSITE_ENGINES)

    @classmethod
    def poll(cls, context):
        from ..operators import composite

        if context.scene is None:
            return False
        if composite.is_composited(context.scene):   # under any engine: the way to remove it
            return True
        return context.engine in cls.COMPAT_ENGINES and bool(composite.composited_objects(context.view_layer))

    def draw(self, context):
        from ..operators import composite
        from ..operators.color_management import view_problem

        layout = self.layout
        scene = context.scene
        if not composite.is_composited(scene):
            if composite_offer(scene.render.engine, bpy.app.version) == "option":
                layout.label(text="Blender renders avatars itself; this uses Gaussian Heads'", icon='INFO')
                layout.label(text="rasterizer and Z-combines its layer with this render")
            layout.operator("gaussian_heads.composite_setup", icon='NODE_COMPOSITING')
            return
        companion = composite.companion_of(scene)
        col = layout.column()
        if scene.render.engine == ENGINE_ID:
            col.alert = True
            col.label(text="The composite hides avatars from this scene's own render", icon='ERROR')
        elif companion is None:
            col.alert = True
            col.label(text="The companion scene is gone: remove the composite", icon='ERROR')
        else:
            col.label(text=f"Avatars render in scene '{companion.name}'", icon='NODE_COMPOSITING')
            col.use_property_split = True
            col.use_property_decorate = False
            props = companion.gaussian_heads
            col.prop(props, "backend")
            col.prop(props, "mode")
            col.prop(props, "sh_degree")
        problem = view_problem(scene)
        if problem is not None:
            warn = layout.column()
            warn.alert = True
            warn.label(text=f"The {problem} washes out avatars", icon='ERROR')
            warn.operator("gaussian_heads.use_standard_view", icon='COLOR')
        layout.operator("gaussian_heads.composite_remove", icon='X')


classes = (GAUSSIAN_HEADS_PT_render_settings, GAUSSIAN_HEADS_PT_render_color,
           GAUSSIAN_HEADS_PT_render_film,
           GAUSSIAN_HEADS_PT_render_passes, GAUSSIAN_HEADS_PT_render_composite)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()
    for name in BUILTIN_PANELS:
        panel = getattr(bpy.types, name, None)
        engines = getattr(panel, "COMPAT_ENGINES", None)
        if isinstance(engines, set) and ENGINE_ID not in engines:
            engines.add(ENGINE_ID)
            _added.append(name)


def unregister():
    for name in _added:
        panel = getattr(bpy.types, name, None)
        engines = getattr(panel, "COMPAT_ENGINES", None)
        if isinstance(engines, set):
            engines.discard(ENGINE_ID)
    _added.clear()
    _unregister_classes()
