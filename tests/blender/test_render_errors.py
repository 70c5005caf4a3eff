"""Errors reach the user: a failing frame stops an animation render with the error and leaves no
image for it on disk (never a black PNG); the viewport draws its error over the view instead of
going silently blank (the text ``view_draw`` hands to ``blf``; bpy 5.0 cannot draw headless)."""

import types

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")


def _animate_scale(obj, scales):
    """Constant-interpolated scale keys, one per frame from 1."""
    for frame, scale in enumerate(scales, start=1):
        obj.scale = scale
        obj.keyframe_insert("scale", frame=frame)
    for fc in obj.animation_data.action.layers[0].strips[0].channelbags[0].fcurves:
        for key in fc.keyframe_points:
            key.interpolation = 'CONSTANT'


def _render_animation(tmp_path, frames):
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = frames
    out = tmp_path / "frames"
    out.mkdir()
    scene.render.filepath = str(out / "f_")
    return out, lambda: bpy.ops.render.render(animation=True)


def test_non_uniform_scale_stops_the_animation_without_a_black_frame(gh, helpers, avatar, tmp_path):
    helpers.setup_camera_scene(32, distance=0.7)
    _animate_scale(avatar, [(1, 1, 1), (1, 2, 1), (1, 1, 1)])
    out, render = _render_animation(tmp_path, (1, 3))
    with pytest.raises(RuntimeError, match="Gaussian Heads: Gaussian avatars support only uniform object scale"):
        render()
    assert sorted(p.name for p in out.iterdir()) == ["f_0001.png"]     # frames 2 and 3: nothing
    assert helpers.read_png(out / "f_0001.png")[..., :3].max() > 0


def test_corrupt_identity_data_stops_the_animation(gh, helpers, avatar, tmp_path):
    helpers.setup_camera_scene(32, distance=0.7)
    attribute = avatar.data.attributes["gh.binding.face_idx"]
    faces = np.zeros(len(attribute.data), np.int32)
    attribute.data.foreach_get("value", faces)
    faces[::7] = 10 ** 8                                  # damaged in the file
    attribute.data.foreach_set("value", faces)
    helpers.addon("operators.storage").clear_cache()
    out, render = _render_animation(tmp_path, (1, 2))
    with pytest.raises(RuntimeError, match="binding refers to faces outside the head model"):
        render()
    assert list(out.iterdir()) == []


def test_an_unexpected_exception_stops_the_animation(gh, helpers, avatar, tmp_path, monkeypatch):
    """A bug (not a GaussianHeadsError) in frame 2: before, Blender wrote that frame black."""
    helpers.setup_camera_scene(32, distance=0.7)
    render_engine = helpers.addon("render_engine")
    original = render_engine.avatar_instances

    def failing(depsgraph):
        if depsgraph.scene.frame_current == 2:
            raise IndexError("index 9 is out of bounds")
        return original(depsgraph)

    monkeypatch.setattr(render_engine, "avatar_instances", failing)
    out, render = _render_animation(tmp_path, (1, 3))
    with pytest.raises(RuntimeError, match=r"unexpected IndexError \(index 9 is out of bounds\)"):
        render()
    assert sorted(p.name for p in out.iterdir()) == ["f_0001.png"]


def test_still_render_error_writes_no_file(gh, helpers, avatar, tmp_path):
    helpers.setup_camera_scene(32, distance=0.7)
    avatar.scale = (1, 1, 3)
    bpy.context.scene.render.filepath = str(tmp_path / "still.png")
    with pytest.raises(RuntimeError, match="uniform object scale"):
        bpy.ops.render.render(write_still=True)
    assert not (tmp_path / "still.png").exists()


def _viewport_engine(helpers, monkeypatch):
    """The engine's viewport methods on a stand-in instance (Blender creates the real ones);
    the GPU calls are replaced by recorders."""
    render_engine = helpers.addon("render_engine")
    sr = helpers.addon("engine.scene_render")
    engine = types.SimpleNamespace(_viewport=sr.ViewportRenderer(), _viewport_error="", _refine_timer=None,
                                   _schedule_refine=lambda: None)
    drawn = {"pixels": [], "text": []}
    monkeypatch.setattr(render_engine, "_draw_pixels", lambda eng, sc, frame, w, h: drawn["pixels"].append(frame))
    monkeypatch.setattr(render_engine, "_draw_text", lambda lines, h: drawn["text"].append(lines))
    cam = bpy.context.scene.camera
    cam_inv = np.array(cam.matrix_world.inverted(), np.float64)
    window = np.array(cam.calc_matrix_camera(bpy.context.evaluated_depsgraph_get(), x=160, y=120), np.float64)
    context = types.SimpleNamespace(region=types.SimpleNamespace(width=160, height=120),
                                    region_data=types.SimpleNamespace(view_matrix=cam_inv, window_matrix=window,
                                                                      view_perspective="PERSP"),
                                    space_data=types.SimpleNamespace(use_render_border=False))
    return render_engine.GaussianHeadsRenderEngine, engine, context, drawn


def test_viewport_draws_the_error_instead_of_a_blank_view(gh, helpers, avatar, monkeypatch):
    helpers.setup_camera_scene(32, distance=0.7)
    cls, engine, context, drawn = _viewport_engine(helpers, monkeypatch)
    avatar.scale = (1, 2, 1)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    cls.view_update(engine, bpy.context, depsgraph)
    cls.view_draw(engine, context, depsgraph)
    lines = drawn["text"][-1]
    assert lines[0].startswith("Gaussian Heads:")
    assert "Gaussian avatars support only uniform object scale" in " ".join(lines)
    assert all(len(line) <= 160 // 7 for line in lines)  # wrapped to the region
    assert drawn["pixels"][-1].pixels.reshape(-1, 4)[:, :3].max() == 0.0   # the black world only

    avatar.scale = (2, 2, 2)                               # fixed: the error goes away
    depsgraph = bpy.context.evaluated_depsgraph_get()
    cls.view_update(engine, bpy.context, depsgraph)
    n_text = len(drawn["text"])
    cls.view_draw(engine, context, depsgraph)
    assert len(drawn["text"]) == n_text and engine._viewport_error == ""
    assert drawn["pixels"][-1].pixels.reshape(-1, 4)[:, :3].max() > 0.0    # the avatar


def test_viewport_draw_failure_is_drawn(gh, helpers, avatar, monkeypatch):
    """An error while rasterizing the view (here a renderer bug) is drawn, with no stale pixels."""
    helpers.setup_camera_scene(32, distance=0.7)
    cls, engine, context, drawn = _viewport_engine(helpers, monkeypatch)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(engine._viewport, "next_frame", broken)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    cls.view_update(engine, bpy.context, depsgraph)
    cls.view_draw(engine, context, depsgraph)
    assert drawn["pixels"] == []
    assert "unexpected ZeroDivisionError (division by zero)" in " ".join(drawn["text"][-1])
