"""Panels draw headless (a recording layout stands in for the UI): every property they show
exists, every operator they call is registered and every operator argument they set exists."""

import types

import pytest

bpy = pytest.importorskip("bpy")


class _OperatorArgs:
    def __init__(self, idname):
        module, name = idname.split(".")
        self._props = {p.identifier for p in getattr(getattr(bpy.ops, module), name).get_rna_type().properties}

    def __setattr__(self, key, value):
        if key != "_props" and key not in self._props:
            raise AttributeError(f"operator has no property '{key}'")
        object.__setattr__(self, key, value)


class RecordingLayout:
    """Enough of UILayout for our panels; checks what it is asked to draw."""

    def __init__(self, log):
        self.log = log
        self.use_property_split = False
        self.use_property_decorate = True
        self.active = True
        self.enabled = True

    def _child(self, *args, **kwargs):
        return RecordingLayout(self.log)

    row = column = split = box = _child

    def label(self, text="", **kwargs):
        self.log.append(("label", text))

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, f"{data} has no property '{name}'"
        self.log.append(("prop", name))

    def operator(self, idname, **kwargs):
        module, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, module), name), idname
        self.log.append(("operator", idname))
        return _OperatorArgs(idname)

    def template_list(self, list_type, list_id, data, prop, active_data, active_prop, **kwargs):
        assert hasattr(bpy.types, list_type), list_type
        assert prop in data.bl_rna.properties and active_prop in active_data.bl_rna.properties
        self.log.append(("list", prop))

    def template_icon_view(self, data, prop, **kwargs):
        assert prop in data.bl_rna.properties
        self.log.append(("icons", prop))


def _draw_all(context, names):
    log = []
    for name in names:
        cls = getattr(bpy.types, name)
        if hasattr(cls, "poll") and not cls.poll(context):
            continue
        panel = types.SimpleNamespace(layout=RecordingLayout(log), bl_label=cls.bl_label)
        cls.draw(panel, context)
    return log


PANELS = ("GAUSSIAN_HEADS_PT_sample", "GAUSSIAN_HEADS_PT_sample_shape", "GAUSSIAN_HEADS_PT_gallery",
          "GAUSSIAN_HEADS_PT_expression", "GAUSSIAN_HEADS_PT_pose", "GAUSSIAN_HEADS_PT_avatar",
          "GAUSSIAN_HEADS_PT_bake", "GAUSSIAN_HEADS_PT_object", "GAUSSIAN_HEADS_PT_object_pose",
          "GAUSSIAN_HEADS_PT_object_bake",
          "GAUSSIAN_HEADS_PT_render_settings", "GAUSSIAN_HEADS_PT_render_film",
          "GAUSSIAN_HEADS_PT_render_passes")


def test_panels_draw_with_an_avatar(gh, helpers, avatar):
    bpy.context.scene.render.engine = 'GAUSSIAN_HEADS'
    context = types.SimpleNamespace(scene=bpy.context.scene, active_object=avatar, engine='GAUSSIAN_HEADS',
                                    view_layer=bpy.context.view_layer, object=avatar)
    log = _draw_all(context, PANELS)
    drawn = {entry[1] for entry in log}
    assert {"gaussian_heads.sample_identity", "gaussian_heads.reset_expression",
            "gaussian_heads.mirror_expression", "gaussian_heads.bake_blendshapes",
            "gaussian_heads.build_gallery", "gaussian_heads.export_ply"} <= drawn
    assert {"jaw", "neck", "head_rot", "eyes", "expr", "backend", "mode", "sh_degree",
            "viewport_scale", "gallery", "use_pass_z", "film_transparent"} <= drawn


def test_avatar_panels_hide_without_an_avatar(gh):
    context = types.SimpleNamespace(scene=bpy.context.scene, active_object=None, engine='BLENDER_EEVEE',
                                    view_layer=bpy.context.view_layer, object=None)
    log = _draw_all(context, PANELS)
    assert ("operator", "gaussian_heads.sample_identity") in log       # sampling is always there
    assert ("prop", "jaw") not in log and ("prop", "backend") not in log


def test_builtin_panels_accept_our_engine_while_registered(gh):
    assert 'GAUSSIAN_HEADS' in bpy.types.RENDER_PT_format.COMPAT_ENGINES
    assert 'GAUSSIAN_HEADS' in bpy.types.DATA_PT_lens.COMPAT_ENGINES
    import addon_utils

    addon_utils.disable(helpers_module().ADDON_MODULE)
    assert 'GAUSSIAN_HEADS' not in bpy.types.RENDER_PT_format.COMPAT_ENGINES


def helpers_module():
    import sys

    return next(m for name, m in sys.modules.items() if name.endswith("conftest") and hasattr(m, "ADDON_MODULE"))


FILTER_ITEM = 1 << 30  # UIList.bitflag_filter_item


def test_expression_list_filters_by_name_and_group(gh, helpers, avatar):
    ul = bpy.types.GAUSSIAN_HEADS_UL_expression
    props = avatar.gaussian_heads
    fake = types.SimpleNamespace(filter_name="Blink", bitflag_filter_item=FILTER_ITEM, group='ALL',
                                 use_filter_invert=False)
    flags, order = ul.filter_items(fake, bpy.context, props, "expr")
    shown = [c.name for c, f in zip(props.expr, flags) if f]
    assert shown and all("blink" in n.lower() for n in shown)
    fake = types.SimpleNamespace(filter_name="", bitflag_filter_item=FILTER_ITEM, group='MOUTH',
                                 use_filter_invert=False)
    flags, order = ul.filter_items(fake, bpy.context, props, "expr")
    assert all(c.group == "mouth" for c, f in zip(props.expr, flags) if f)
    assert sorted(order) == list(range(len(props.expr)))
