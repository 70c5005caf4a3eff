"""Scenes that show avatars get the 'Standard' view transform (Blender's default AgX washes the
avatars' sRGB colours out): through the real triggers (switching the render engine, Sample
Identity), said in the report log, fixable in one click, shown in the render panel."""

import types

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

SIZE = 96


def _render(tmp_path, name):
    bpy.context.scene.render.filepath = str(tmp_path / name)
    assert bpy.ops.render.render(write_still=True) == {'FINISHED'}
    return tmp_path / name


def _switch_engine(engine):
    """Set the engine and let the depsgraph evaluate (what the UI does after any change)."""
    bpy.context.scene.render.engine = engine
    bpy.context.view_layer.update()


def test_engine_switch_sets_standard_and_the_render_matches(gh, helpers, avatar, tmp_path, capfd):
    helpers.setup_camera_scene(SIZE, distance=0.7)
    scene = bpy.context.scene
    standard = helpers.read_png(_render(tmp_path, "standard.png")).astype(int)

    scene.view_settings.view_transform = 'AgX'           # Blender's default
    agx = helpers.read_png(_render(tmp_path, "agx.png")).astype(int)
    out = capfd.readouterr().out
    assert "view transform 'AgX' washes out avatar colours" in out      # the render warns
    face = standard[..., :3].sum(-1) > 30                 # the avatar, not the black world
    washed = np.abs(agx - standard)[..., :3][face].mean()
    assert washed > 2.0, f"AgX differs from Standard by only {washed:.2f}/255"

    _switch_engine('BLENDER_EEVEE')
    assert scene.view_settings.view_transform == 'AgX'   # other engines: left alone
    _switch_engine('GAUSSIAN_HEADS')
    assert scene.view_settings.view_transform == 'Standard' and scene.view_settings.look == 'None'
    out = capfd.readouterr().out
    assert "now uses the 'Standard' view transform instead of view transform 'AgX'" in out
    assert "switched to the Gaussian Heads engine" in out

    fixed = helpers.read_png(_render(tmp_path, "fixed.png")).astype(int)
    assert np.array_equal(fixed, standard)
    assert "washes out" not in capfd.readouterr().out


def test_a_later_choice_of_agx_is_kept_and_the_option_turns_it_off(gh, helpers):
    scene = bpy.context.scene
    _switch_engine('GAUSSIAN_HEADS')
    assert scene.view_settings.view_transform == 'Standard'
    scene.view_settings.view_transform = 'AgX'           # the user's deliberate choice
    bpy.context.view_layer.update()
    scene.frame_set(2)
    assert scene.view_settings.view_transform == 'AgX'   # acts on the switch, not on the state
    scene.gaussian_heads.auto_standard_view = False
    _switch_engine('CYCLES')
    _switch_engine('GAUSSIAN_HEADS')
    assert scene.view_settings.view_transform == 'AgX'


def test_switch_is_seen_after_loading_a_file(gh, tmp_path):
    """The handler survives file loads (persistent) and does not touch the loaded file itself."""
    scene = bpy.context.scene
    _switch_engine('GAUSSIAN_HEADS')
    scene.view_settings.view_transform = 'Filmic'
    path = tmp_path / "saved.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    scene = bpy.context.scene
    bpy.context.view_layer.update()
    assert scene.view_settings.view_transform == 'Filmic'   # loading changes nothing
    _switch_engine('BLENDER_WORKBENCH')
    _switch_engine('GAUSSIAN_HEADS')
    assert scene.view_settings.view_transform == 'Standard'


def test_sample_identity_sets_standard_and_reports_it(gh, capfd):
    scene = bpy.context.scene
    assert scene.view_settings.view_transform == 'AgX'
    assert bpy.ops.gaussian_heads.sample_identity(seed=5, n_gaussians=2000) == {'FINISHED'}
    assert scene.view_settings.view_transform == 'Standard'
    assert "instead of view transform 'AgX' (an avatar was added)" in capfd.readouterr().out
    scene.view_settings.view_transform = 'AgX'
    scene.gaussian_heads.auto_standard_view = False
    assert bpy.ops.gaussian_heads.sample_identity(seed=6, n_gaussians=2000) == {'FINISHED'}
    assert scene.view_settings.view_transform == 'AgX'


def test_one_click_fix_and_the_panel(gh, capfd):
    scene = bpy.context.scene
    scene.render.engine = 'GAUSSIAN_HEADS'
    scene.view_settings.view_transform = 'Standard'
    scene.view_settings.look = 'Medium High Contrast'
    log = _draw_panel(scene)
    assert ("label", "The look 'Medium High Contrast' washes out avatars") in log
    assert ("operator", "gaussian_heads.use_standard_view") in log
    assert bpy.ops.gaussian_heads.use_standard_view() == {'FINISHED'}
    assert scene.view_settings.look == 'None'
    assert "instead of look 'Medium High Contrast'" in capfd.readouterr().out
    log = _draw_panel(scene)
    assert ("label", "View transform: Standard") in log and ("prop", "auto_standard_view") in log
    assert ("operator", "gaussian_heads.use_standard_view") not in log
    assert bpy.ops.gaussian_heads.use_standard_view() == {'FINISHED'}
    assert "already uses the 'Standard' view" in capfd.readouterr().out


class _Layout:
    """Records what a panel draws; checks properties and operators exist."""

    def __init__(self, log):
        self.log, self.alert = log, False

    def column(self, **_):
        return _Layout(self.log)

    row = column

    def label(self, text="", **_):
        self.log.append(("label", text))

    def prop(self, data, name, **_):
        assert name in data.bl_rna.properties, name
        self.log.append(("prop", name))

    def operator(self, idname, **_):
        module, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, module), name), idname
        self.log.append(("operator", idname))


def _draw_panel(scene):
    cls = bpy.types.GAUSSIAN_HEADS_PT_render_color
    context = types.SimpleNamespace(scene=scene, engine=scene.render.engine)
    assert cls.poll(context)
    log = []
    cls.draw(types.SimpleNamespace(layout=_Layout(log)), context)
    return log


def test_handlers_leave_with_the_add_on(gh, helpers):
    import addon_utils

    cm = helpers.addon("operators.color_management")
    assert cm._on_depsgraph_update in bpy.app.handlers.depsgraph_update_post
    assert cm._on_load_post in bpy.app.handlers.load_post
    addon_utils.disable(helpers.ADDON_MODULE, default_set=True)
    assert cm._on_depsgraph_update not in bpy.app.handlers.depsgraph_update_post
    assert cm._on_load_post not in bpy.app.handlers.load_post
