"""The render border in the interactive viewport, through the one border computation.

Blender shows a render border in the viewport two ways: in camera view, the scene's border
(``scene.render.use_border``) inside the camera frame; in any other view, the 3D view's own
Render Region (``View3D.use_render_border``) inside the whole region. Both are the same fractions
of a pixel box, so both go through ``blender_camera.border_region`` (float32, truncated, as F12
and Blender's C compute it); outside the rectangle the viewport frame is transparent.
"""

from __future__ import annotations

import numpy as np

from .raster.blender_camera import border_region


def viewport_border_rect(box: tuple[float, float, float, float], region_width: int, region_height: int,
                         min_x: float, max_x: float, min_y: float, max_y: float) -> tuple[int, int, int, int]:
    """The border in region pixels (x0, y0, x1, y1), bottom-left origin, end exclusive, clipped
    to the region.

    box: the pixel box the border fractions refer to, (x0, y0, x1, y1) in region pixels (the
    camera frame in camera view, which may extend past the region; the region otherwise).
    """
    bx0, by0 = int(np.floor(box[0])), int(np.floor(box[1]))
    width, height = max(1, int(round(box[2] - box[0]))), max(1, int(round(box[3] - box[1])))
    r = border_region(width, height, min_x, max_x, min_y, max_y)
    x0, y0 = bx0 + r.x, by0 + r.y
    x1, y1 = x0 + r.width, y0 + r.height
    return (max(0, x0), max(0, y0), min(int(region_width), x1), min(int(region_height), y1))


def mask_outside(pixels: np.ndarray, width: int, height: int, rect: tuple[int, int, int, int],
                 region_width: int, region_height: int) -> np.ndarray:
    """pixels [height * width * 4] (row 0 = bottom, premultiplied; the frame is drawn stretched
    over a region_width x region_height region) with everything outside ``rect`` (region pixels)
    made transparent. Returns a new array; the input is not changed."""
    sx, sy = width / float(region_width), height / float(region_height)
    x0, x1 = int(np.floor(rect[0] * sx)), int(np.ceil(rect[2] * sx))
    y0, y1 = int(np.floor(rect[1] * sy)), int(np.ceil(rect[3] * sy))
    image = np.asarray(pixels, np.float32).reshape(height, width, 4)
    out = np.zeros_like(image)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = image[y0:y1, x0:x1]
    return out.reshape(-1)
