"""Composite with Cycles (operators/composite.py) in bpy 5.0: real renders, tiny and few samples.

The scene: the avatar at the origin, the camera 0.6 m in front of it, and a vertical wall
(emission shader: noise-free at 2 samples) through the head at a steep angle, so its left part is
in front of the head and its right part behind it; the world shows on the far right. Each layer is
also rendered on its own (Cycles with compositing off, the companion scene by itself) so the
composite can be checked against them pixel by pixel.
"""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
from tests.installed.scene_setup import emission_quad  # noqa: E402

SIZE = 48
WALL_SLOPE = 4.0                      # the wall is the plane y = 4 x (Blender metres)
WALL_COLOUR = (0.05, 0.2, 0.8)        # scene-linear emission
WORLD_COLOUR = (0.3, 0.3, 0.3)


def _composite_module(helpers):
    return helpers.addon("operators.composite")


def _scene(helpers):
    helpers.setup_camera_scene(SIZE, distance=0.6)
    scene = bpy.context.scene
    scene.render.engine = 'CYCLES'
    scene.cycles.device = 'CPU'
    scene.cycles.samples = 2
    scene.cycles.use_denoising = False
    scene.world.color = WORLD_COLOUR
    scene.render.film_transparent = False
    return scene


def _add_quad(name, corners, colour=WALL_COLOUR):
    return emission_quad(bpy.context.scene, name, colour, corners, material_name="emit")


def _add_wall():
    k = WALL_SLOPE
    return _add_quad("wall", [(-0.3, -0.3 * k, -0.5), (0.3, 0.3 * k, -0.5), (0.3, 0.3 * k, 0.5),
                              (-0.3, -0.3 * k, 0.5)])


def _exr_settings(scene, multilayer: bool):
    settings = scene.render.image_settings
    settings.media_type = 'MULTI_LAYER_IMAGE' if multilayer else 'IMAGE'
    settings.file_format = 'OPEN_EXR_MULTILAYER' if multilayer else 'OPEN_EXR'
    settings.color_mode = 'RGBA'
    settings.exr_codec = 'NONE'
    settings.color_depth = '32'


def _render(helpers, scene, path, multilayer=True) -> dict:
    """{pass: [H, W] or [H, W, 4]} of ``scene`` rendered to an EXR (top row first)."""
    _exr_settings(scene, multilayer)
    scene.render.filepath = str(path)
    assert bpy.ops.render.render(write_still=True, scene=scene.name) == {'FINISHED'}
    channels = helpers.read_exr(path)
    if not multilayer:
        return {"rgba": np.stack([channels[c] for c in "RGBA"], axis=-1)}

    def named(suffix):
        return next(v for k, v in channels.items() if k.endswith(suffix))
    return {"rgba": np.stack([named(f"Combined.{c}") for c in "RGBA"], axis=-1), "depth": named("Depth.Z")}


def _layers(helpers, scene, companion, tmp_path):
    """The Cycles layer (compositing off) and the Gaussian Heads layer, each on its own."""
    scene.render.use_compositing = False
    cycles = _render(helpers, scene, tmp_path / "cycles.exr")
    scene.render.use_compositing = True
    ours = _render(helpers, companion, tmp_path / "ours.exr")
    return cycles, ours


def _expected(helpers, cycles, ours):
    """The reference Z Combine (engine/composite.py) of the two layers, ours converted to straight
    alpha as the node tree does."""
    z_combine = helpers.addon("engine.composite").z_combine
    alpha = ours["rgba"][..., 3:]
    straight = np.concatenate([np.where(alpha > 1e-6, ours["rgba"][..., :3] / np.maximum(alpha, 1e-6), 0), alpha], -1)
    return z_combine(straight, ours["depth"], cycles["rgba"], cycles["depth"])


def _snapshot(helpers, scene, objects):
    """What set-up may change and removal must restore."""
    tree = scene.compositing_node_group
    flags = helpers.addon("engine.composite").RAY_VISIBILITY
    return {
        "scenes": sorted(s.name for s in bpy.data.scenes),
        "groups": sorted(g.name for g in bpy.data.node_groups),
        "tree": None if tree is None else tree.name,
        "nodes": None if tree is None else sorted((n.name, n.bl_idname) for n in tree.nodes),
        "links": None if tree is None else sorted((l.from_node.name, l.from_socket.identifier, l.to_node.name,
                                                   l.to_socket.identifier) for l in tree.links),
        "use_compositing": scene.render.use_compositing,
        "use_pass_z": [layer.use_pass_z for layer in scene.view_layers],
        "visibility": {o.name: [getattr(o, f) for f in flags] + [o.hide_render] for o in objects},
        "animation": {o.name: None if o.animation_data is None else len(o.animation_data.drivers) for o in objects},
        "keys": sorted(k for k in scene.keys() if k.startswith("gaussian_heads")),
    }


def test_composite_occludes_both_ways(gh, helpers, avatar, tmp_path):
    scene = _scene(helpers)
    _add_wall()
    assert bpy.ops.gaussian_heads.composite_setup() == {'FINISHED'}
    companion = _composite_module(helpers).companion_of(scene)
    assert companion is not None and companion.render.engine == 'GAUSSIAN_HEADS'
    assert set(companion.collection.objects.keys()) == {avatar.name, scene.camera.name}

    composite = _render(helpers, scene, tmp_path / "composite.exr", multilayer=False)["rgba"]
    cycles, ours = _layers(helpers, scene, companion, tmp_path)
    head = ours["rgba"][..., 3] > 0.95
    head_front = head & (ours["depth"] < cycles["depth"] - 0.05)
    wall_front = head & (cycles["depth"] < ours["depth"] - 0.05)
    assert head_front.sum() > 30 and wall_front.sum() > 30, "the wall does not cut through the head"
    rgb = composite[..., :3]
    wall = np.array(WALL_COLOUR, np.float32)
    # the wall hides the head where it is nearer ...
    assert np.abs(rgb[wall_front] - wall).max() < 0.02
    # ... and the head hides the wall where the head is nearer: premultiplied "over"
    over = ours["rgba"][..., :3] + (1.0 - ours["rgba"][..., 3:]) * cycles["rgba"][..., :3]
    assert np.abs(rgb[head_front] - over[head_front]).max() < 0.02
    assert np.abs(rgb[head_front] - wall).max(axis=-1).mean() > 0.1

    # every pixel: the reference Z Combine (anti-aliasing off: no halo, exact)
    assert np.abs(rgb - _expected(helpers, cycles, ours)).max() < 2e-3

    # colour management: the composite PNG (main scene, 'Standard') shows an opaque head pixel
    # exactly as our engine's own PNG does: one linear conversion, no double conversion
    for render_scene, name in ((scene, "composite.png"), (companion, "ours.png")):
        render_scene.render.image_settings.media_type = 'IMAGE'
        render_scene.render.image_settings.file_format = 'PNG'
        render_scene.render.filepath = str(tmp_path / name)
        assert bpy.ops.render.render(write_still=True, scene=render_scene.name) == {'FINISHED'}
    composite_png = helpers.read_png(tmp_path / "composite.png")[..., :3].astype(int)
    ours_png = helpers.read_png(tmp_path / "ours.png")[..., :3].astype(int)
    opaque = head_front & (ours["rgba"][..., 3] > 0.999)
    assert opaque.sum() > 20
    assert np.abs(composite_png[opaque] - ours_png[opaque]).max() <= 1

    # the avatar is not in the Cycles layer: it equals a render without the avatar (which Cycles
    # draws as spheres once our driver and ray-visibility flags are gone)
    scene.render.use_compositing = False
    avatar.hide_render = True
    without = _render(helpers, scene, tmp_path / "without.exr")
    avatar.driver_remove("hide_render")
    avatar.hide_render = False
    avatar.visible_camera = True
    spheres = _render(helpers, scene, tmp_path / "spheres.exr")
    assert np.abs(cycles["rgba"] - without["rgba"]).max() < 1e-6
    assert np.abs(spheres["rgba"] - without["rgba"]).max() > 0.1


def test_depth_units_match_cycles_z_pass(gh, helpers, tmp_path):
    """A splat plane (ours) and a mesh plane (Cycles) at the same place 0.8 m along the view axis:
    the two Depth passes agree, and both are distance along the axis (not along the ray)."""
    scene = _scene(helpers)
    GaussianSet = helpers.addon("engine.avatar.gaussian_set").GaussianSet
    splat_data = helpers.addon("splat_data")
    distance, half = 0.8, 0.5
    xs = np.linspace(-half, half, 101, dtype=np.float32)
    gx, gz = np.meshgrid(xs, xs)
    n = gx.size
    means = np.stack([gx.ravel(), np.full(n, distance - 0.6, np.float32), gz.ravel()], axis=1)
    scales = np.log(np.tile(np.array([[0.008, 1e-4, 0.008]], np.float32), (n, 1)))
    quats = np.tile(np.array([[1.0, 0.0, 0.0, 0.0]], np.float32), (n, 1))
    splats = GaussianSet(means, scales, quats, np.full(n, 6.0, np.float32), np.zeros((n, 1, 3), np.float32))
    splat_data.create_splat_object("splat plane", splats, scene.collection)
    y = distance - 0.6
    _add_quad("mesh plane", [(-half, y, -half), (half, y, -half), (half, y, half), (-half, y, half)])
    assert bpy.ops.gaussian_heads.composite_setup() == {'FINISHED'}
    companion = _composite_module(helpers).companion_of(scene)
    cycles, ours = _layers(helpers, scene, companion, tmp_path)
    covered = (ours["rgba"][..., 3] > 0.99) & (cycles["depth"] < 100)
    assert covered.mean() > 0.9
    assert np.abs(ours["depth"][covered] - cycles["depth"][covered]).max() < 2e-3
    # corners: the view-axis distance (0.8), not the ray length (0.8 / cos ~ 0.86 there)
    for depth in (ours["depth"], cycles["depth"]):
        assert depth[0, 0] == pytest.approx(distance, abs=2e-3)
        assert depth[SIZE // 2, SIZE // 2] == pytest.approx(distance, abs=2e-3)


@pytest.mark.parametrize("user_tree", [False, True], ids=["no_compositor", "user_compositor"])
def test_remove_restores_the_scene(gh, helpers, avatar, user_tree):
    scene = _scene(helpers)
    wall = _add_wall()
    if user_tree:   # a user's compositor: Render Layers -> Invert -> Group Output, and a Viewer
        tree = bpy.data.node_groups.new("Mine", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out='OUTPUT', socket_type='NodeSocketColor')
        layers, invert = tree.nodes.new("CompositorNodeRLayers"), tree.nodes.new("CompositorNodeInvert")
        output, viewer = tree.nodes.new("NodeGroupOutput"), tree.nodes.new("CompositorNodeViewer")
        tree.links.new(layers.outputs["Image"], invert.inputs["Color"])
        tree.links.new(invert.outputs[0], output.inputs[0])
        tree.links.new(layers.outputs["Image"], viewer.inputs[0])
        scene.compositing_node_group = tree
    objects = [avatar, wall]
    before = _snapshot(helpers, scene, objects)
    assert bpy.ops.gaussian_heads.composite_setup() == {'FINISHED'}
    during = _snapshot(helpers, scene, objects)
    assert during != before
    assert not any(during["visibility"][avatar.name][:-1]) and all(during["visibility"][wall.name][:-1])
    assert during["animation"] == {avatar.name: 1, wall.name: None}     # the hide_render driver
    assert during["use_pass_z"] == [True]
    if user_tree:   # our Z Combine now sits between the layer and both of the user's nodes
        fed = {(link[0], link[2]) for link in during["links"]}
        assert {("Gaussian Heads Z Combine", invert.name), ("Gaussian Heads Z Combine", viewer.name)} <= fed
        assert (layers.name, invert.name) not in fed and (layers.name, viewer.name) not in fed
    assert bpy.ops.gaussian_heads.composite_remove() == {'FINISHED'}
    assert _snapshot(helpers, scene, objects) == before


def test_damaged_record_changes_nothing(gh, helpers, avatar):
    scene = _scene(helpers)
    assert bpy.ops.gaussian_heads.composite_setup() == {'FINISHED'}
    composite = _composite_module(helpers)
    scene[composite.RECORD_KEY] = '{"view_layer": 3}'
    before = _snapshot(helpers, scene, [avatar])
    with pytest.raises(RuntimeError, match="composite record is damaged"):
        bpy.ops.gaussian_heads.composite_remove()
    assert _snapshot(helpers, scene, [avatar]) == before


def test_animation_render_writes_composited_frames(gh, helpers, avatar, tmp_path):
    """What ``blender -b file.blend -a`` runs (the saved file opened, ``render(animation=True)``):
    each frame is composited at its own frame, and the companion follows a resolution changed
    after set-up."""
    scene = _scene(helpers)
    _add_wall()
    assert bpy.ops.gaussian_heads.composite_setup() == {'FINISHED'}
    for frame, z in ((1, 0.04), (2, -0.04)):   # the head moves down between the frames
        avatar.location.z = z
        avatar.keyframe_insert("location", frame=frame)
    size = SIZE - 8
    scene.render.resolution_x = scene.render.resolution_y = size   # synced by the render_pre handler
    scene.frame_start, scene.frame_end = 1, 2
    _exr_settings(scene, multilayer=False)
    scene.render.filepath = str(tmp_path / "frame_")
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "composite.blend"))
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "composite.blend"))
    scene = bpy.data.scenes["Scene"]
    assert bpy.ops.render.render(animation=True) == {'FINISHED'}
    frames = []
    for frame in (1, 2):
        channels = helpers.read_exr(tmp_path / f"frame_{frame:04d}.exr")
        frames.append(np.stack([channels[c] for c in "RGB"], axis=-1))
    assert all(f.shape == (size, size, 3) for f in frames)
    assert np.abs(frames[0] - frames[1]).max() > 0.2      # the head moved

    # each frame is the Z Combine of that frame's layers, rendered one by one
    companion = _composite_module(helpers).companion_of(scene)
    assert companion.render.resolution_x == size
    for frame, image in zip((1, 2), frames):
        scene.frame_set(frame)
        cycles, ours = _layers(helpers, scene, companion, tmp_path)
        assert companion.frame_current == frame
        head = ours["rgba"][..., 3] > 0.95
        assert (head & (ours["depth"] < cycles["depth"] - 0.05)).sum() > 20      # head in front
        assert (head & (cycles["depth"] < ours["depth"] - 0.05)).sum() > 20      # wall in front
        assert np.abs(image - _expected(helpers, cycles, ours)).max() < 2e-3


@pytest.mark.parametrize("engine", ['BLENDER_WORKBENCH',
                                    pytest.param('BLENDER_EEVEE', marks=pytest.mark.slow)])  # ~40 s: software GL
def test_other_engines_leave_the_avatar_out(gh, helpers, avatar, tmp_path, engine):
    """Workbench ignores ray visibility: the per-scene hide_render driver keeps the avatar's
    points out of its layer (and our engine still renders it in the companion); EEVEE too."""
    scene = _scene(helpers)
    scene.render.engine = engine
    _add_wall()
    assert bpy.ops.gaussian_heads.composite_setup() == {'FINISHED'}
    companion = _composite_module(helpers).companion_of(scene)
    bpy.context.evaluated_depsgraph_get()      # the UI's depsgraph writes the driven value back
    cycles, ours = _layers(helpers, scene, companion, tmp_path)
    assert (ours["rgba"][..., 3] > 0.95).sum() > 100
    scene.render.use_compositing = False
    avatar.driver_remove("hide_render")
    avatar.hide_render = True
    without = _render(helpers, scene, tmp_path / "without.exr")
    avatar.hide_render = False
    avatar.visible_camera = True     # EEVEE honours the ray flags: without them it draws the points
    with_points = _render(helpers, scene, tmp_path / "points.exr")
    assert np.abs(cycles["rgba"] - without["rgba"]).max() < 1e-6
    assert np.abs(with_points["rgba"] - without["rgba"]).max() > 0.1


def test_render_panel_offers_set_up_then_removal(gh, helpers, avatar):
    import types

    from tests.blender.test_panels import _draw_all   # the recording layout: drawn props and operators exist

    scene = _scene(helpers)

    def drawn(engine):
        scene.render.engine = engine
        context = types.SimpleNamespace(scene=scene, engine=engine, view_layer=bpy.context.view_layer)
        return {entry[1] for entry in _draw_all(context, ["GAUSSIAN_HEADS_PT_render_composite"])}

    for engine in ('CYCLES', 'BLENDER_EEVEE', 'BLENDER_WORKBENCH'):
        assert "gaussian_heads.composite_setup" in drawn(engine)
    assert not drawn('GAUSSIAN_HEADS')
    scene.render.engine = 'CYCLES'
    assert bpy.ops.gaussian_heads.composite_setup() == {'FINISHED'}
    shown = drawn('CYCLES')
    assert {"gaussian_heads.composite_remove", "backend", "mode"} <= shown
    assert "gaussian_heads.composite_setup" not in shown
    assert "gaussian_heads.composite_remove" in drawn('GAUSSIAN_HEADS')   # the way back, any engine
    scene.render.engine = 'CYCLES'
    assert bpy.ops.gaussian_heads.composite_remove() == {'FINISHED'}
    avatar.gaussian_heads.is_avatar = False
    assert not drawn('CYCLES')                      # no avatar, no offer
    # set-up and removal are undoable steps (Blender's global undo: all state is ID data)
    for op in (bpy.types.GAUSSIAN_HEADS_OT_composite_setup, bpy.types.GAUSSIAN_HEADS_OT_composite_remove):
        assert {'REGISTER', 'UNDO'} <= set(op.bl_options)
