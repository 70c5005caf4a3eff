"""The interactive viewport up to the pixel buffer view_draw uploads (the GPU draw is untestable
headless), and the 3D view -> engine camera conversion checked against Blender's own projection."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")


def _view_of_camera(cam, scene, width, height):
    """(view_matrix, window_matrix) Blender uses for ``cam`` at ``width`` x ``height``."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    cam_eval = cam.evaluated_get(depsgraph)
    window = cam_eval.calc_matrix_camera(depsgraph, x=width, y=height)
    return np.array(cam_eval.matrix_world.inverted()), np.array(window)


@pytest.mark.parametrize("ortho", [False, True])
def test_camera_from_view_matches_blender_projection(gh, helpers, ortho):
    from bpy_extras.object_utils import world_to_camera_view
    import mathutils

    sr = helpers.addon("engine.scene_render")
    cam = helpers.setup_camera_scene(160)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 160, 120
    cam.data.shift_x, cam.data.shift_y = 0.1, -0.05
    cam.location = (0.05, -0.7, 0.03)
    if ortho:
        cam.data.type = 'ORTHO'
        cam.data.ortho_scale = 0.4
    view, window = _view_of_camera(cam, scene, 160, 120)
    camera = helpers.addon("engine.raster.blender_camera").camera_from_view(view, window, 160, 120)
    points = np.random.default_rng(0).uniform(-0.1, 0.1, (20, 3))
    ours = camera.project(points)
    for p, (u, v, z) in zip(points, ours):
        ndc = world_to_camera_view(scene, cam, mathutils.Vector(p))
        assert u == pytest.approx(ndc.x * 160, abs=1e-3)
        assert v == pytest.approx((1 - ndc.y) * 120, abs=1e-3)   # Blender y is up, ours down
        assert z == pytest.approx(ndc.z, abs=1e-6)
    assert camera.orthographic == ortho


def test_viewport_pixels_reduced_then_refined(gh, helpers):
    sr = helpers.addon("engine.scene_render")
    scenes = helpers.addon("engine.raster.scenes")
    cam = helpers.setup_camera_scene(96)
    view, window = _view_of_camera(cam, bpy.context.scene, 96, 80)

    now = [100.0]
    renderer = sr.ViewportRenderer(refine_after=0.3, clock=lambda: now[0])
    renderer.set_gaussians(scenes.head_shell(3000, 0))
    settings = sr.RenderSettings(backend="cpu", sh_degree=0)

    frame, wants_refine = renderer.next_frame(96, 80, view, window, scale=0.5, settings=settings)
    assert (frame.width, frame.height) == (48, 40)
    assert frame.pixels.dtype == np.float32 and frame.pixels.shape == (48 * 40 * 4,)
    assert wants_refine and not frame.refined
    low = frame.pixels.reshape(40, 48, 4)
    assert low[..., 3].max() > 0.9          # the head covers pixels
    assert low[0, 0, 3] == 0.0              # transparent corner (no world in the viewport buffer)

    # the same view again before the idle time: the cached low-resolution frame
    now[0] += 0.1
    again, wants_refine = renderer.next_frame(96, 80, view, window, scale=0.5, settings=settings)
    assert again is frame and wants_refine

    # idle long enough: the full resolution
    now[0] += 0.5
    full, wants_refine = renderer.next_frame(96, 80, view, window, scale=0.5, settings=settings)
    assert (full.width, full.height) == (96, 80) and full.refined and not wants_refine
    hi = full.pixels.reshape(80, 96, 4)
    # row 0 is the bottom: the head's vertical centre stays put, coverage agrees at both scales
    assert abs(hi[..., 3].mean() - low[..., 3].mean()) < 0.02

    # the view moves: back to the reduced resolution
    view2 = view.copy()
    view2[0, 3] += 0.01
    moved, wants_refine = renderer.next_frame(96, 80, view2, window, scale=0.5, settings=settings)
    assert (moved.width, moved.height) == (48, 40) and wants_refine


def test_viewport_pixels_bottom_row_first(gh, helpers):
    """A head placed in the upper half of the view lands in the upper rows of the image, which
    are the last rows of the buffer (Blender's row 0 is the bottom)."""
    sr = helpers.addon("engine.scene_render")
    scenes = helpers.addon("engine.raster.scenes")
    cam = helpers.setup_camera_scene(64)
    view, window = _view_of_camera(cam, bpy.context.scene, 64, 64)
    renderer = sr.ViewportRenderer()
    shell = scenes.head_shell(2000, 0)
    renderer.set_gaussians(shell.transformed(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0.12],
                                                       [0, 0, 0, 1.0]])))
    frame = renderer.frame_pixels(64, 64, view, window, refine=True,
                                  settings=sr.RenderSettings(backend="cpu", sh_degree=0))
    alpha = frame.pixels.reshape(64, 64, 4)[..., 3]
    assert alpha[32:].sum() > 4 * alpha[:32].sum()


def test_viewport_background_is_world_colour(gh, helpers):
    sr = helpers.addon("engine.scene_render")
    cam = helpers.setup_camera_scene(32)
    view, window = _view_of_camera(cam, bpy.context.scene, 32, 32)
    renderer = sr.ViewportRenderer()
    frame = renderer.frame_pixels(32, 32, view, window, refine=True,
                                  settings=sr.RenderSettings(backend="cpu"), background=(0.2, 0.3, 0.4))
    px = frame.pixels.reshape(32, 32, 4)
    assert np.allclose(px[..., :3], (0.2, 0.3, 0.4), atol=2e-3) and np.all(px[..., 3] == 1.0)


def test_engine_view_update_and_view_draw_up_to_the_gpu_call(gh, helpers, avatar, monkeypatch):
    """view_update poses the avatars, view_draw hands a reduced then a refined frame to the
    texture upload (replaced here: the gpu module cannot draw headless)."""
    import types

    render_engine = helpers.addon("render_engine")
    sr = helpers.addon("engine.scene_render")
    cam = helpers.setup_camera_scene(64, distance=0.7)
    scene = bpy.context.scene
    scene.gaussian_heads.viewport_scale = 0.25
    depsgraph = bpy.context.evaluated_depsgraph_get()
    now = [0.0]
    engine = types.SimpleNamespace(_viewport=sr.ViewportRenderer(clock=lambda: now[0]), _viewport_error="",
                                   _refine_timer=None, scheduled=0)
    engine._schedule_refine = lambda: setattr(engine, "scheduled", engine.scheduled + 1)
    drawn = []
    monkeypatch.setattr(render_engine, "_draw_pixels", lambda eng, sc, frame, w, h: drawn.append((frame, w, h)))

    cls = render_engine.GaussianHeadsRenderEngine
    cls.view_update(engine, bpy.context, depsgraph)
    assert engine._viewport_error == ""
    assert len(engine._viewport.gaussians) == len(avatar.data.points)

    view, window = _view_of_camera(cam, scene, 120, 80)
    context = types.SimpleNamespace(region=types.SimpleNamespace(width=120, height=80),
                                    region_data=types.SimpleNamespace(view_matrix=view, window_matrix=window,
                                                                      view_perspective="PERSP"),
                                    space_data=types.SimpleNamespace(use_render_border=False))
    cls.view_draw(engine, context, depsgraph)
    frame, w, h = drawn[-1]
    assert (frame.width, frame.height, w, h) == (30, 20, 120, 80) and engine.scheduled == 1
    now[0] += 1.0                                   # the refine timer fired after the view settled
    cls.view_draw(engine, context, depsgraph)
    frame, w, h = drawn[-1]
    assert (frame.width, frame.height) == (120, 80) and frame.refined and engine.scheduled == 1
    px = frame.pixels.reshape(80, 120, 4)
    assert px[..., 3].max() == 1.0 and px[40, 60, :3].sum() > 0.05     # the face, over the world
