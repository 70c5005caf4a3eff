"""UV-space helpers in numpy (no torch): a texel rasteriser, shape-deformation maps, a bilinear sampler.

Convention (see ``config`` module docstring): a map is ``[C, H, W]``; texel (row r, column c)
is centred at u = (c + 0.5) / W, v = (r + 0.5) / H (no vertical flip). Sampling a map at a UV
point is bilinear with border clamping, exactly ``torch.nn.functional.grid_sample(map,
grid=(2u - 1, 2v - 1), mode="bilinear", padding_mode="border", align_corners=False)``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..errors import GaussianHeadsError, check_shape

_LOOKUP_CACHE: "OrderedDict[tuple, TexelLookup]" = OrderedDict()
_LOOKUP_CACHE_SIZE = 8


@dataclass(frozen=True)
class TexelLookup:
    """Which face covers each texel of an ``H x W`` UV map, and where in it.

    face [H, W] int32   face index, -1 for texels outside every UV triangle
    bary [H, W, 3] float32  barycentric coordinates of the texel centre in that face (0 outside)
    """

    face: np.ndarray
    bary: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """[H, W] bool: texel lies inside some UV triangle."""
        return self.face >= 0


def rasterize_uv(vt: np.ndarray, ft: np.ndarray, resolution: int) -> TexelLookup:
    """Rasterise the UV layout: for every texel centre, the covering face and its barycentrics.

    vt [T, 2] UVs in [0, 1]; ft [F, 3] UV indices per face; returns a TexelLookup at
    ``resolution x resolution``. Where UV triangles overlap, the higher face index wins.
    Vectorised over (face, candidate texel) pairs from each face's bounding box.
    """
    vt = np.asarray(vt, np.float64)
    ft = np.asarray(ft, np.int64)
    check_shape("vt", vt, (None, 2))
    check_shape("ft", ft, (None, 3))
    res = int(resolution)
    tri = vt[ft] * res - 0.5  # [F, 3, 2] in texel-index units: texel centre c sits at c
    lo = np.clip(np.ceil(tri.min(axis=1) - 1e-9), 0, res - 1).astype(np.int64)  # [F, 2] (x, y)
    hi = np.clip(np.floor(tri.max(axis=1) + 1e-9), 0, res - 1).astype(np.int64)
    e1 = tri[:, 1] - tri[:, 0]
    e2 = tri[:, 2] - tri[:, 0]
    area2 = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    width = hi[:, 0] - lo[:, 0] + 1
    height = hi[:, 1] - lo[:, 1] + 1
    valid = (width > 0) & (height > 0) & (np.abs(area2) > 1e-12)
    counts = np.where(valid, width * height, 0)
    face_map = np.full((res, res), -1, np.int32)
    bary_map = np.zeros((res, res, 3), np.float32)
    total = int(counts.sum())
    if total == 0:
        return TexelLookup(face_map, bary_map)
    faces = np.repeat(np.arange(len(ft)), counts)
    k = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    px = lo[faces, 0] + k % width[faces]
    py = lo[faces, 1] + k // width[faces]
    d = np.stack([px, py], axis=1) - tri[faces, 0]  # [P, 2]
    inv = 1.0 / area2[faces]
    b1 = (d[:, 0] * e2[faces, 1] - d[:, 1] * e2[faces, 0]) * inv
    b2 = (e1[faces, 0] * d[:, 1] - e1[faces, 1] * d[:, 0]) * inv
    b0 = 1.0 - b1 - b2
    eps = 1e-7
    inside = (b0 >= -eps) & (b1 >= -eps) & (b2 >= -eps)
    bary = np.clip(np.stack([b0, b1, b2], axis=1)[inside], 0.0, 1.0)
    bary /= bary.sum(axis=1, keepdims=True)
    face_map[py[inside], px[inside]] = faces[inside]
    bary_map[py[inside], px[inside]] = bary
    return TexelLookup(face_map, bary_map)


def _layout_key(vt: np.ndarray, ft: np.ndarray, resolution: int) -> tuple:
    h = hashlib.sha1()
    for a in (np.ascontiguousarray(vt, np.float64), np.ascontiguousarray(ft, np.int64)):
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return (h.hexdigest(), int(resolution))


def texel_lookup(model, resolution: int) -> TexelLookup:
    """Cached ``rasterize_uv(model.vt, model.ft, resolution)`` (keyed by the layout's content)."""
    if not model.has_uv:
        raise GaussianHeadsError(f"head model '{model.name}' has no UV layout (vt/ft)")
    key = _layout_key(model.vt, model.ft, resolution)
    hit = _LOOKUP_CACHE.get(key)
    if hit is None:
        hit = rasterize_uv(model.vt, model.ft, resolution)
        _LOOKUP_CACHE[key] = hit
        while len(_LOOKUP_CACHE) > _LOOKUP_CACHE_SIZE:
            _LOOKUP_CACHE.popitem(last=False)
    else:
        _LOOKUP_CACHE.move_to_end(key)
    return hit


def shape_displacement(model, shape: np.ndarray) -> np.ndarray:
    """[V, 3] shape-only deformation: shape_vertices(model, shape) - v_template = shapedirs · shape.

    ``shape`` [S'] with S' <= model.n_shape (missing trailing components are zero).
    """
    beta = np.asarray(shape, np.float64).reshape(-1)
    if beta.shape[0] > model.n_shape:
        raise GaussianHeadsError(f"shape has {beta.shape[0]} components; the head model has {model.n_shape}")
    if not np.isfinite(beta).all():
        raise GaussianHeadsError("shape contains NaN or infinity")
    dirs = np.asarray(model.shapedirs)[:, :, : beta.shape[0]]
    return np.einsum("vcs,s->vc", dirs, beta).astype(np.float32)


def shape_uv_map(model, shape: np.ndarray, resolution: int) -> np.ndarray:
    """[4, R, R] float32 UV map of the shape-only deformation: xyz displacement (metres) + mask.

    Texels outside every UV triangle are 0 in all four channels; the mask channel is 1 inside.
    The network normalises the displacement's variance per sample (``networks.normalize_shape_map``).
    """
    lookup = texel_lookup(model, resolution)
    disp = shape_displacement(model, shape)  # [V, 3]
    faces = np.asarray(model.faces, np.int64)
    inside = lookup.mask
    out = np.zeros((4, resolution, resolution), np.float32)
    f = lookup.face[inside]
    corners = disp[faces[f]]  # [P, 3 corners, 3 xyz]
    values = np.einsum("pk,pkc->pc", lookup.bary[inside], corners)
    out[:3, inside] = values.T
    out[3, inside] = 1.0
    return out


class UVSampler:
    """Bilinear sampling of ``[C, H, W]`` maps at fixed UV points (indices and weights precomputed).

    uv [N, 2] in [0, 1] (u along width, v along height); see the module docstring for the convention.
    """

    def __init__(self, uv: np.ndarray, height: int, width: int | None = None):
        uv = np.asarray(uv, np.float64)
        check_shape("uv", uv, (None, 2))
        if not np.isfinite(uv).all():
            raise GaussianHeadsError("UV coordinates contain NaN or infinity")
        self.height = int(height)
        self.width = int(height if width is None else width)
        x = uv[:, 0] * self.width - 0.5
        y = uv[:, 1] * self.height - 0.5
        x0 = np.floor(x)
        y0 = np.floor(y)
        wx = (x - x0).astype(np.float32)
        wy = (y - y0).astype(np.float32)
        x0 = x0.astype(np.int64)
        y0 = y0.astype(np.int64)
        xs = np.clip(np.stack([x0, x0 + 1]), 0, self.width - 1)
        ys = np.clip(np.stack([y0, y0 + 1]), 0, self.height - 1)
        self.index = np.stack([ys[0] * self.width + xs[0], ys[0] * self.width + xs[1],
                               ys[1] * self.width + xs[0], ys[1] * self.width + xs[1]], axis=1)  # [N, 4]
        self.weight = np.stack([(1 - wx) * (1 - wy), wx * (1 - wy), (1 - wx) * wy, wx * wy], axis=1)  # [N, 4]

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def __call__(self, maps: np.ndarray) -> np.ndarray:
        """maps [C, H, W] (or [1, C, H, W]) -> [N, C] float32."""
        maps = np.asarray(maps, np.float32)
        if maps.ndim == 4 and maps.shape[0] == 1:
            maps = maps[0]
        check_shape("maps", maps, (None, self.height, self.width))
        flat = maps.reshape(maps.shape[0], -1).T  # [H*W, C] (a view of the transpose)
        flat = np.ascontiguousarray(flat)
        gathered = flat[self.index]  # [N, 4, C]
        return np.einsum("nk,nkc->nc", self.weight, gathered, optimize=False).astype(np.float32)
