"""UV-space sampling of Gaussians on the head mesh, and 3D lifting onto the articulated mesh.

AGORA binds every Gaussian to a point of the head model's UV layout: a triangle (face) and
barycentric coordinates in it. "Lifting" evaluates that point on the posed mesh and gives it the
triangle's local frame, so Gaussians expressed in that frame move, turn and stretch with the mesh.

Local frame of a triangle (v0, v1, v2) (our own construction):
    e1 = v1 - v0, e2 = v2 - v0
    x  = e1 / |e1|                      (along the first edge)
    z  = (e1 × e2) / |e1 × e2|          (the face normal, outward for counter-clockwise faces)
    y  = z × x                          (in the face plane)
    R  = [x y z] (columns), a proper rotation; local → model: p = centre + s · R · p_local
    s  = (|e01| + |e12| + |e20|) / 3    (mean edge length, metres)

Shapes: V vertices, F faces, N Gaussians; a leading batch ``...`` is allowed on vertices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import GaussianHeadsError, check_shape

# Degenerate triangles (zero area) get this frame scale floor (metres) so nothing divides by zero.
_MIN_FACE_SCALE = 1e-9


@dataclass(frozen=True)
class Binding:
    """Where each of N Gaussians sits on the head mesh.

    face_idx [N] int32   bound face
    bary     [N, 3] float32  barycentric coordinates in that face (rows sum to 1)
    uv       [N, 2] float32  the UV point that was sampled (vt interpolated with ``bary``)
    """

    face_idx: np.ndarray
    bary: np.ndarray
    uv: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "face_idx", np.ascontiguousarray(self.face_idx, dtype=np.int32))
        object.__setattr__(self, "bary", np.ascontiguousarray(self.bary, dtype=np.float32))
        object.__setattr__(self, "uv", np.ascontiguousarray(self.uv, dtype=np.float32))
        check_shape("binding face_idx", self.face_idx, (None,))
        n = self.face_idx.shape[0]
        check_shape("binding bary", self.bary, (n, 3))
        check_shape("binding uv", self.uv, (n, 2))

    def __len__(self) -> int:
        return int(self.face_idx.shape[0])

    def subset(self, index) -> "Binding":
        return Binding(self.face_idx[index], self.bary[index], self.uv[index])

    def validate(self, n_faces: int) -> None:
        """Raise GaussianHeadsError unless every face index is in [0, n_faces) and bary is sane."""
        if len(self) and (self.face_idx.min() < 0 or self.face_idx.max() >= n_faces):
            raise GaussianHeadsError(f"binding refers to faces outside the head model's {n_faces} faces")
        if not np.isfinite(self.bary).all() or not np.isfinite(self.uv).all():
            raise GaussianHeadsError("binding contains NaN or infinity")


def uv_face_areas(model) -> np.ndarray:
    """[F] area of every face in the UV layout (0 for faces without UVs or degenerate ones)."""
    if not model.has_uv:
        raise GaussianHeadsError(f"head model '{model.name}' has no UV layout (vt/ft)")
    vt = np.asarray(model.vt, np.float64)
    ft = np.asarray(model.ft)
    check_shape("ft", ft, (model.faces.shape[0], 3))
    tri = vt[ft]
    e1 = tri[:, 1] - tri[:, 0]
    e2 = tri[:, 2] - tri[:, 0]
    return 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])


def face_region_weights(model, region_weights) -> np.ndarray:
    """Per-face sampling density multipliers [F] from ``region_weights``.

    ``region_weights`` is either an array [F] of non-negative weights, or a mapping
    {region name: weight} over ``model.masks``; a face takes the mean of its vertices' weights,
    where a vertex in no listed region weighs 1 and a vertex in several takes the largest.
    """
    n_faces = model.faces.shape[0]
    if isinstance(region_weights, Mapping):
        per_vertex = np.ones(model.n_vertices)
        touched = np.zeros(model.n_vertices, bool)
        for region, weight in region_weights.items():
            if region not in model.masks:
                raise GaussianHeadsError(
                    f"head model '{model.name}' has no region '{region}' (has: {', '.join(sorted(model.masks))})")
            mask = np.asarray(model.masks[region]).astype(bool)
            check_shape(f"mask {region}", mask, (model.n_vertices,))
            w = float(weight)
            per_vertex[mask] = np.where(touched[mask], np.maximum(per_vertex[mask], w), w)
            touched |= mask
        weights = per_vertex[model.faces].mean(axis=1)
    else:
        weights = np.asarray(region_weights, np.float64)
        check_shape("region_weights", weights, (n_faces,))
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise GaussianHeadsError("region weights must be finite and non-negative")
    return weights


def sample_uv_binding(model, n_gaussians: int, seed: int = 0, region_weights=None) -> Binding:
    """Spawn ``n_gaussians`` points uniformly over the head model's UV layout.

    Faces get Gaussians in proportion to their UV area (times ``region_weights``, see
    ``face_region_weights``) by systematic sampling, so every face receives floor or ceil of its
    expected count and the total is exact. Inside a face the points follow an R2 low-discrepancy
    sequence (random start per face) mapped area-preservingly onto the triangle, so coverage is
    even rather than clumped. Deterministic for a given (model, n_gaussians, seed, weights).

    Returns a Binding with face_idx [N], bary [N, 3], uv [N, 2], ordered by face.
    """
    n = int(n_gaussians)
    if n <= 0:
        raise GaussianHeadsError(f"number of Gaussians must be positive, got {n_gaussians}")
    area = uv_face_areas(model)
    if region_weights is not None:
        area = area * face_region_weights(model, region_weights)
    total = area.sum()
    if not total > 0:
        raise GaussianHeadsError(f"head model '{model.name}' has an empty UV layout")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x6A09E667]))

    # Systematic allocation: cumulative expected counts, one shared random phase.
    cum = np.cumsum(area) * (n / total)
    phase = rng.random()
    edges = np.floor(np.concatenate([[0.0], cum]) + phase).astype(np.int64)
    counts = np.diff(edges)
    counts[-1] += n - counts.sum()  # guards float round-off in cum[-1]
    face_idx = np.repeat(np.arange(len(area), dtype=np.int64), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    k = np.arange(n) - starts  # index of the point within its face

    # R2 sequence (generalised golden ratio) with a per-face random start.
    g = 1.32471795724474602596
    offsets = rng.random((len(area), 2))
    r1 = (offsets[face_idx, 0] + (k + 1) / g) % 1.0
    r2 = (offsets[face_idx, 1] + (k + 1) / (g * g)) % 1.0
    sq = np.sqrt(r1)
    bary = np.stack([1.0 - sq, sq * (1.0 - r2), sq * r2], axis=1)

    tri_uv = np.asarray(model.vt, np.float64)[np.asarray(model.ft)[face_idx]]  # [N, 3, 2]
    uv = np.einsum("nk,nkc->nc", bary, tri_uv)
    return Binding(face_idx.astype(np.int32), bary.astype(np.float32), uv.astype(np.float32))


def face_frames(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local frame of every triangle.

    vertices [..., V, 3], faces [F, 3] -> (rot [..., F, 3, 3] with columns (x, y, z=normal),
    scale [..., F] mean edge length). See the module docstring for the construction.
    """
    vertices = np.asarray(vertices)
    if vertices.ndim < 2 or vertices.shape[-1] != 3:
        raise GaussianHeadsError(f"vertices has shape {vertices.shape}, expected (..., V, 3)")
    faces = np.asarray(faces)
    check_shape("faces", faces, (None, 3))
    dtype = vertices.dtype if vertices.dtype in (np.float32, np.float64) else np.float64
    v = vertices.astype(dtype, copy=False)
    v0 = v[..., faces[:, 0], :]
    v1 = v[..., faces[:, 1], :]
    v2 = v[..., faces[:, 2], :]
    return _frames_from_corners(v0, v1, v2)


def _frames_from_corners(v0, v1, v2):
    e1 = v1 - v0
    e2 = v2 - v0
    e3 = v2 - v1
    l1 = np.sqrt(np.einsum("...i,...i->...", e1, e1))
    l2 = np.sqrt(np.einsum("...i,...i->...", e2, e2))
    l3 = np.sqrt(np.einsum("...i,...i->...", e3, e3))
    tiny = np.asarray(_MIN_FACE_SCALE, v0.dtype)
    x = e1 / np.maximum(l1, tiny)[..., None]
    nrm = np.cross(e1, e2)
    nl = np.sqrt(np.einsum("...i,...i->...", nrm, nrm))
    z = nrm / np.maximum(nl, tiny * tiny)[..., None]
    y = np.cross(z, x)
    rot = np.stack([x, y, z], axis=-1)
    scale = np.maximum((l1 + l2 + l3) / 3.0, tiny)
    return rot, scale


def lift(vertices: np.ndarray, faces: np.ndarray, binding: Binding) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate the bound points and their triangles' frames on a (posed) mesh.

    vertices [..., V, 3], faces [F, 3], binding (N) ->
    (points [..., N, 3], rot [..., N, 3, 3], scale [..., N]).
    """
    vertices = np.asarray(vertices)
    if vertices.ndim < 2 or vertices.shape[-1] != 3:
        raise GaussianHeadsError(f"vertices has shape {vertices.shape}, expected (..., V, 3)")
    faces = np.asarray(faces)
    check_shape("faces", faces, (None, 3))
    binding.validate(faces.shape[0])
    dtype = vertices.dtype if vertices.dtype in (np.float32, np.float64) else np.float64
    v = vertices.astype(dtype, copy=False)
    corner = faces[binding.face_idx]  # [N, 3]
    v0 = v[..., corner[:, 0], :]
    v1 = v[..., corner[:, 1], :]
    v2 = v[..., corner[:, 2], :]
    b = binding.bary.astype(dtype, copy=False)
    points = v0 * b[:, 0:1] + v1 * b[:, 1:2] + v2 * b[:, 2:3]
    rot, scale = _frames_from_corners(v0, v1, v2)
    return points, rot, scale
