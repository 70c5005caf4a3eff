"""Splat files in Blender: import (menu and drag-and-drop), export, 5.3 attribute layout, our
engine rendering splat objects with avatars in one depth order, avatar bounds (bpy 5.0)."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

NAMES_53 = {"position": 'FLOAT_VECTOR', "scale": 'FLOAT_VECTOR', "rotation": 'QUATERNION'}


def _engine(helpers, name):
    return helpers.addon(name)


def _random_set(helpers, n=300, degree=2, seed=0, centre=(0.0, 0.0, 0.0)):
    GaussianSet = _engine(helpers, "engine.avatar.gaussian_set").GaussianSet
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    sh = rng.uniform(-0.8, 0.8, (n, (degree + 1) ** 2, 3))
    return GaussianSet(rng.normal(0, 0.2, (n, 3)) + centre, rng.uniform(-6, -3, (n, 3)), q,
                       rng.normal(0, 2, n), sh)


def _wall(helpers, rgb, x_range, z_range, step=0.01):
    """Opaque round splats on a grid in the object's x-z plane (y = 0), one colour."""
    gs = _engine(helpers, "engine.avatar.gaussian_set")
    xs, zs = np.meshgrid(np.arange(*x_range, step), np.arange(*z_range, step))
    n = xs.size
    means = np.stack([xs.ravel(), np.zeros(n), zs.ravel()], 1)
    sh = np.broadcast_to(gs.rgb_to_sh_dc(np.asarray(rgb, np.float32)), (n, 1, 3))
    return gs.GaussianSet(means, np.full((n, 3), np.log(step * 0.8)), np.tile([1.0, 0, 0, 0], (n, 1)),
                          np.full(n, 8.0), sh)


def _import(path):
    return bpy.ops.gaussian_heads.import_splats(filepath=str(path))


def _splat_objects(helpers):
    splat_data = helpers.addon("splat_data")
    return [o for o in bpy.data.objects if splat_data.is_splat_object(o)]


@pytest.mark.parametrize("ext", ["ply", "spz", "splat"])
def test_import_gives_blender_53_layout(gh, helpers, tmp_path, ext):
    io = _engine(helpers, "engine.io")
    g = _random_set(helpers, degree=0 if ext == "splat" else 2)
    io.write_splats(tmp_path / f"cloud.{ext}", g)
    assert _import(tmp_path / f"cloud.{ext}") == {'FINISHED'}
    obj = bpy.data.objects["cloud"]
    assert obj.type == 'POINTCLOUD' and len(obj.data.points) == len(g)
    types = {a.name: a.data_type for a in obj.data.attributes}
    assert {k: types[k] for k in NAMES_53} == NAMES_53
    assert types["radiance:base"] in ('FLOAT4', 'FLOAT_COLOR')   # FLOAT4 exists from 5.3 on
    assert [f"radiance:sh_{k}" in types for k in range(9)] == [ext != "splat"] * 8 + [False]
    back = helpers.addon("splat_data").read_gaussians(obj.data)
    want = io.read_splats(tmp_path / f"cloud.{ext}")
    if ext == "spz":   # placed Z-up, as Blender 5.3's own SPZ importer does (checked on bpy 5.3.0)
        frame = _engine(helpers, "engine.io.spz").BLENDER_FROM_RDF
        np.testing.assert_array_equal(frame[:3, :3] @ [0, 1, 0], [0, 0, -1])
        want = want.transformed(frame)
    np.testing.assert_allclose(back.means, want.means, atol=1e-7)
    np.testing.assert_allclose(back.log_scales, want.log_scales, atol=1e-5)
    np.testing.assert_allclose(back.quats, want.quats / np.linalg.norm(want.quats, axis=1, keepdims=True),
                               atol=1e-6)
    np.testing.assert_allclose(back.opacities, want.opacities, atol=1e-6)
    np.testing.assert_allclose(back.sh, want.sh, atol=1e-6)
    assert bpy.context.active_object == obj
    # bounds are right at once (Frame Selected works)
    box = np.array([tuple(v) for v in obj.bound_box])
    assert (box.min(0) <= want.means.min(0) + 1e-6).all() and (box.max(0) >= want.means.max(0) - 1e-6).all()


def test_drag_and_drop_imports_several_files(gh, helpers, tmp_path):
    io = _engine(helpers, "engine.io")
    io.write_splats(tmp_path / "a.splat", _random_set(helpers, degree=0, seed=1))
    io.write_splats(tmp_path / "b.spz", _random_set(helpers, degree=1, seed=2))
    handler = helpers.addon("operators.splat_io").GAUSSIAN_HEADS_FH_splats
    assert handler.bl_import_operator == "gaussian_heads.import_splats"
    assert set(handler.bl_file_extensions.split(";")) == {".ply", ".spz", ".splat"}
    result = bpy.ops.gaussian_heads.import_splats(directory=str(tmp_path),
                                                  files=[{"name": "a.splat"}, {"name": "b.spz"}])
    assert result == {'FINISHED'}
    assert sorted(o.name for o in _splat_objects(helpers)) == ["a", "b"]


def test_a_bad_file_leaves_the_scene_untouched(gh, helpers, tmp_path):
    io = _engine(helpers, "engine.io")
    io.write_splats(tmp_path / "good.ply", _random_set(helpers))
    (tmp_path / "bad.spz").write_bytes((tmp_path / "good.ply").read_bytes()[:0] + b"\x1f\x8b\x08junk")
    before = (len(bpy.data.objects), len(bpy.data.pointclouds))
    with pytest.raises(RuntimeError, match="bad.spz"):
        bpy.ops.gaussian_heads.import_splats(directory=str(tmp_path),
                                             files=[{"name": "good.ply"}, {"name": "bad.spz"}])
    assert (len(bpy.data.objects), len(bpy.data.pointclouds)) == before


@pytest.mark.parametrize("fmt", ["PLY", "SPZ"])
def test_export_then_import_round_trips(gh, helpers, tmp_path, fmt):
    """Export a splat object, import the file again: the same splats (SPZ: within its steps)."""
    io = _engine(helpers, "engine.io")
    splat_data = helpers.addon("splat_data")
    g = _random_set(helpers, degree=2)
    io.write_splats(tmp_path / "in.ply", g)
    _import(tmp_path / "in.ply")
    source = bpy.context.active_object
    out = tmp_path / f"out.{fmt.lower()}"
    assert bpy.ops.gaussian_heads.export_splats(filepath=str(out), file_format=fmt) == {'FINISHED'}
    assert io.detect_format(out).name == fmt.lower()
    _import(out)
    a, b = splat_data.read_gaussians(source.data), splat_data.read_gaussians(bpy.context.active_object.data)
    assert bpy.context.active_object.name == "out" and len(b) == len(a) and b.sh_degree == 2
    exact = fmt == "PLY"
    np.testing.assert_allclose(b.means, a.means, atol=1e-6 if exact else 0.5 / 4096 + 1e-6)
    np.testing.assert_allclose(b.opacities, a.opacities, atol=1e-6 if exact else 0.5 / 255 + 1e-6)
    np.testing.assert_allclose(b.log_scales, a.log_scales, atol=1e-5 if exact else 1 / 32 + 1e-5)
    np.testing.assert_allclose(b.sh[:, 0], a.sh[:, 0], atol=1e-6 if exact else 0.5 / (0.15 * 255) + 1e-5)
    # SPZ: the file holds the SH turned to SPZ's axes (a quarter turn mixes each band), so the
    # quantisation error of a band spreads over its coefficients: bound by sqrt(band size) steps
    np.testing.assert_allclose(b.sh[:, 1:4], a.sh[:, 1:4], atol=1e-6 if exact else 3 ** 0.5 * 4.5 / 128)
    np.testing.assert_allclose(b.sh[:, 4:], a.sh[:, 4:], atol=1e-6 if exact else 5 ** 0.5 * 8.5 / 128)


def test_export_avatar_is_its_current_pose(gh, helpers, avatar, tmp_path):
    io = _engine(helpers, "engine.io")
    frames = _engine(helpers, "engine.avatar.frames")
    head_params = helpers.addon("render_engine").head_params
    avatar.gaussian_heads.jaw = (0.3, 0.0, 0.0)
    avatar.location = (1.0, 2.0, 3.0)
    bpy.context.view_layer.update()
    bpy.ops.gaussian_heads.export_splats(filepath=str(tmp_path / "local.ply"), space='LOCAL')
    bpy.ops.gaussian_heads.export_splats(filepath=str(tmp_path / "world.ply"), space='WORLD')
    identity = helpers.addon("operators.storage").load_identity(avatar)
    posed = identity.pose(head_params(avatar, identity))
    neutral = identity.pose(identity.neutral_params())
    local = io.read_splats(tmp_path / "local.ply")
    np.testing.assert_allclose(local.means, posed.means, atol=1e-6)
    assert np.abs(local.means - neutral.means).max() > 1e-3          # the jaw moved
    world = io.read_splats(tmp_path / "world.ply")
    matrix = np.array(avatar.matrix_world) @ frames.MODEL_TO_BLENDER
    np.testing.assert_allclose(world.means, posed.means @ matrix[:3, :3].T + matrix[:3, 3], atol=1e-5)


def test_bounds_span_the_head_right_after_sampling(gh):
    assert bpy.ops.gaussian_heads.sample_identity(n_gaussians=2000, seed=5) == {'FINISHED'}
    obj = bpy.context.active_object
    pos = np.empty(len(obj.data.points) * 3, np.float32)
    obj.data.attributes["position"].data.foreach_get("vector", pos)
    pos = pos.reshape(-1, 3)
    box = np.array([tuple(v) for v in obj.bound_box])
    assert (np.ptp(pos, 0) > 0.1).all()                                # a head, ~20 cm
    np.testing.assert_allclose(box.min(0), pos.min(0), atol=5e-3)      # within a display radius
    np.testing.assert_allclose(box.max(0), pos.max(0), atol=5e-3)


def test_engine_renders_splat_objects_with_avatars_in_depth_order(gh, helpers, avatar, tmp_path):
    """Red wall in front of the head's left half, green wall behind everything: the left half is
    red over the head, the head hides the green behind it on the right."""
    size = 64
    helpers.setup_camera_scene(size, distance=0.6)
    splat_data = helpers.addon("splat_data")
    collection = bpy.context.scene.collection
    front = splat_data.create_splat_object("front", _wall(helpers, (1, 0, 0), (-0.4, 0.0), (-0.4, 0.4)), collection)
    back = splat_data.create_splat_object("back", _wall(helpers, (0, 1, 0), (-0.4, 0.4), (-0.4, 0.4)), collection)
    front.location.y = -0.25             # object transforms place splat objects (camera at y = -0.6)
    back.location.y = 0.35
    scene = bpy.context.scene
    scene.render.filepath = str(tmp_path / "mix.png")
    assert bpy.ops.render.render(write_still=True) == {'FINISHED'}
    image = helpers.read_png(tmp_path / "mix.png")[..., :3].astype(int)
    red = (image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] < 60)
    green = (image[..., 1] > 200) & (image[..., 0] < 60) & (image[..., 2] < 60)
    mid = size // 2
    left, right = np.s_[:, : mid - 2], np.s_[:, mid + 2:]
    assert red[left].mean() > 0.95 and not red[right].any()           # the front wall covers the left
    centre = np.s_[mid - 6: mid + 6, mid + 3: mid + 9]                 # the head's right cheek
    assert not green[centre].any() and not red[centre].any()           # head in front of the back wall
    assert green[right].mean() > 0.3                                   # back wall around the head
    # moving the front wall behind the back wall hides it: the order follows the transforms
    front.location.y = 0.6
    scene.render.filepath = str(tmp_path / "moved.png")
    assert bpy.ops.render.render(write_still=True) == {'FINISHED'}
    image = helpers.read_png(tmp_path / "moved.png")[..., :3].astype(int)
    assert not ((image[..., 0] > 200) & (image[..., 1] < 60)).any()


def test_avatar_display_follows_the_frame(gh, helpers, avatar, monkeypatch, tmp_path):
    """Solid view's points (the display ``position``) show the pose at the current frame."""
    frames = _engine(helpers, "engine.avatar.frames")
    head_params = helpers.addon("render_engine").head_params
    avatar_pose = helpers.addon("avatar_pose")
    assert avatar_pose.pose_on_frame_change in bpy.app.handlers.frame_change_post
    assert bpy.app.background and not avatar_pose.POSE_IN_BACKGROUND  # off where no one looks
    monkeypatch.setattr(avatar_pose, "POSE_IN_BACKGROUND", True)       # as in an interactive session
    scene = bpy.context.scene
    avatar.gaussian_heads.jaw = (0.0, 0.0, 0.0)
    avatar.keyframe_insert("gaussian_heads.jaw", frame=1)
    avatar.gaussian_heads.jaw = (0.4, 0.0, 0.0)
    avatar.keyframe_insert("gaussian_heads.jaw", frame=10)

    def positions():
        out = np.empty(len(avatar.data.points) * 3, np.float32)
        avatar.data.attributes["position"].data.foreach_get("vector", out)
        return out.reshape(-1, 3)

    scene.frame_set(1)
    closed = positions()
    scene.frame_set(10)
    opened = positions()
    assert np.abs(opened - closed).max() > 5e-3                        # the jaw moved the points
    identity = helpers.addon("operators.storage").load_identity(avatar)
    evaluated = avatar.evaluated_get(bpy.context.evaluated_depsgraph_get())
    assert abs(evaluated.gaussian_heads.jaw[0] - 0.4) < 1e-6
    want = identity.pose(head_params(evaluated, identity)).means @ frames.MODEL_TO_BLENDER[:3, :3].T
    np.testing.assert_allclose(opened, want, atol=1e-5)
    box = np.array([tuple(v) for v in avatar.bound_box])                # bounds follow the pose
    np.testing.assert_allclose(box.min(0), opened.min(0), atol=5e-3)
    np.testing.assert_allclose(box.max(0), opened.max(0), atol=5e-3)
    scene.frame_set(1)
    np.testing.assert_allclose(positions(), closed, atol=1e-6)
    # an animation render leaves the data alone (rewriting it under the render made every frame
    # render the same pose): frames 1 and 10 differ
    helpers.setup_camera_scene(64, distance=0.7)
    scene.frame_start, scene.frame_end, scene.frame_step = 1, 10, 9
    scene.render.filepath = str(tmp_path / "anim_")
    assert bpy.ops.render.render(animation=True) == {'FINISHED'}
    first, last = (helpers.read_png(tmp_path / f"anim_{f:04d}.png").astype(int) for f in (1, 10))
    assert first[..., :3].max() > 50 and np.abs(first - last).mean() > 0.05
