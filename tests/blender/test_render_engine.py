"""The Gaussian Heads render engine through Blender's own render operator (F12 / animation)."""

import os
import subprocess
import sys

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

SIZE = 128
SEED = 3


def _render_still(tmp_path, name="still.png"):
    scene = bpy.context.scene
    scene.render.filepath = str(tmp_path / name)
    assert bpy.ops.render.render(write_still=True) == {'FINISHED'}
    return tmp_path / name


def _cli_camera_to_blender(helpers, camera_cv, size):
    """Place the scene camera where the CLI's (model-frame, OpenCV) camera is, for an avatar at
    the origin: Blender world = MODEL_TO_BLENDER · model."""
    import mathutils

    frames = helpers.addon("engine.avatar.frames")
    cam = helpers.setup_camera_scene(size)
    cam_to_model = np.linalg.inv(np.asarray(camera_cv.world_to_cam, np.float64))
    cv_to_blender_cam = np.diag([1.0, -1.0, -1.0, 1.0])
    matrix = frames.MODEL_TO_BLENDER @ cam_to_model @ cv_to_blender_cam
    cam.matrix_world = mathutils.Matrix(matrix.tolist())
    cam.data.sensor_fit = 'HORIZONTAL'
    cam.data.sensor_width = 36.0
    cam.data.lens = camera_cv.fx / size * 36.0
    cam.data.clip_start, cam.data.clip_end = 0.01, 100.0
    return cam


def test_f12_render_matches_cli_render(gh, helpers, avatar, small_identity, tmp_path):
    cli_render = helpers.addon("engine.raster.cli_render")
    neutral = small_identity.pose(small_identity.neutral_params())
    camera = cli_render.head_camera(neutral.means, SIZE, SIZE)
    _cli_camera_to_blender(helpers, camera, SIZE)
    bpy.context.scene.render.image_settings.color_mode = 'RGB'
    ours = helpers.read_png(_render_still(tmp_path))

    cli_png = tmp_path / "cli.png"
    env = dict(os.environ)
    subprocess.run([sys.executable, "-m", "engine", "render", "--seed", str(SEED), "--gaussians",
                    str(len(small_identity.binding)), "--width", str(SIZE), "--height", str(SIZE),
                    "--out", str(cli_png)], cwd=str(helpers.REPO_ROOT), env=env, check=True,
                   capture_output=True, timeout=600)
    cli = helpers.read_png(cli_png)
    assert ours.shape == cli.shape == (SIZE, SIZE, 3)
    diff = np.abs(ours.astype(int) - cli.astype(int))
    assert cli.std() > 10                      # a head, not an empty frame
    assert diff.max() <= 1, f"max difference {diff.max()} (8-bit levels)"


def test_animation_render_follows_keyframes(gh, helpers, avatar, tmp_path):
    helpers.setup_camera_scene(SIZE, distance=0.7)
    props = avatar.gaussian_heads
    jaw_open = [c.name for c in props.expr].index("jawOpen")
    for frame, value in ((1, 0.0), (2, 0.6), (3, 1.0)):
        props.expr[jaw_open].value = value
        props.expr[jaw_open].keyframe_insert("value", frame=frame)
        props.jaw = (0.25 * value, 0.0, 0.0)
        avatar.keyframe_insert("gaussian_heads.jaw", index=0, frame=frame)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 3
    scene.render.filepath = str(tmp_path / "anim_")
    assert bpy.ops.render.render(animation=True) == {'FINISHED'}
    images = [helpers.read_png(tmp_path / f"anim_{f:04d}.png").astype(int) for f in (1, 2, 3)]
    for a, b in ((0, 1), (1, 2), (0, 2)):
        assert np.abs(images[a] - images[b]).mean() > 0.05, (a, b)
    # the still at frame 3 equals the animation's frame 3 (the same evaluated values)
    scene.frame_set(3)
    still = helpers.read_png(_render_still(tmp_path, "f3.png")).astype(int)
    assert np.abs(still - images[2]).max() <= 1


def test_film_transparent_alpha(gh, helpers, avatar, tmp_path):
    helpers.setup_camera_scene(SIZE, distance=0.7, transparent=True)
    image = helpers.read_png(_render_still(tmp_path))
    assert image.shape == (SIZE, SIZE, 4)
    alpha = image[..., 3]
    assert alpha[0, 0] == 0 and alpha[-1, -1] == 0 and alpha[0, -1] == 0
    assert alpha[SIZE // 2, SIZE // 2] == 255
    assert 0.1 < (alpha > 0).mean() < 0.9


def test_world_colour_is_the_background(gh, helpers, avatar, tmp_path):
    helpers.setup_camera_scene(SIZE, distance=0.7)
    bpy.context.scene.world.color = (0.2, 0.3, 0.4)
    image = helpers.read_png(_render_still(tmp_path))
    encoded = [round(255 * (1.055 * c ** (1 / 2.4) - 0.055)) for c in (0.2, 0.3, 0.4)]
    assert np.abs(image[0, 0, :3].astype(int) - encoded).max() <= 1
    assert image[0, 0, 3] == 255


def test_depth_pass(gh, helpers, avatar, tmp_path):
    distance = 0.7
    helpers.setup_camera_scene(SIZE, distance=distance, transparent=True)   # alpha = coverage
    scene = bpy.context.scene
    scene.view_layers[0].use_pass_z = True
    settings = scene.render.image_settings
    settings.media_type = 'MULTI_LAYER_IMAGE'
    settings.file_format = 'OPEN_EXR_MULTILAYER'
    settings.exr_codec = 'NONE'
    settings.color_depth = '32'
    path = _render_still(tmp_path, "passes.exr")
    channels = helpers.read_exr(path)
    depth = next(v for k, v in channels.items() if k.endswith("Depth.Z"))
    alpha = next(v for k, v in channels.items() if k.endswith("Combined.A"))
    assert depth.shape == (SIZE, SIZE)
    assert depth[0, 0] == pytest.approx(1e10)                     # nothing there
    front = distance - 0.15
    centre = depth[SIZE // 2, SIZE // 2]
    assert front < centre < distance + 0.1                       # the face, in metres from the camera
    covered = alpha > 0.5
    assert np.all(depth[covered] < 5.0) and np.all(depth[alpha < 1e-3] == pytest.approx(1e10))


def test_resolution_percentage_and_crop_border(gh, helpers, avatar, tmp_path):
    helpers.setup_camera_scene(SIZE, distance=0.7)
    scene = bpy.context.scene
    full = helpers.read_png(_render_still(tmp_path, "full.png"))
    scene.render.resolution_percentage = 50
    half = helpers.read_png(_render_still(tmp_path, "half.png"))
    assert half.shape[:2] == (SIZE // 2, SIZE // 2)
    scene.render.resolution_percentage = 100
    scene.render.use_border = True
    scene.render.use_crop_to_border = True
    scene.render.border_min_x, scene.render.border_max_x = 0.25, 0.75
    scene.render.border_min_y, scene.render.border_max_y = 0.5, 1.0     # Blender's y is up: the top half
    crop = helpers.read_png(_render_still(tmp_path, "crop.png"))
    assert crop.shape[:2] == (SIZE // 2, SIZE // 2)
    # the region renders through a shifted camera: the same picture up to float summation order
    diff = np.abs(crop.astype(int) - full[: SIZE // 2, SIZE // 4: 3 * SIZE // 4].astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.05


def test_hidden_avatars_are_not_rendered_and_two_avatars_merge(gh, helpers, avatar, small_identity, tmp_path):
    helpers.setup_camera_scene(SIZE, distance=0.9, transparent=True)
    one = helpers.read_png(_render_still(tmp_path, "one.png"))[..., 3].astype(int)
    second = helpers.add_avatar(small_identity, name="Second")
    second.location = (0.2, 0.0, 0.0)
    two = helpers.read_png(_render_still(tmp_path, "two.png"))[..., 3].astype(int)
    assert (two > 0).sum() > (one > 0).sum() * 1.5
    second.hide_render = True
    hidden = helpers.read_png(_render_still(tmp_path, "hidden.png"))[..., 3].astype(int)
    assert np.abs(hidden - one).max() <= 1


def test_render_without_camera_reports_error(gh, helpers, avatar, tmp_path):
    scene = bpy.context.scene
    scene.render.engine = 'GAUSSIAN_HEADS'
    scene.render.filepath = str(tmp_path / "nocam.png")
    with pytest.raises(RuntimeError, match="camera"):
        bpy.ops.render.render(write_still=True)


def test_layered_action_fcurves_reach_render(gh, helpers, avatar, tmp_path, monkeypatch):
    """F-curves made with the layered Action API on ``gaussian_heads.expr[3].value`` and
    ``gaussian_heads.jaw`` are evaluated on the depsgraph objects render() reads, per frame."""
    helpers.setup_camera_scene(32, distance=0.7)
    avatar.animation_data_create()
    action = bpy.data.actions.new("Face")
    avatar.animation_data.action = action
    curves = {("gaussian_heads.expr[3].value", 0): (0.0, 1.0), ("gaussian_heads.jaw", 0): (0.0, 0.4)}
    for (path, index), (v1, v3) in curves.items():
        fc = action.fcurve_ensure_for_datablock(avatar, path, index=index)
        fc.keyframe_points.add(2)
        fc.keyframe_points.foreach_set("co", np.array([1, v1, 3, v3], np.float32))
        fc.keyframe_points.foreach_set("interpolation", np.full(2, 1, np.int32))   # LINEAR
        fc.update()
    render_engine = helpers.addon("render_engine")
    seen = []
    original = render_engine.head_params

    def spy(obj, identity):
        params = original(obj, identity)
        seen.append((bpy.context.scene.frame_current, float(params.expr[3]), float(params.jaw[0])))
        return params

    monkeypatch.setattr(render_engine, "head_params", spy)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 3
    scene.render.filepath = str(tmp_path / "layered_")
    assert bpy.ops.render.render(animation=True) == {'FINISHED'}
    assert [round(e, 4) for _, e, _ in seen] == [0.0, 0.5, 1.0]
    assert [round(j, 4) for _, _, j in seen] == [0.0, 0.2, 0.4]


def test_collection_instances_of_an_avatar_render(gh, helpers, avatar, tmp_path):
    helpers.setup_camera_scene(SIZE, distance=0.9, transparent=True)
    one = helpers.read_png(_render_still(tmp_path, "one.png"))[..., 3].astype(int)
    heads = bpy.data.collections.new("Heads")
    bpy.context.scene.collection.children.link(heads)
    heads.objects.link(avatar)
    bpy.context.scene.collection.objects.unlink(avatar)
    instancer = bpy.data.objects.new("Instancer", None)
    instancer.instance_type = 'COLLECTION'
    instancer.instance_collection = heads
    instancer.location = (0.2, 0.0, 0.0)
    bpy.context.scene.collection.objects.link(instancer)
    two = helpers.read_png(_render_still(tmp_path, "two.png"))[..., 3].astype(int)
    assert (two > 0).sum() > (one > 0).sum() * 1.5           # the original and the instance
    cols = np.where((two > 0).any(axis=0))[0]
    assert cols.max() > np.where((one > 0).any(axis=0))[0].max() + 10   # the instance sits to the right
