"""The viewport's render border goes through the same border computation as F12."""

import numpy as np
import pytest

from engine.errors import GaussianHeadsError
from engine.raster.blender_camera import border_region
from engine.viewport_border import mask_outside, viewport_border_rect


@pytest.mark.parametrize("size", [400, 1080, 1920])
@pytest.mark.parametrize("border", [(0.35, 1.0, 0.0, 0.7), (0.0, 0.9, 0.25, 1.0), (0.7, 1.0, 0.35, 0.9)])
def test_region_border_equals_the_f12_border(size, border):
    """Outside camera view the box is the region: the rectangle is exactly F12's at that size."""
    r = border_region(size, size, *border)
    assert viewport_border_rect((0, 0, size, size), size, size, *border) == (r.x, r.y, r.x + r.width,
                                                                             r.y + r.height)


def test_camera_frame_box_offsets_and_clips():
    # A 400x300 camera frame drawn at (50, 20) inside a 420x280 region: offset, then clipped.
    rect = viewport_border_rect((50.0, 20.0, 450.0, 320.0), 420, 280, 0.7, 1.0, 0.35, 0.9)
    r = border_region(400, 300, 0.7, 1.0, 0.35, 0.9)
    assert rect == (50 + r.x, 20 + r.y, 420, min(280, 20 + r.y + r.height))
    with pytest.raises(GaussianHeadsError, match="border is empty"):
        viewport_border_rect((0, 0, 100, 100), 100, 100, 0.5, 0.5, 0.0, 1.0)


def test_mask_keeps_only_the_border_at_any_viewport_scale():
    rng = np.random.default_rng(0)
    region_w, region_h = 200, 100
    rect = (50, 20, 150, 60)
    for scale in (1.0, 0.5):
        w, h = int(region_w * scale), int(region_h * scale)
        pixels = rng.uniform(0.1, 1.0, size=h * w * 4).astype(np.float32)
        out = mask_outside(pixels, w, h, rect, region_w, region_h).reshape(h, w, 4)
        image = pixels.reshape(h, w, 4)
        x0, y0, x1, y1 = (int(v * scale) for v in rect)
        np.testing.assert_array_equal(out[y0:y1, x0:x1], image[y0:y1, x0:x1])
        inside = np.zeros((h, w), bool)
        inside[y0:y1, x0:x1] = True
        assert not out[~inside].any()
        assert pixels.reshape(h, w, 4)[0, 0, 0] > 0  # input untouched
