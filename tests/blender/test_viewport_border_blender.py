"""The viewport's render border, read from Blender's own view data, equals F12's border."""

from types import SimpleNamespace

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")


def _camera_view_context(scene, cam, width, height):
    """The view3d context parts view_draw reads, for a camera view whose frame fills the region
    (stand-ins: a headless Blender has no 3D view; the matrices are Blender's own)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    window = cam.calc_matrix_camera(depsgraph, x=width, y=height)
    region_3d = SimpleNamespace(view_perspective='CAMERA', perspective_matrix=window @ cam.matrix_world.inverted())
    return SimpleNamespace(region=SimpleNamespace(width=width, height=height), region_data=region_3d,
                           space_data=SimpleNamespace(use_render_border=False)), depsgraph


@pytest.mark.parametrize("size", [400, 1080])
def test_camera_view_border_is_the_f12_border(gh, helpers, size):
    render_engine = helpers.addon("render_engine")
    viewport_border = helpers.addon("engine.viewport_border")
    border_region = helpers.addon("engine.raster.blender_camera").border_region
    cam = helpers.setup_camera_scene(size)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = size
    context, depsgraph = _camera_view_context(scene, cam, size, size)
    assert render_engine.viewport_border_box(context, depsgraph) is None  # no border: nothing masked
    scene.render.use_border = True
    scene.render.border_min_x, scene.render.border_max_x = 0.35, 1.0
    scene.render.border_min_y, scene.render.border_max_y = 0.0, 0.7
    box, fractions = render_engine.viewport_border_box(context, depsgraph)
    np.testing.assert_allclose(box, (0, 0, size, size), atol=1e-3)  # the camera frame fills the region
    rect = viewport_border.viewport_border_rect(box, size, size, *fractions)
    r = border_region(size, size, 0.35, 1.0, 0.0, 0.7)
    assert rect == (r.x, r.y, r.x + r.width, r.y + r.height)


def test_render_region_outside_camera_view(gh, helpers):
    render_engine = helpers.addon("render_engine")
    space = SimpleNamespace(use_render_border=True, render_border_min_x=0.7, render_border_max_x=0.9,
                            render_border_min_y=0.35, render_border_max_y=1.0)
    context = SimpleNamespace(region=SimpleNamespace(width=1920, height=1080),
                              region_data=SimpleNamespace(view_perspective='PERSP'), space_data=space)
    box, fractions = render_engine.viewport_border_box(context, bpy.context.evaluated_depsgraph_get())
    assert box == (0, 0, 1920, 1080) and fractions == (0.7, 0.9, 0.35, 1.0)
