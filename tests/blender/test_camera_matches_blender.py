"""Our Blender camera conversion projects points exactly where Blender itself does.

For many camera and render settings, cameras are built in bpy; every setting is read into
``BlenderCameraSettings`` by the render engine's own reader
(``render_engine.camera_settings``), and our projection of random points is compared with ``bpy_extras.object_utils.world_to_camera_view`` scaled to pixels.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Euler, Vector  # noqa: E402

from engine.raster.blender_camera import BlenderCameraSettings, camera_from_blender  # noqa: E402

TOLERANCE_PX = 2e-3


_conftest = None


@pytest.fixture(autouse=True)
def _blender_helpers(helpers):
    global _conftest
    _conftest = helpers


def read_settings(camera_object, scene) -> BlenderCameraSettings:
    """bpy -> settings through the render engine's own reader (what F12 uses)."""
    _conftest.enable_addon()  # build_scene reset the factory settings
    return _conftest.addon("render_engine").camera_settings(scene, camera_object)


def build_scene(cam_type="PERSP", lens=50.0, ortho_scale=6.0, sensor=(36.0, 24.0), fit="AUTO", shift=(0.0, 0.0),
                resolution=(1920, 1080), percentage=100, pixel_aspect=(1.0, 1.0), seed=0, scale=(1.0, 1.0, 1.0)):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    data = bpy.data.cameras.new("Cam")
    data.type = cam_type
    data.lens = lens
    data.ortho_scale = ortho_scale
    data.sensor_width, data.sensor_height = sensor
    data.sensor_fit = fit
    data.shift_x, data.shift_y = shift
    data.clip_start, data.clip_end = 0.05, 500.0
    obj = bpy.data.objects.new("Cam", data)
    scene.collection.objects.link(obj)
    rng = np.random.default_rng(seed)
    obj.location = Vector(rng.uniform(-3, 3, 3).tolist())
    obj.rotation_euler = Euler(rng.uniform(-math.pi, math.pi, 3).tolist(), "XYZ")
    obj.scale = scale
    scene.camera = obj
    r = scene.render
    r.resolution_x, r.resolution_y = resolution
    r.resolution_percentage = percentage
    r.pixel_aspect_x, r.pixel_aspect_y = pixel_aspect
    bpy.context.view_layer.update()
    return scene, obj


def points_in_view(obj, n=200, seed=1, ortho=False):
    """Random world points in front of the camera (some outside the frame)."""
    rng = np.random.default_rng(seed)
    local = np.c_[rng.uniform(-2, 2, n), rng.uniform(-2, 2, n), -rng.uniform(0.5, 8, n)]
    m = np.array(obj.matrix_world.normalized())
    return local @ m[:3, :3].T + m[:3, 3]


def blender_pixels(scene, obj, points, winx, winy):
    out = []
    for p in points:
        v = world_to_camera_view(scene, obj, Vector(p.tolist()))
        out.append((v.x * winx, (1.0 - v.y) * winy, v.z))
    return np.array(out)


def check(scene, obj):
    settings = read_settings(obj, scene)
    cam, crop = camera_from_blender(settings)
    assert crop is None
    winx, winy = settings.render_size
    assert (cam.width, cam.height) == (winx, winy)
    pts = points_in_view(obj, ortho=cam.orthographic)
    want = blender_pixels(scene, obj, pts, winx, winy)
    got = cam.project(pts)
    np.testing.assert_allclose(got[:, :2], want[:, :2], atol=TOLERANCE_PX * max(1.0, np.abs(want[:, :2]).max() / 2000))
    np.testing.assert_allclose(got[:, 2], want[:, 2], rtol=1e-5, atol=1e-5)
    return cam, pts, want


PERSP_CASES = list(itertools.product(
    [(1920, 1080), (1080, 1920), (640, 640), (333, 257)],
    ["AUTO", "HORIZONTAL", "VERTICAL"],
    [(0.0, 0.0), (0.12, -0.3)],
))


@pytest.mark.parametrize("resolution, fit, shift", PERSP_CASES)
def test_perspective_matches_blender(resolution, fit, shift):
    scene, obj = build_scene(resolution=resolution, fit=fit, shift=shift, lens=35.0, sensor=(36.0, 20.0),
                             seed=sum(resolution) + len(fit))
    check(scene, obj)


@pytest.mark.parametrize("resolution, fit, shift", PERSP_CASES[::2])
def test_orthographic_matches_blender(resolution, fit, shift):
    scene, obj = build_scene(cam_type="ORTHO", ortho_scale=3.5, resolution=resolution, fit=fit, shift=shift,
                             seed=7)
    cam, _, _ = check(scene, obj)
    assert cam.orthographic


@pytest.mark.parametrize("pixel_aspect", [(2.0, 1.0), (1.0, 1.5), (1.3, 1.7)])
@pytest.mark.parametrize("fit", ["AUTO", "HORIZONTAL", "VERTICAL"])
@pytest.mark.parametrize("cam_type", ["PERSP", "ORTHO"])
def test_pixel_aspect_matches_blender(pixel_aspect, fit, cam_type):
    scene, obj = build_scene(cam_type=cam_type, pixel_aspect=pixel_aspect, fit=fit, resolution=(800, 600),
                             shift=(0.05, 0.1), seed=3)
    check(scene, obj)


@pytest.mark.parametrize("percentage", [25, 50, 200])
def test_percentage_matches_blender(percentage):
    scene, obj = build_scene(resolution=(1600, 1200), percentage=percentage, seed=4)
    cam, _, _ = check(scene, obj)
    assert cam.width == 1600 * percentage // 100


def test_camera_object_scale_is_ignored_like_blender():
    scene, obj = build_scene(scale=(2.0, 0.5, 3.0), seed=5)
    check(scene, obj)


def test_border_region_matches_blender():
    scene, obj = build_scene(resolution=(400, 300), seed=6)
    r = scene.render
    r.use_border = True
    r.border_min_x, r.border_max_x, r.border_min_y, r.border_max_y = 0.2, 0.7, 0.1, 0.6
    settings = read_settings(obj, scene)
    cam, crop = camera_from_blender(settings)
    assert (crop.x, crop.y, crop.width, crop.height) == (80, 30, 200, 150)
    assert (cam.width, cam.height) == (200, 150)
    pts = points_in_view(obj)
    want = blender_pixels(scene, obj, pts, 400, 300) - [crop.x, crop.top, 0]
    np.testing.assert_allclose(cam.project(pts)[:, :2], want[:, :2], atol=TOLERANCE_PX)


@pytest.mark.parametrize("resolution", [(400, 1080), (1080, 1920), (1920, 400)])
@pytest.mark.parametrize("border", [((0.0, 0.7), (0.35, 1.0)), ((0.25, 0.9), (0.5, 0.7)), ((0.35, 0.5), (0.0, 0.9))])
def test_border_grid_matches_blender(resolution, border):
    """Awkward borders (0.35, 0.7, 0.9 x 400, 1080, 1920 px): the region is what Blender's float32
    pipeline makes of the stored border, and the border camera projects like Blender's full frame
    shifted by the region's corner. (The rendered image size is checked in test_render_border.py.)"""
    scene, obj = build_scene(resolution=resolution, seed=8)
    r = scene.render
    r.use_border = True
    (r.border_min_x, r.border_max_x), (r.border_min_y, r.border_max_y) = border
    cam, crop = camera_from_blender(read_settings(obj, scene))
    winx, winy = resolution
    f32 = np.float32
    want = [int(f32(v) * f32(n)) for v, n in ((r.border_min_x, winx), (r.border_max_x, winx),
                                               (r.border_min_y, winy), (r.border_max_y, winy))]
    assert (crop.x, crop.x + crop.width, crop.y, crop.y + crop.height) == tuple(want)
    assert (cam.width, cam.height) == (crop.width, crop.height)
    pts = points_in_view(obj)
    full = blender_pixels(scene, obj, pts, winx, winy)       # Blender works in float32: scale atol
    np.testing.assert_allclose(cam.project(pts)[:, :2], (full - [crop.x, crop.top, 0])[:, :2],
                               atol=TOLERANCE_PX * max(1.0, np.abs(full[:, :2]).max() / 2000))


def test_defaults_of_a_new_camera_match():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    data = bpy.data.cameras.new("Cam")
    defaults = BlenderCameraSettings()
    assert (data.lens, data.sensor_width, data.sensor_fit, data.type) == (
        defaults.lens, defaults.sensor_width, defaults.sensor_fit, defaults.type)
    r = bpy.context.scene.render
    assert (r.resolution_x, r.resolution_y, r.resolution_percentage) == (
        defaults.resolution_x, defaults.resolution_y, defaults.resolution_percentage)
