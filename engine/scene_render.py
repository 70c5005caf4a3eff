"""One frame of a Blender scene's avatars, rendered from plain data (no bpy here).

The render engine (``render_engine.py``) gathers, per avatar, the identity, the head parameters
read from the evaluated object and the object's world matrix; this module poses, transforms,
merges, rasterizes and converts the result into what Blender's render result wants:

* colour management: the rasterizer's colours are display-referred sRGB values (what the CLI
  writes to PNG). Blender's Combined pass is scene-linear and premultiplied; with the 'Standard'
  view transform Blender re-encodes it to the same 8-bit values the CLI writes.
* row order: Blender's ``rect`` has row 0 at the bottom.
* depth: distance along the camera axis, 1e10 where nothing was hit (Blender's convention).

The viewport path (:class:`ViewportRenderer`) builds a camera from the 3D view's matrices
(``raster.blender_camera.camera_from_view``) and returns the float32 RGBA buffer ``view_draw``
uploads as a texture.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .avatar.frames import MODEL_TO_BLENDER
from .avatar.gaussian_set import GaussianSet
from .errors import GaussianHeadsError
from .head_model.model import HeadModel, HeadParams
from .raster.blender_camera import border_region, camera_from_view
from .raster.camera import Camera

#: Depth written where no Gaussian covers the pixel (Blender's "infinitely far").
DEPTH_EMPTY = 1.0e10
#: Coverage below which a pixel counts as empty for the depth pass.
ALPHA_EMPTY = 1.0e-3

_GROUP_PREFIXES = (
    ("eye", "eyes"), ("brow", "brows"), ("jaw", "jaw"), ("mouth", "mouth"), ("tongue", "mouth"),
    ("lip", "mouth"), ("cheek", "cheeks"), ("nose", "nose"), ("head", "head"), ("neck", "head"),
)
#: Groups in the order the UI shows them.
CHANNEL_GROUPS = ("eyes", "brows", "mouth", "jaw", "cheeks", "nose", "head", "other")


def channel_group(name: str) -> str:
    """UI group of an expression channel from its name (ARKit camelCase or FLAME ``expr_07``)."""
    low = name.lower()
    for prefix, group in _GROUP_PREFIXES:
        if low.startswith(prefix):
            return group
    return "other"


def mirror_channel_name(name: str) -> str | None:
    """Name of the channel mirrored left<->right, or None when the name has no side.

    Handles ARKit's ``...Left``/``...Right`` suffixes, ``_L``/``_R``, ``left_``/``right_`` prefixes.
    """
    pairs = (("Left", "Right"), ("Right", "Left"), ("_L", "_R"), ("_R", "_L"),
             ("_left", "_right"), ("_right", "_left"), (".L", ".R"), (".R", ".L"))
    for a, b in pairs:
        if name.endswith(a):
            return name[: -len(a)] + b
    for a, b in (("left_", "right_"), ("right_", "left_"), ("Left", "Right"), ("Right", "Left")):
        if name.startswith(a):
            return b + name[len(a):]
    return None


def mirrored_values(names: Sequence[str], values: np.ndarray) -> np.ndarray:
    """Swap the values of every Left/Right channel pair; unpaired channels keep their value."""
    values = np.asarray(values, np.float32)
    out = values.copy()
    index = {n: i for i, n in enumerate(names)}
    for i, name in enumerate(names):
        other = mirror_channel_name(name)
        if other is not None and other in index:
            out[i] = values[index[other]]
    return out


@dataclass(frozen=True)
class RenderSettings:
    """Scene-level rasterizer settings (scene.gaussian_heads)."""

    mode: str = "antialiased"      # "antialiased" | "classic"
    sh_degree: int = 3             # 0..3
    backend: str = "auto"          # "auto" | "cpu" | "gsplat" | "reference"
    interactive: bool = False      # the viewport: never build gsplat's CUDA kernels inline


@dataclass
class AvatarInstance:
    """One avatar at one frame: identity (or baked identity), its parameters, its placement.

    object_to_world [4, 4]: the Blender object's ``matrix_world``; the model→Blender axis change
    (``MODEL_TO_BLENDER``) is applied here, not by the caller.
    """

    name: str
    identity: object
    params: HeadParams
    object_to_world: np.ndarray = field(default_factory=lambda: np.eye(4))


def params_from_channels(model: HeadModel, channel_names: Sequence[str], channel_values,
                         jaw, neck, head_rot, eyes, translation, shape) -> HeadParams:
    """HeadParams for ``model`` from the values Blender stores.

    channel_names/values: the object's expression channels; they are matched to
    ``model.expr_names`` by name (channels the model lacks are ignored, missing ones are 0).
    jaw, neck, head_rot, translation [3]; eyes [6] (left then right); shape [<= S] (zero-padded
    or truncated to the model's S).
    """
    params = HeadParams.neutral_for(model)
    values = np.asarray(channel_values, np.float32).reshape(-1)
    if len(channel_names) != values.shape[0]:
        raise GaussianHeadsError(
            f"{len(channel_names)} expression channel names but {values.shape[0]} values")
    index = {n: i for i, n in enumerate(model.expr_names)}
    for name, value in zip(channel_names, values):
        i = index.get(name)
        if i is not None:
            params.expr[i] = value
    params.jaw[:] = np.asarray(jaw, np.float32).reshape(3)
    params.neck[:] = np.asarray(neck, np.float32).reshape(3)
    params.global_rot[:] = np.asarray(head_rot, np.float32).reshape(3)
    params.eyes[:] = np.asarray(eyes, np.float32).reshape(2, 3)
    params.translation[:] = np.asarray(translation, np.float32).reshape(3)
    shape = np.asarray(shape, np.float32).reshape(-1)
    m = min(shape.shape[0], params.shape.shape[0])
    params.shape[:m] = shape[:m]
    return params


def pose_world(instance: AvatarInstance) -> GaussianSet:
    """Pose one avatar and place it in Blender world space."""
    gaussians = instance.identity.pose(instance.params)
    matrix = np.asarray(instance.object_to_world, np.float64) @ MODEL_TO_BLENDER
    return gaussians.transformed(matrix)


@dataclass
class SplatInstance:
    """One static splat object: object-space Gaussians and the object's ``matrix_world`` [4, 4]
    (no axis change: splat objects store Blender-frame data)."""

    name: str
    gaussians: GaussianSet
    object_to_world: np.ndarray = field(default_factory=lambda: np.eye(4))


def merge_avatars(instances: Sequence[AvatarInstance],
                  cancel: Callable[[], bool] | None = None,
                  splats: Sequence[SplatInstance] = ()) -> GaussianSet:
    """All avatars posed, and static splat objects placed, merged into one world-space
    GaussianSet (the rasterizer sorts it as a whole: one depth order for everything)."""
    sets = []
    for instance in instances:
        if cancel is not None and cancel():
            break
        sets.append(pose_world(instance))
    for splat in splats:
        if cancel is not None and cancel():
            break
        matrix = np.asarray(splat.object_to_world, np.float64)
        sets.append(splat.gaussians if np.array_equal(matrix, np.eye(4)) else splat.gaussians.transformed(matrix))
    return GaussianSet.concatenate(sets)


# --- colour ---------------------------------------------------------------------------------

def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values -> linear (IEC 61966-2-1), elementwise; values outside [0,1] clipped."""
    c = np.clip(np.asarray(c, np.float32), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(c, np.float32), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055).astype(np.float32)


_LUT_SIZE = 65536
_LUT = srgb_to_linear(np.arange(_LUT_SIZE, dtype=np.float32) / (_LUT_SIZE - 1))


def srgb_to_linear_fast(c: np.ndarray) -> np.ndarray:
    """``srgb_to_linear`` through a 16-bit table (error < 2e-5, far below 8-bit output steps;
    a few times faster than the power law on full frames)."""
    c = np.asarray(c, np.float32)
    index = (np.clip(c, 0.0, 1.0) * np.float32(_LUT_SIZE - 1) + np.float32(0.5)).astype(np.uint16)
    return _LUT[index]


def display_to_scene_linear(rgba: np.ndarray, background: Sequence[float] | None) -> np.ndarray:
    """Rasterizer output -> Blender's Combined pass (scene-linear, premultiplied), [H, W, 4].

    rgba: premultiplied display-referred RGBA on a transparent background.
    background: scene-linear RGB of the world (composited in display space, as the CLI does, so
    8-bit outputs agree), or None for a transparent film (alpha kept).
    One fused numba pass (``scene_colour``), equal to ``display_to_scene_linear_reference``.
    """
    from . import scene_colour

    bg = None if background is None else linear_to_srgb(np.asarray(background, np.float32).reshape(3))
    return scene_colour.display_to_scene_linear(rgba, _LUT, bg)


def display_to_scene_linear_reference(rgba: np.ndarray, background: Sequence[float] | None) -> np.ndarray:
    """``display_to_scene_linear`` in plain numpy: the readable twin the tests hold it equal to."""
    rgba = np.asarray(rgba, np.float32)
    alpha = np.clip(rgba[..., 3:4], 0.0, 1.0)
    out = np.empty_like(rgba)
    if background is None:
        straight = np.where(alpha > 1e-6, rgba[..., :3] / np.maximum(alpha, 1e-6), 0.0)
        out[..., :3] = srgb_to_linear_fast(straight) * alpha
        out[..., 3:] = alpha
    else:
        bg = linear_to_srgb(np.asarray(background, np.float32).reshape(3))
        out[..., :3] = srgb_to_linear_fast(rgba[..., :3] + (1.0 - alpha) * bg)
        out[..., 3] = 1.0
    return out


def bottom_up(image: np.ndarray) -> np.ndarray:
    """[H, W, ...] top row first -> contiguous float32 with Blender's row 0 = bottom."""
    return np.ascontiguousarray(np.asarray(image, np.float32)[::-1])


def blender_depth(depth: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Rasterizer depth [H, W] -> Blender Z pass: camera-axis distance, 1e10 where empty."""
    depth = np.asarray(depth, np.float32)
    empty = (np.asarray(alpha) < ALPHA_EMPTY) | ~np.isfinite(depth) | (depth <= 0)
    return np.where(empty, np.float32(DEPTH_EMPTY), depth).astype(np.float32)


# --- one frame ------------------------------------------------------------------------------

@dataclass
class FrameResult:
    """Ready for Blender: rgba [H, W, 4] scene-linear premultiplied, depth [H, W], top row first;
    ``backend`` that ran ("" when there was nothing to draw) and ``fallback`` (RenderResult's)."""

    rgba: np.ndarray
    depth: np.ndarray
    n_gaussians: int
    seconds: float
    backend: str = ""
    fallback: str = ""


def render_gaussians(gaussians: GaussianSet, camera: Camera, width: int, height: int,
                     settings: RenderSettings, background: Sequence[float] | None) -> FrameResult:
    """Rasterize world-space Gaussians and convert for Blender (see display_to_scene_linear)."""
    from .raster import render as raster_render  # the renderer's own module; heavy imports

    start = time.perf_counter()
    width, height = int(width), int(height)
    if width < 1 or height < 1:
        raise GaussianHeadsError(f"render size must be positive, got {width}x{height}")
    backend = fallback = ""
    if len(gaussians) == 0:
        rgba = np.zeros((height, width, 4), np.float32)
        depth = np.full((height, width), DEPTH_EMPTY, np.float32)
    else:
        result = raster_render(gaussians, camera, width, height, (0.0, 0.0, 0.0),
                               mode=settings.mode, sh_degree=settings.sh_degree,
                               backend=settings.backend, interactive=settings.interactive)
        rgba = np.asarray(result.rgba, np.float32)
        depth = blender_depth(result.depth, result.alpha)
        backend, fallback = result.backend, result.fallback
    return FrameResult(display_to_scene_linear(rgba, background), depth, len(gaussians),
                       time.perf_counter() - start, backend, fallback)


def render_frame(instances: Sequence[AvatarInstance], camera: Camera, width: int, height: int,
                 settings: RenderSettings = RenderSettings(),
                 background: Sequence[float] | None = (0.0, 0.0, 0.0),
                 cancel: Callable[[], bool] | None = None) -> FrameResult:
    """Pose every avatar, merge, render at width x height through ``camera``."""
    gaussians = merge_avatars(instances, cancel)
    return render_gaussians(gaussians, camera, width, height, settings, background)


def border_rect(width: int, height: int, use_border: bool, min_x: float, max_x: float,
                min_y: float, max_y: float) -> tuple[int, int, int, int]:
    """Blender's render border in pixels: (x0, y0, x1, y1), origin at the bottom left (as
    ``RenderEngine.begin_result`` takes it), end exclusive; the whole frame without a border.
    The region is ``blender_camera.border_region``'s (float32, truncated, like Blender's C), so
    it always equals the border camera's size; an empty border raises GaussianHeadsError."""
    if not use_border:
        return 0, 0, int(width), int(height)
    r = border_region(width, height, min_x, max_x, min_y, max_y)
    return r.x, r.y, r.x + r.width, r.y + r.height


def sub_camera(camera: Camera, rect: tuple[int, int, int, int]) -> Camera:
    """The part of a full-frame ``camera`` inside ``rect`` (bottom-left origin pixels) as a camera
    of that size: same projection, principal point shifted."""
    from dataclasses import replace

    x0, y0, x1, y1 = rect
    top = camera.height - y1
    return replace(camera, cx=camera.cx - x0, cy=camera.cy - top, width=x1 - x0, height=y1 - y0)


# --- viewport -------------------------------------------------------------------------------

@dataclass
class ViewportFrame:
    """What ``view_draw`` uploads: ``pixels`` float32 [h * w * 4], row 0 = bottom, drawn
    stretched over the region; ``refined`` says it is the full-resolution frame."""

    pixels: np.ndarray
    width: int
    height: int
    refined: bool
    seconds: float


class ViewportRenderer:
    """The interactive viewport, up to the pixel buffer (the GPU upload is view_draw's).

    While the view (matrices, region size), the Gaussians or the settings change, frames render
    at ``scale`` of the region size; once nothing has changed for ``refine_after`` seconds the
    next call renders the full resolution, and later calls reuse it until something changes.
    The posed Gaussians are set by ``view_update`` (``set_gaussians``), so orbiting re-rasterizes
    without re-posing.
    """

    def __init__(self, refine_after: float = 0.3, clock: Callable[[], float] = time.monotonic):
        self.refine_after = refine_after
        self.clock = clock
        self.gaussians: GaussianSet = GaussianSet.empty()
        self.version = 0
        self.last_key: tuple | None = None
        self.last_change = clock()
        self.last_frame: ViewportFrame | None = None

    def set_gaussians(self, gaussians: GaussianSet) -> None:
        self.gaussians = gaussians
        self.version += 1

    @staticmethod
    def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
        scale = float(np.clip(scale, 0.01, 1.0))
        return max(1, int(round(width * scale))), max(1, int(round(height * scale)))

    def frame_pixels(self, width: int, height: int, view_matrix, window_matrix, *,
                     scale: float = 1.0, refine: bool = False,
                     settings: RenderSettings = RenderSettings(),
                     background: Sequence[float] | None = None) -> ViewportFrame:
        """Render the current Gaussians for a region of ``width`` x ``height`` pixels.

        scale: resolution factor (ignored when ``refine``: full resolution).
        background: scene-linear world colour, or None for transparent.
        Returns float32 RGBA, scene-linear premultiplied, row 0 = bottom.
        """
        start = time.perf_counter()
        w, h = (int(width), int(height)) if refine else self.scaled_size(width, height, scale)
        camera = camera_from_view(view_matrix, window_matrix, w, h)
        frame = render_gaussians(self.gaussians, camera, w, h, dataclasses.replace(settings, interactive=True),
                                 background)
        pixels = bottom_up(frame.rgba).reshape(-1)
        return ViewportFrame(pixels, w, h, (w, h) == (int(width), int(height)),
                             time.perf_counter() - start)

    def next_frame(self, width: int, height: int, view_matrix, window_matrix, *,
                   scale: float = 0.5, settings: RenderSettings = RenderSettings(),
                   background: Sequence[float] | None = None) -> tuple[ViewportFrame, bool]:
        """The frame ``view_draw`` should show now, and whether a refinement is still due
        (the caller then asks again after ``refine_after`` seconds)."""
        key = (np.asarray(view_matrix, np.float64).round(9).tobytes(),
               np.asarray(window_matrix, np.float64).round(9).tobytes(),
               int(width), int(height), self.version, settings,
               None if background is None else tuple(float(c) for c in background))
        now = self.clock()
        if key != self.last_key or self.last_frame is None:
            self.last_key, self.last_change = key, now
            self.last_frame = self.frame_pixels(width, height, view_matrix, window_matrix,
                                                scale=scale, settings=settings, background=background)
        elif not self.last_frame.refined and now - self.last_change >= self.refine_after:
            self.last_frame = self.frame_pixels(width, height, view_matrix, window_matrix,
                                                refine=True, settings=settings, background=background)
        return self.last_frame, not self.last_frame.refined


# --- thumbnails -------------------------------------------------------------------------------

def write_png(path, rgba8: np.ndarray) -> None:
    """[H, W, 4] uint8 (top row first) -> an RGBA PNG file (standard library only).

    Writes beside ``path`` and renames, so readers never see a half-written file."""
    import os
    import struct
    import zlib

    image = np.ascontiguousarray(rgba8, np.uint8)
    if image.ndim != 3 or image.shape[2] != 4:
        raise GaussianHeadsError(f"PNG writer takes [H, W, 4] uint8, got {image.shape}")
    h, w = image.shape[:2]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), image.reshape(h, w * 4)], axis=1).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(png)
    os.replace(tmp, path)
