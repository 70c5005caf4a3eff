"""File > Import > GaussianAvatars Avatar: a synthetic GaussianAvatars folder on a synthetic FLAME
model (the preferences' FLAME Model) becomes an avatar keyed with its flame_param.npz; a FLAME
slider changes the F12 render; a missing or mismatched FLAME is one clear error, scene unchanged."""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from tests.engine.ga_fixtures import N_EXPR, flame_arrays, write_avatar, write_flame_npz  # noqa: E402

SIZE = 96


@pytest.fixture
def prefs(gh, helpers):
    p = bpy.context.preferences.addons[helpers.ADDON_MODULE].preferences
    yield p
    p.flame_model = ""


@pytest.fixture
def avatar_files(tmp_path):
    flame = write_flame_npz(tmp_path / "flame2023.npz")
    arrays = write_avatar(tmp_path / "avatar", flame_arrays())
    return {"flame": flame, "folder": tmp_path / "avatar", "arrays": arrays}


def _render(tmp_path, helpers, name):
    scene = bpy.context.scene
    scene.render.filepath = str(tmp_path / name)
    assert bpy.ops.render.render(write_still=True) == {'FINISHED'}
    return helpers.read_png(tmp_path / name).astype(np.float64)


def test_import_folder_animation_and_slider_render(gh, helpers, prefs, avatar_files, tmp_path):
    prefs.flame_model = avatar_files["flame"]
    bpy.context.scene.render.fps = 25      # flame_param.npz stores no rate; the reader assumes 25 fps
    ply = avatar_files["folder"] / "point_cloud.ply"
    assert bpy.ops.gaussian_heads.import_gaussian_avatars(filepath=str(ply)) == {'FINISHED'}
    obj = bpy.context.active_object
    props = obj.gaussian_heads
    assert props.is_avatar and props.source == 'GAUSSIAN_AVATARS' and len(props.expr) == N_EXPR
    identity = helpers.addon("operators.storage").load_identity(obj)
    assert len(identity) == len(avatar_files["arrays"]["binding"])
    assert identity.meta["face_scale"] == "edge_height"
    # its own flame_param.npz is its animation: translation and head rotation keyed per frame
    action = obj.animation_data.action
    assert action is not None
    scene = bpy.context.scene
    prm = avatar_files["arrays"]["params"]
    scene.frame_set(scene.frame_start + 2)
    np.testing.assert_allclose(np.array(props.translation), prm["translation"][2], atol=1e-5)
    np.testing.assert_allclose(np.array(props.head_rot), prm["rotation"][2], atol=1e-5)
    # neutral against one FLAME slider
    obj.animation_data_clear()
    bpy.ops.gaussian_heads.reset_expression(include_pose=True)
    helpers.setup_camera_scene(SIZE, distance=0.7)
    scene.frame_set(scene.frame_start)
    neutral = _render(tmp_path, helpers, "neutral.png")
    assert neutral[..., :3].max() > 0
    props.jaw = (0.35, 0.0, 0.0)
    opened = _render(tmp_path, helpers, "jaw.png")
    assert np.abs(opened - neutral).mean() > 0.05
    props.jaw = (0.0, 0.0, 0.0)
    props.expr[0].value = 3.0
    expr = _render(tmp_path, helpers, "expr.png")
    assert np.abs(expr - neutral).mean() > 0.05


def test_missing_or_mismatched_flame_is_one_error_scene_unchanged(gh, prefs, avatar_files, tmp_path):
    before = set(bpy.data.objects.keys())
    folder = str(avatar_files["folder"])
    with pytest.raises(RuntimeError, match="FLAME") as info:
        bpy.ops.gaussian_heads.import_gaussian_avatars(filepath=folder + "/point_cloud.ply")
    assert "point_cloud.ply" in str(info.value)
    other = flame_arrays()
    other["f"] = other["f"][:-300]
    np.savez(tmp_path / "wrong.npz", **other)
    prefs.flame_model = str(tmp_path / "wrong.npz")
    with pytest.raises(RuntimeError) as info:
        bpy.ops.gaussian_heads.import_gaussian_avatars(filepath=folder + "/point_cloud.ply")
    assert "wrong.npz" in str(info.value) and "point_cloud.ply" in str(info.value)
    assert set(bpy.data.objects.keys()) == before


def test_params_without_a_take_import_the_avatar_alone(gh, prefs, avatar_files):
    prm = avatar_files["arrays"]["params"]
    np.savez(avatar_files["folder"] / "flame_param.npz", shape=prm["shape"], static_offset=prm["static_offset"])
    prefs.flame_model = avatar_files["flame"]
    assert bpy.ops.gaussian_heads.import_gaussian_avatars(filepath=str(avatar_files["folder"])) == {'FINISHED'}
    obj = bpy.context.active_object
    assert obj.gaussian_heads.is_avatar and (obj.animation_data is None or obj.animation_data.action is None)


def test_dropped_point_cloud_becomes_an_avatar_not_static_splats(gh, prefs, avatar_files):
    """The splat importer (File > Import and drag-and-drop) hands a PLY with binding_0 to the
    GaussianAvatars import; without a FLAME model that is one error and an unchanged scene."""
    ply = str(avatar_files["folder"] / "point_cloud.ply")
    with pytest.raises(RuntimeError, match="FLAME"):
        bpy.ops.gaussian_heads.import_splats(filepath=ply)
    assert len(bpy.data.objects) == 0
    prefs.flame_model = avatar_files["flame"]
    assert bpy.ops.gaussian_heads.import_splats(filepath=ply) == {'FINISHED'}
    obj = bpy.context.active_object
    assert obj.gaussian_heads.is_avatar and obj.gaussian_heads.source == 'GAUSSIAN_AVATARS'
