"""F12 of an avatar with view-dependent colour (SH degree 3) under a turned object equals the
engine's model-space render seen from the correspondingly turned camera (what the CLI does)."""

import dataclasses

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

SIZE = 96


def _sh3(identity, seed=7):
    canonical = identity.canonical
    rng = np.random.default_rng(seed)
    sh = np.zeros((len(canonical), 16, 3), np.float32)
    sh[:, 0] = canonical.sh[:, 0]
    sh[:, 1:] = rng.normal(size=(len(canonical), 15, 3)) * 0.35
    return dataclasses.replace(identity, canonical=dataclasses.replace(canonical, sh=sh))


def test_f12_with_sh3_under_a_turned_object_matches_the_model_space_render(gh, helpers, tmp_path):
    identity = _sh3(helpers.make_small_identity(3))
    obj = helpers.add_avatar(identity)
    obj.rotation_euler = (0.4, -0.3, 2.2)
    obj.location = (0.05, 0.02, -0.03)
    helpers.setup_camera_scene(SIZE, distance=0.7)
    scene = bpy.context.scene
    scene.render.image_settings.color_mode = 'RGB'
    scene.render.filepath = str(tmp_path / "f12.png")
    assert bpy.ops.render.render(write_still=True) == {'FINISHED'}
    ours = helpers.read_png(tmp_path / "f12.png")

    frames = helpers.addon("engine.avatar.frames")
    raster = helpers.addon("engine.raster")
    blender_camera = helpers.addon("engine.raster.blender_camera")
    camera, _ = blender_camera.camera_from_blender(
        helpers.addon("render_engine").camera_settings(scene, scene.camera))
    to_world = np.array(obj.matrix_world, np.float64) @ frames.MODEL_TO_BLENDER
    model_camera = dataclasses.replace(camera, world_to_cam=camera.world_to_cam @ to_world)
    model = identity.pose(identity.neutral_params())

    def cli_pixels(gaussians):
        rgba = raster.render(gaussians, model_camera, SIZE, SIZE, backend="cpu").rgba
        return np.round(np.clip(rgba[..., :3], 0.0, 1.0) * 255.0).astype(int)

    want = cli_pixels(model)
    assert want.std() > 10                                          # a head, not an empty frame
    assert np.abs(ours.astype(int) - want).max() <= 1
    # the same render with degree-0 colour differs: the view-dependent part is visible here
    assert np.abs(cli_pixels(model.with_sh_degree(0)) - want).max() > 20

    # the world-space PLY export, rendered through the Blender camera, is the same picture too
    path = tmp_path / "world.ply"
    assert bpy.ops.gaussian_heads.export_ply(filepath=str(path), space='WORLD') == {'FINISHED'}
    world = helpers.addon("engine.io.ply").read_ply(path)
    assert world.sh_degree == 3
    rgba = raster.render(world, camera, SIZE, SIZE, backend="cpu").rgba
    exported = np.round(np.clip(rgba[..., :3], 0.0, 1.0) * 255.0).astype(int)
    assert np.abs(exported - want).max() <= 1
