"""Blender camera settings -> engine Camera, checked against points projected by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.errors import GaussianHeadsError
from engine.raster.blender_camera import (BlenderCameraSettings, CropRegion, camera_from_blender,
                                          camera_from_view, world_to_opencv)
from engine.raster.camera import Camera, look_at


def rot_x(deg, location=(0.0, 0.0, 0.0), scale=1.0):
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    m = np.eye(4)
    m[:3, :3] = np.array([[1, 0, 0], [0, c, -s], [0, s, c]]) * scale
    m[:3, 3] = location
    return m


def project(settings, point):
    cam, crop = camera_from_blender(settings)
    return cam, crop, cam.project(np.array([point]))[0]


def test_default_perspective_horizontal_fit():
    # identity matrix: the camera looks down -Z with +Y up
    cam, crop, (u, v, z) = project(BlenderCameraSettings(), (0.36, 0.18, -5.0))
    assert crop is None and (cam.width, cam.height) == (1920, 1080) and not cam.orthographic
    assert cam.fx == pytest.approx(50 * 1920 / 36) and cam.fy == pytest.approx(cam.fx)
    assert (u, v, z) == pytest.approx((1152.0, 444.0, 5.0))
    assert (cam.near, cam.far) == (0.1, 1000.0)


def test_front_camera_rotated_and_scaled():
    # Blender's usual front camera: rotated 90 deg about X, at y = -5, looking toward +Y; the
    # object's scale does not change the view
    s = BlenderCameraSettings(matrix_world=rot_x(90, (0.0, -5.0, 0.0), scale=2.5))
    cam, _, (u, v, z) = project(s, (0.36, 0.0, 0.18))
    assert (u, v, z) == pytest.approx((1152.0, 444.0, 5.0))
    np.testing.assert_allclose(cam.position, [0.0, -5.0, 0.0], atol=1e-12)


def test_vertical_fit_uses_sensor_height():
    s = BlenderCameraSettings(sensor_fit="VERTICAL", sensor_height=24.0)
    cam, _, (u, v, _) = project(s, (0.0, 0.24, -5.0))
    assert cam.fx == pytest.approx(50 * 1080 / 24)
    assert v == pytest.approx(540 - 2250 * 0.24 / 5)


def test_auto_fit_portrait_uses_sensor_width_along_height():
    s = BlenderCameraSettings(resolution_x=1080, resolution_y=1920, sensor_height=10.0)
    cam, _, _ = project(s, (0.0, 0.0, -1.0))
    # AUTO resolves to vertical; the sensor size is still sensor_width (36 mm), along the height
    assert cam.fx == pytest.approx(50 * 1920 / 36) and (cam.cx, cam.cy) == (540.0, 960.0)
    # an explicit horizontal fit on the same frame spans the width instead
    cam_h, _, _ = project(BlenderCameraSettings(resolution_x=1080, resolution_y=1920, sensor_fit="HORIZONTAL"),
                          (0.0, 0.0, -1.0))
    assert cam_h.fx == pytest.approx(50 * 1080 / 36)


def test_shift_in_units_of_the_fitted_size():
    s = BlenderCameraSettings(shift_x=0.1, shift_y=0.1)
    cam, _, (u, v, _) = project(s, (0.0, 0.0, -3.0))
    # the view moves right/up by 0.1 frame widths, so the axis lands left/below the centre
    assert (u, v) == pytest.approx((960 - 192.0, 540 + 192.0))
    vert = BlenderCameraSettings(resolution_x=1080, resolution_y=1920, shift_x=0.1, shift_y=-0.2)
    cam, _, (u, v, _) = project(vert, (0.0, 0.0, -3.0))
    assert (u, v) == pytest.approx((540 - 192.0, 960 - 384.0))


@pytest.mark.parametrize("x, pct, want", [(1920, 50, 960), (1921, 33, 633), (1000, 150, 1500), (7, 10, 0)])
def test_percentage_truncates_like_blender(x, pct, want):
    s = BlenderCameraSettings(resolution_x=x, resolution_y=1080, resolution_percentage=pct)
    assert s.render_size[0] == want
    if want == 0:
        with pytest.raises(GaussianHeadsError):
            camera_from_blender(s)
        return
    cam, _ = camera_from_blender(s)
    assert cam.width == want and cam.height == 1080 * pct // 100
    full, _ = camera_from_blender(BlenderCameraSettings(resolution_x=x, resolution_y=1080))
    # the same view, fewer pixels: a point projects to proportionally the same place
    p = np.array([[0.2, -0.1, -4.0]])
    np.testing.assert_allclose(cam.project(p)[0, 0] / want, full.project(p)[0, 0] / x, rtol=0, atol=2e-3)


def test_pixel_aspect():
    s = BlenderCameraSettings(pixel_aspect_x=2.0, pixel_aspect_y=1.0)
    cam, _, (u, v, _) = project(s, (0.36, 0.18, -5.0))
    # wide pixels: fewer pixels per metre across, the fit stays horizontal
    assert cam.fx == pytest.approx(50 * 1920 / 36) and cam.fy == pytest.approx(2 * cam.fx)
    assert (u, v) == pytest.approx((1152.0, 540 - 192.0))
    # tall pixels on a square frame: aspx * winx < aspy * winy -> vertical fit
    s = BlenderCameraSettings(resolution_x=1000, resolution_y=1000, pixel_aspect_x=1.0, pixel_aspect_y=2.0)
    cam, _ = camera_from_blender(s)
    # viewfac = ycor * winy = 2000 x-pixels spanned by the 36 mm sensor
    assert cam.fx == pytest.approx(50 * 2000 / 36) and cam.fy == pytest.approx(cam.fx / 2)


def test_orthographic():
    s = BlenderCameraSettings(type="ORTHO", ortho_scale=6.0, shift_x=0.05)
    cam, _, (u, v, z) = project(s, (1.0, 0.5, -3.0))
    assert cam.orthographic and cam.fx == pytest.approx(320.0)
    assert (u, v, z) == pytest.approx((320 + 960 - 96.0, 540 - 160.0, 3.0))
    # the depth does not change where an orthographic point lands
    assert cam.project(np.array([[1.0, 0.5, -30.0]]))[0, :2] == pytest.approx((u, v))
    vert = BlenderCameraSettings(type="ORTHO", ortho_scale=4.0, sensor_fit="VERTICAL")
    cam, _ = camera_from_blender(vert)
    assert cam.fx == pytest.approx(1080 / 4.0)


def test_border_gives_a_region_camera():
    base = dict(resolution_x=100, resolution_y=80, use_border=True, border_min_x=0.25, border_max_x=0.75,
                border_min_y=0.5, border_max_y=1.0)
    full, none = camera_from_blender(BlenderCameraSettings(resolution_x=100, resolution_y=80))
    cam, crop = camera_from_blender(BlenderCameraSettings(**base))
    assert none is None
    assert crop == CropRegion(25, 40, 50, 40, 100, 80, False) and crop.top == 0
    assert (cam.width, cam.height) == (50, 40)
    pts = np.random.default_rng(0).normal(0, 1, (20, 3)) + [0, 0, -6]
    np.testing.assert_allclose(cam.project(pts), full.project(pts) - [25, 0, 0], atol=1e-9)
    _, crop = camera_from_blender(BlenderCameraSettings(**{**base, "border_min_y": 0.1, "border_max_y": 0.33,
                                                           "use_crop_to_border": True}))
    assert (crop.y, crop.height, crop.top, crop.crop_to_border) == (8, 18, 54, True)
    with pytest.raises(GaussianHeadsError):
        camera_from_blender(BlenderCameraSettings(**{**base, "border_max_x": 0.25}))
    # products in float32 like Blender's C: 0.7 * 400 truncates to 280, not 279
    _, crop = camera_from_blender(BlenderCameraSettings(resolution_x=400, resolution_y=300, use_border=True,
                                                        border_min_x=0.2, border_max_x=0.7))
    assert (crop.x, crop.width) == (80, 200)


def test_settings_are_checked_and_frozen():
    with pytest.raises(GaussianHeadsError):
        BlenderCameraSettings(type="PANO")
    with pytest.raises(GaussianHeadsError):
        BlenderCameraSettings(lens=0.0)
    with pytest.raises(GaussianHeadsError):
        BlenderCameraSettings(matrix_world=np.eye(3))
    with pytest.raises(GaussianHeadsError):
        BlenderCameraSettings(clip_start=2.0, clip_end=1.0)
    s = BlenderCameraSettings(matrix_world=np.eye(4))
    with pytest.raises(AttributeError):
        s.lens = 35.0
    hash(s)


def test_world_to_opencv_axes():
    w2c = world_to_opencv(np.eye(4))
    # Blender camera-local +X right, +Y up, -Z forward -> OpenCV x right, y down, z forward
    np.testing.assert_allclose(w2c[:3, :3], np.diag([1.0, -1.0, -1.0]))
    # the same pose as look_at from the engine
    m = rot_x(90, (0.0, -5.0, 0.0))
    np.testing.assert_allclose(world_to_opencv(m), look_at((0, -5, 0), (0, 0, 0), (0, 0, 1)), atol=1e-12)


def _gl_perspective(l, r, b, t, n, f):
    return np.array([[2 * n / (r - l), 0, (r + l) / (r - l), 0], [0, 2 * n / (t - b), (t + b) / (t - b), 0],
                     [0, 0, -(f + n) / (f - n), -2 * f * n / (f - n)], [0, 0, -1, 0]])


def _gl_ortho(l, r, b, t, n, f):
    return np.array([[2 / (r - l), 0, 0, -(r + l) / (r - l)], [0, 2 / (t - b), 0, -(t + b) / (t - b)],
                     [0, 0, -2 / (f - n), -(f + n) / (f - n)], [0, 0, 0, 1]])


@pytest.mark.parametrize("ortho", [False, True])
def test_camera_from_view_matches_opengl(ortho):
    view = np.linalg.inv(rot_x(80, (0.3, -4.0, 0.5)))
    w, h = 640, 360
    if ortho:
        proj = _gl_ortho(-2.1, 1.7, -1.0, 1.2, -5.0, 50.0)
    else:
        proj = _gl_perspective(-0.06, 0.05, -0.02, 0.04, 0.1, 80.0)
    cam = camera_from_view(view, proj, w, h)
    assert cam.orthographic == ortho
    assert (cam.near, cam.far) == pytest.approx((-5.0, 50.0) if ortho else (0.1, 80.0))
    pts = np.random.default_rng(1).normal(0, 1, (30, 3)) + [0, 0, 0.5]
    clip = (proj @ view @ np.c_[pts, np.ones(len(pts))].T).T
    ndc = clip[:, :3] / clip[:, 3:]
    want_u = (ndc[:, 0] + 1) / 2 * w
    want_v = (1 - ndc[:, 1]) / 2 * h                       # rows top-down
    got = cam.project(pts)
    np.testing.assert_allclose(got[:, 0], want_u, atol=1e-6)
    np.testing.assert_allclose(got[:, 1], want_v, atol=1e-6)
    eye = view @ np.c_[pts, np.ones(len(pts))].T
    np.testing.assert_allclose(got[:, 2], -eye[2], atol=1e-9)


def test_camera_scaled_and_project():
    cam = Camera(look_at((0, -2, 0), (0, 0, 0)), 100.0, 120.0, 32.0, 24.0, 64, 48)
    big = cam.scaled(128, 96)
    p = np.array([[0.1, 0.0, 0.2]])
    np.testing.assert_allclose(big.project(p)[0, :2], cam.project(p)[0, :2] * 2)
    assert cam.scaled(64, 48) is cam
