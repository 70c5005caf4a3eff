"""LAM avatar zips in Blender: import (menu and drag-and-drop), sliders, F12, PLY and LAM export,
bad files leave the scene untouched (bpy 5.0)."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

SIZE = 96


def _lam_zip(helpers, tmp_path, n=3000, seed=4):
    builtin = helpers.addon("engine.avatar.builtin")
    identity = builtin.BuiltinSource(config=builtin.BuiltinSamplerConfig(n_gaussians=n)).sample(seed)
    path = tmp_path / "lamhead.zip"
    helpers.addon("engine.io.lam").write_lam_zip(identity, path)
    return identity, path


def _render(tmp_path, name):
    scene = bpy.context.scene
    scene.render.filepath = str(tmp_path / name)
    assert bpy.ops.render.render(write_still=True) == {'FINISHED'}
    return tmp_path / name


def _set_pose(obj, jaw_open, head_rot):
    props = obj.gaussian_heads
    for ch in props.expr:
        ch.value = jaw_open if ch.name == "jawOpen" else 0.0
    props.head_rot = head_rot
    obj.update_tag()


def test_import_render_and_export(gh, helpers, tmp_path):
    identity, path = _lam_zip(helpers, tmp_path)
    assert bpy.ops.gaussian_heads.import_lam(filepath=str(path)) == {'FINISHED'}
    lam = bpy.data.objects["lamhead"]
    assert lam.gaussian_heads.is_avatar and lam.gaussian_heads.source == 'LAM'
    assert [c.name for c in lam.gaussian_heads.expr] == list(identity.model.expr_names)
    helpers.setup_camera_scene(SIZE)
    _set_pose(lam, 0.8, (0.0, 0.3, 0.0))
    lam_png = helpers.read_png(_render(tmp_path, "lam.png")).astype(np.int16)

    # the same take on the built-in avatar it was exported from renders the same picture
    lam.hide_render = True
    builtin = helpers.add_avatar(identity, "GaussianHead.builtin")
    _set_pose(builtin, 0.8, (0.0, 0.3, 0.0))
    ref_png = helpers.read_png(_render(tmp_path, "builtin.png")).astype(np.int16)
    assert lam_png[..., :3].max() > 40                      # something was drawn
    diff = np.abs(lam_png - ref_png)[..., :3]
    assert diff.mean() < 1.0 and np.percentile(diff, 99) < 24, (diff.mean(), diff.max())

    # PLY export of the imported avatar poses it like the engine does
    bpy.context.view_layer.objects.active = lam
    ply = tmp_path / "lam.ply"
    assert bpy.ops.gaussian_heads.export_ply(filepath=str(ply)) == {'FINISHED'}
    back = helpers.addon("engine.io.ply").read_ply(ply)
    stored = helpers.addon("operators.storage").load_identity(lam)
    params = stored.neutral_params()
    params.expr[list(stored.model.expr_names).index("jawOpen")] = 0.8
    params.global_rot[:] = (0.0, 0.3, 0.0)
    assert np.abs(back.means - stored.pose(params).means).max() < 1e-5

    # and exports as a LAM zip again
    out = tmp_path / "again.zip"
    assert bpy.ops.gaussian_heads.export_lam(filepath=str(out)) == {'FINISHED'}
    again = helpers.addon("engine.io.lam").read_lam_zip(out).identity
    assert len(again) == len(identity)


def test_drag_and_drop_and_template_animation(gh, helpers, tmp_path):
    _, path = _lam_zip(helpers, tmp_path, n=1500)
    result = bpy.ops.gaussian_heads.import_lam(directory=str(tmp_path), files=[{"name": path.name}],
                                              animation=True)
    assert result == {'FINISHED'}
    obj = bpy.data.objects["lamhead"]
    curves = helpers.addon("operators.keyframes").curves_of(obj.animation_data.action, obj)
    assert any(c.data_path == "gaussian_heads.neck" for c in curves)


def test_bad_zip_leaves_scene_untouched(gh, helpers, tmp_path):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    before = set(bpy.data.objects.keys())
    with pytest.raises(RuntimeError, match="broken.zip"):
        bpy.ops.gaussian_heads.import_lam(filepath=str(bad))
    assert set(bpy.data.objects.keys()) == before
