"""The rasterizer's colours -> Blender's Combined pass, fused into one numba pass (the fast twin
of ``scene_render.display_to_scene_linear_reference``, which says what it computes).

The numpy reference makes ~10 passes over the frame (clip, divide, table index, gather,
multiply): 6 ms at 512², 21-26 ms at 1280x720 on the project's 2-core machine; this kernel does
the same float32 arithmetic per pixel in one pass, so the results are identical.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .parallel import PARALLEL_LOCK
from .raster import cpu as _cpu  # noqa: F401  (first: sets numba's cache folder and OpenMP's wait policy)

_F = np.float32


@njit(inline="always")
def _linear(value, lut):
    """sRGB-encoded float32 -> linear through the 16-bit table (``scene_render.srgb_to_linear_fast``)."""
    clipped = min(max(value, _F(0.0)), _F(1.0))
    return lut[np.uint16(clipped * _F(lut.shape[0] - 1) + _F(0.5))]


@njit(parallel=True, cache=True)
def _to_scene_linear(rgba, lut, bg, transparent, out):
    """rgba [H, W, 4] premultiplied display-referred -> out [H, W, 4] scene-linear premultiplied;
    bg [3] display-referred background (ignored when ``transparent``)."""
    for j in prange(rgba.shape[0]):
        for i in range(rgba.shape[1]):
            alpha = min(max(rgba[j, i, 3], _F(0.0)), _F(1.0))
            if transparent:
                for c in range(3):
                    straight = rgba[j, i, c] / max(alpha, _F(1e-6)) if alpha > _F(1e-6) else _F(0.0)
                    out[j, i, c] = _linear(straight, lut) * alpha
                out[j, i, 3] = alpha
            else:
                for c in range(3):
                    out[j, i, c] = _linear(rgba[j, i, c] + (_F(1.0) - alpha) * bg[c], lut)
                out[j, i, 3] = _F(1.0)


def display_to_scene_linear(rgba: np.ndarray, lut: np.ndarray, background_srgb: np.ndarray | None) -> np.ndarray:
    """[H, W, 4] float32 -> [H, W, 4] float32 (see ``scene_render.display_to_scene_linear``)."""
    rgba = np.ascontiguousarray(rgba, np.float32)
    out = np.empty_like(rgba)
    transparent = background_srgb is None
    bg = np.zeros(3, np.float32) if transparent else np.asarray(background_srgb, np.float32).reshape(3)
    with PARALLEL_LOCK:
        _to_scene_linear(rgba, lut, bg, transparent, out)
    return out


def warm_up() -> None:
    """Compile (or load from the numba cache) the kernel, both ways it is called."""
    rgba = np.zeros((1, 1, 4), np.float32)
    lut = np.zeros(2, np.float32)
    display_to_scene_linear(rgba, lut, None)
    display_to_scene_linear(rgba, lut, np.zeros(3, np.float32))
