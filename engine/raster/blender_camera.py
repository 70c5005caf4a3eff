"""Blender camera -> engine ``Camera``: THE one conversion (no bpy here; plain numbers in).

Blender's rules (``BKE_camera_params_compute_viewplane``, ``BKE_camera_sensor_fit``, the render
pipeline's border), restated:

* Render size: ``winx = resolution_x * resolution_percentage // 100`` (integer), same for y.
* ``ycor = pixel_aspect_y / pixel_aspect_x``.
* Sensor fit: AUTO means HORIZONTAL when ``pixel_aspect_x * winx >= pixel_aspect_y * winy``,
  else VERTICAL. The sensor size used is ``sensor_height`` only for an explicit VERTICAL fit;
  AUTO always uses ``sensor_width`` (even when it resolves to vertical).
* ``viewfac = winx`` (horizontal fit) or ``ycor * winy`` (vertical fit): the number of x-pixels
  the sensor size (perspective) or ``ortho_scale`` (orthographic) spans along the fitted axis.
* Perspective: fx = lens * viewfac / sensor_size. Orthographic: fx = viewfac / ortho_scale
  (pixels per metre). In both fy = fx / ycor.
* Shift moves the view plane by ``shift * viewfac`` x-pixels along both axes:
  cx = winx / 2 - shift_x * viewfac, cy = winy / 2 + shift_y * viewfac / ycor (rows go down).
* Camera frame: Blender's camera looks down its local -Z with +Y up; OpenCV's is
  diag(1, -1, -1) of it. The object's matrix_world is normalised first (scale dropped), as
  Blender does for the render camera.
* Border (``use_border``): the rendered region is, in Blender's bottom-up pixels,
  x in [int(border_min_x * winx), int(border_max_x * winx)) computed in float32 as Blender's C
  does, y likewise with winy: ``border_region``, the only place this is computed.
  ``camera_from_blender`` then returns a camera for that region only, and a ``CropRegion``
  saying where it sits in the full frame.

Reading a camera in the render engine (the only place with bpy) looks like::

    cam, r = camera_object.data, scene.render
    BlenderCameraSettings(type=cam.type, lens=cam.lens, ortho_scale=cam.ortho_scale,
        sensor_width=cam.sensor_width, sensor_height=cam.sensor_height, sensor_fit=cam.sensor_fit,
        shift_x=cam.shift_x, shift_y=cam.shift_y, clip_start=cam.clip_start, clip_end=cam.clip_end,
        matrix_world=[list(row) for row in camera_object.matrix_world],
        resolution_x=r.resolution_x, resolution_y=r.resolution_y,
        resolution_percentage=r.resolution_percentage,
        pixel_aspect_x=r.pixel_aspect_x, pixel_aspect_y=r.pixel_aspect_y,
        use_border=r.use_border, use_crop_to_border=r.use_crop_to_border,
        border_min_x=r.border_min_x, border_max_x=r.border_max_x,
        border_min_y=r.border_min_y, border_max_y=r.border_max_y)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import GaussianHeadsError, check_shape
from .camera import Camera

# Blender camera axes (x right, y up, looking down -z) -> OpenCV (x right, y down, z forward)
BLENDER_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass(frozen=True)
class BlenderCameraSettings:
    """Plain numbers read from a Blender camera object and the scene's render settings.

    type: "PERSP" or "ORTHO" (Camera.type). lens: focal length, mm. ortho_scale: metres the
    fitted sensor axis spans (ORTHO). sensor_width / sensor_height: mm. sensor_fit: "AUTO",
    "HORIZONTAL" or "VERTICAL". shift_x / shift_y: lens shift in units of the fitted frame
    size. clip_start / clip_end: metres. matrix_world [4, 4]: the camera object's world matrix
    (stored as a tuple of tuples). resolution_*: render size before the percentage;
    resolution_percentage: 1..; pixel_aspect_*: pixel shape. use_border, use_crop_to_border and
    border_{min,max}_{x,y} (0..1, from the bottom-left) as in RenderSettings.
    """

    type: str = "PERSP"
    lens: float = 50.0
    ortho_scale: float = 6.0
    sensor_width: float = 36.0
    sensor_height: float = 24.0
    sensor_fit: str = "AUTO"
    shift_x: float = 0.0
    shift_y: float = 0.0
    clip_start: float = 0.1
    clip_end: float = 1000.0
    matrix_world: tuple = field(default=tuple(tuple(r) for r in np.eye(4).tolist()))
    resolution_x: int = 1920
    resolution_y: int = 1080
    resolution_percentage: int = 100
    pixel_aspect_x: float = 1.0
    pixel_aspect_y: float = 1.0
    use_border: bool = False
    use_crop_to_border: bool = False
    border_min_x: float = 0.0
    border_max_x: float = 1.0
    border_min_y: float = 0.0
    border_max_y: float = 1.0

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix_world, np.float64)
        check_shape("matrix_world", m, (4, 4))
        if not np.isfinite(m).all():
            raise GaussianHeadsError("camera matrix_world contains NaN or infinity")
        object.__setattr__(self, "matrix_world", tuple(tuple(float(v) for v in row) for row in m))
        if self.type not in ("PERSP", "ORTHO"):
            raise GaussianHeadsError(f"camera type {self.type!r} is not supported: use Perspective or Orthographic")
        if self.sensor_fit not in ("AUTO", "HORIZONTAL", "VERTICAL"):
            raise GaussianHeadsError(f"unknown sensor fit {self.sensor_fit!r}")
        positive = {"lens": self.lens, "ortho_scale": self.ortho_scale, "sensor_width": self.sensor_width,
                    "sensor_height": self.sensor_height, "pixel_aspect_x": self.pixel_aspect_x,
                    "pixel_aspect_y": self.pixel_aspect_y, "resolution_x": self.resolution_x,
                    "resolution_y": self.resolution_y, "resolution_percentage": self.resolution_percentage}
        for name, value in positive.items():
            if not (np.isfinite(value) and value > 0):
                raise GaussianHeadsError(f"camera setting {name} must be positive, got {value}")
        if not self.clip_end > self.clip_start:
            raise GaussianHeadsError(f"camera clip end ({self.clip_end}) must exceed clip start ({self.clip_start})")

    @property
    def matrix(self) -> np.ndarray:
        """[4, 4] float64 matrix_world."""
        return np.array(self.matrix_world, np.float64)

    @property
    def render_size(self) -> tuple[int, int]:
        """(winx, winy): the full frame in pixels after the percentage, as Blender computes it."""
        pct = int(self.resolution_percentage)
        return int(self.resolution_x) * pct // 100, int(self.resolution_y) * pct // 100


@dataclass(frozen=True)
class CropRegion:
    """The border region a camera renders, inside the full ``full_width`` x ``full_height`` frame.

    x, y: the region's bottom-left pixel in Blender's bottom-up full-frame pixels (as in
    ``RenderEngine.begin_result``); width, height: its size. top: the region's first row counted
    from the top of the frame (row index into a top-down full-frame image).
    crop_to_border: the output image is the region alone (True) or the full frame with the
    region filled in (False).
    """

    x: int
    y: int
    width: int
    height: int
    full_width: int
    full_height: int
    crop_to_border: bool

    @property
    def top(self) -> int:
        return self.full_height - (self.y + self.height)


def border_region(winx: int, winy: int, min_x: float, max_x: float, min_y: float, max_y: float,
                  crop_to_border: bool = False) -> CropRegion:
    """THE render-border computation (F12, the render engine's result rectangle, the tests).

    winx, winy: the full frame in pixels (after the percentage); min/max: the border, 0..1 from
    the bottom left, as Blender stores it (float32). Blender's C computes ``border * winx`` in
    float32 and truncates (pipeline.cc: ``disprect.xmin = rd->border.xmin * winx``), so 0.7 at
    400 px is 280 (float64 would give 279). Raises GaussianHeadsError for an empty region.
    """
    f32 = np.float32
    winx, winy = int(winx), int(winy)
    x0, x1 = int(f32(min_x) * f32(winx)), int(f32(max_x) * f32(winx))
    y0, y1 = int(f32(min_y) * f32(winy)), int(f32(max_y) * f32(winy))
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(winx, x1), min(winy, y1)
    if x1 <= x0 or y1 <= y0:
        raise GaussianHeadsError("the render border is empty: widen it or turn the border off")
    return CropRegion(x0, y0, x1 - x0, y1 - y0, winx, winy, bool(crop_to_border))


def world_to_opencv(matrix_world: np.ndarray) -> np.ndarray:
    """[4, 4] Blender camera object matrix_world -> [4, 4] OpenCV world_to_cam (scale dropped)."""
    m = np.array(matrix_world, np.float64)
    check_shape("matrix_world", m, (4, 4))
    lengths = np.linalg.norm(m[:3, :3], axis=0)
    if not (lengths > 0).all():
        raise GaussianHeadsError("camera matrix_world has a zero scale axis")
    m[:3, :3] /= lengths
    return BLENDER_TO_OPENCV @ np.linalg.inv(m)


def camera_from_blender(settings: BlenderCameraSettings) -> tuple[Camera, CropRegion | None]:
    """Blender camera + render settings -> (Camera for the pixels to render, crop or None).

    Without a border the Camera covers the full winx x winy frame and crop is None. With a
    border it covers only the border region (principal point moved accordingly) and the
    CropRegion tells where that region lies. Projections equal Blender's own
    (``bpy_extras.object_utils.world_to_camera_view`` scaled by winx, winy; rows top-down).
    """
    s = settings
    winx, winy = s.render_size
    if winx < 1 or winy < 1:
        raise GaussianHeadsError(f"render size {winx}x{winy} is empty (resolution x percentage)")
    ycor = s.pixel_aspect_y / s.pixel_aspect_x
    fit = s.sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if s.pixel_aspect_x * winx >= s.pixel_aspect_y * winy else "VERTICAL"
    viewfac = float(winx) if fit == "HORIZONTAL" else ycor * winy
    ortho = s.type == "ORTHO"
    if ortho:
        fx = viewfac / s.ortho_scale
    else:
        sensor = s.sensor_height if s.sensor_fit == "VERTICAL" else s.sensor_width
        fx = s.lens * viewfac / sensor
    fy = fx / ycor
    cx = 0.5 * winx - s.shift_x * viewfac
    cy = 0.5 * winy + s.shift_y * viewfac / ycor
    w2c = world_to_opencv(s.matrix)
    if not s.use_border:
        return Camera(w2c, fx, fy, cx, cy, winx, winy, float(s.clip_start), float(s.clip_end), ortho), None
    crop = border_region(winx, winy, s.border_min_x, s.border_max_x, s.border_min_y, s.border_max_y,
                         s.use_crop_to_border)
    camera = Camera(w2c, fx, fy, cx - crop.x, cy - crop.top, crop.width, crop.height,
                    float(s.clip_start), float(s.clip_end), ortho)
    return camera, crop


def camera_from_view(view_matrix, window_matrix, width: int, height: int) -> Camera:
    """A 3D viewport's matrices -> Camera for a ``width`` x ``height`` region.

    view_matrix [4, 4]: world -> OpenGL eye (``RegionView3D.view_matrix``); window_matrix
    [4, 4]: OpenGL projection (``RegionView3D.window_matrix``), perspective or orthographic.
    Near and far are read back from the projection.
    """
    v = np.asarray(view_matrix, np.float64)
    p = np.asarray(window_matrix, np.float64)
    check_shape("view_matrix", v, (4, 4))
    check_shape("window_matrix", p, (4, 4))
    w2c = BLENDER_TO_OPENCV @ v
    ortho = abs(p[3, 3]) > 0.5
    fx, fy = 0.5 * width * p[0, 0], 0.5 * height * p[1, 1]
    if ortho:
        cx, cy = 0.5 * width * (1 + p[0, 3]), 0.5 * height * (1 - p[1, 3])
        near, far = (p[2, 3] + 1) / p[2, 2], (p[2, 3] - 1) / p[2, 2]
    else:
        cx, cy = 0.5 * width * (1 - p[0, 2]), 0.5 * height * (1 + p[1, 2])
        near, far = p[2, 3] / (p[2, 2] - 1), p[2, 3] / (p[2, 2] + 1)
    if not (fx > 0 and fy > 0):
        raise GaussianHeadsError("the viewport projection matrix is degenerate")
    return Camera(w2c, fx, fy, cx, cy, int(width), int(height), float(near), float(far), bool(ortho))
