"""One render-border computation (``blender_camera.border_region``) for F12, the camera and tests.

Borders such as 0.7 at 400 px used to give a black frame: the render engine's rectangle was
computed in float64 (0.7f * 400 -> 279) and the camera's in float32 (280), and the engine refused
the mismatch. Both now come from one function; this grid holds them equal and the border camera a
window of the full-frame camera.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.errors import GaussianHeadsError
from engine.raster.blender_camera import BlenderCameraSettings, border_region, camera_from_blender
from engine.scene_render import border_rect

VALUES = (0.0, 0.1, 0.35, 0.5, 0.7, 0.9, 1.0)
BORDERS = [(a, b) for a, b in itertools.combinations(VALUES, 2)]
SIZES = (400, 1080, 1920, 333)


def f32(v):
    """What Blender stores and hands back for a border value (a float32)."""
    return float(np.float32(v))


@pytest.mark.parametrize("size", SIZES)
def test_float32_truncation_like_blender(size):
    for lo, hi in BORDERS:
        r = border_region(size, size, f32(lo), f32(hi), f32(lo), f32(hi))
        want0 = int(np.float32(lo) * np.float32(size))
        want1 = int(np.float32(hi) * np.float32(size))
        assert (r.x, r.x + r.width, r.y, r.y + r.height) == (want0, want1, want0, want1)
    # the case that broke: float64 of the stored float32 gives one pixel less
    assert int(f32(0.7) * 400) == 279 and border_region(400, 400, 0.0, f32(0.7), 0.0, 1.0).width == 280


@pytest.mark.parametrize("resolution", [(400, 1080), (1080, 1920), (1920, 400), (1920, 1080)])
def test_engine_rectangle_equals_border_camera(resolution):
    winx, winy = resolution
    full, _ = camera_from_blender(BlenderCameraSettings(resolution_x=winx, resolution_y=winy, shift_x=0.05))
    rng = np.random.default_rng(0)
    points = np.c_[rng.uniform(-1, 1, (50, 2)), rng.uniform(2, 6, 50)]
    points = points @ np.linalg.inv(full.world_to_cam[:3, :3]).T + np.linalg.inv(full.world_to_cam)[:3, 3]
    for (x0, x1), (y0, y1) in itertools.product(BORDERS[::3], BORDERS[1::3]):
        settings = BlenderCameraSettings(
            resolution_x=winx, resolution_y=winy, shift_x=0.05, use_border=True, border_min_x=f32(x0),
            border_max_x=f32(x1), border_min_y=f32(y0), border_max_y=f32(y1))
        camera, crop = camera_from_blender(settings)
        rect = border_rect(winx, winy, True, f32(x0), f32(x1), f32(y0), f32(y1))
        assert rect == (crop.x, crop.y, crop.x + crop.width, crop.y + crop.height)
        assert (camera.width, camera.height) == (rect[2] - rect[0], rect[3] - rect[1])
        np.testing.assert_allclose(camera.project(points)[:, :2],
                                   full.project(points)[:, :2] - (crop.x, crop.top), atol=1e-6)
    assert border_rect(winx, winy, False, 0.2, 0.3, 0.2, 0.3) == (0, 0, winx, winy)


def test_percentage_applies_before_the_border():
    camera, crop = camera_from_blender(BlenderCameraSettings(
        resolution_x=1920, resolution_y=1080, resolution_percentage=37, use_border=True,
        border_min_x=f32(0.35), border_max_x=f32(0.7), border_min_y=f32(0.35), border_max_y=f32(0.9)))
    winx, winy = 1920 * 37 // 100, 1080 * 37 // 100
    assert (crop.full_width, crop.full_height) == (winx, winy)
    assert border_rect(winx, winy, True, f32(0.35), f32(0.7), f32(0.35), f32(0.9)) == (
        crop.x, crop.y, crop.x + crop.width, crop.y + crop.height)


def test_empty_border_is_refused():
    for args in ((0.5, 0.5, 0.0, 1.0), (0.0, 1.0, 0.9, 0.9), (0.0, 0.001, 0.0, 1.0)):
        with pytest.raises(GaussianHeadsError, match="border is empty"):
            border_region(400, 300, *args)
        with pytest.raises(GaussianHeadsError, match="border is empty"):
            border_rect(400, 300, True, *args)
