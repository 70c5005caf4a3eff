"""Teeth for a FLAME-layout model, laid out as the GaussianAvatars format expects (own implementation).

GaussianAvatars-format avatars bind Gaussians to the faces of FLAME plus a simple teeth mesh, so
their ``binding_0`` indices and ``static_offset`` rows count teeth faces and vertices after
FLAME's own. This module builds that mesh from the format's published description:

* two lip rings (upper, lower) of ``RING`` = 15 vertices each, ordered from the subject's left
  (+X) to the right; teeth column i sits between upper[i] and lower[i];
* ``d`` = mean distance between paired ring vertices; the column midpoints share their mean
  height and move back (−Z) by 1.5·d;
* eight rows of 15 vertices, appended after the model's V vertices in this order (row r, column i
  is vertex V + 15·r + i):
      0 upper root   = upper edge + 2d up          4 upper root, back   (row 0 moved back by d)
      1 lower root   = lower edge − 2d down        5 upper edge, back   (row 2 moved back by d)
      2 upper edge   = midpoint + 0.1d up          6 lower root, back   (row 1 moved back by d)
      3 lower edge   = midpoint − 0.1d, 0.4d back  7 lower edge, back   (row 3 moved back by d)
* 6 strips of 14 quads (168 triangles), appended after the model's F faces: upper front, back and
  biting side, then lower front, back and biting side (``STRIPS``);
* the upper teeth follow the neck joint and the lower teeth the jaw (LBS weight 1), their identity
  basis is the mean of the paired lip vertices' (expression basis, pose correctives and joint
  regressor rows are zero).

Lip rings: GaussianAvatars picks fixed vertex lists of FLAME; we find rings from the topology
instead (``find_lip_rings``): the mouth opening's boundary loop, grown ``steps`` edges outward,
split into upper (jaw weight < 0.5) and lower half and resampled to 15 vertices by arc length.
Teeth placed this way can sit a few millimetres from GaussianAvatars' own (docs/FORMATS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import GaussianHeadsError
from .model import HeadModel

RING = 15                       # vertices per lip ring and per teeth row
ROWS = 8                        # teeth rows (see the module docstring)
N_TEETH_VERTICES = RING * ROWS  # 120
UPPER_ROWS = (0, 2, 4, 5)
LOWER_ROWS = (1, 3, 6, 7)
NECK, JAW = 1, 2

# (row A, row B, diagonal of the first half, winding swapped) per strip, in face order. Quad i
# joins A[i], A[i+1], B[i], B[i+1]; diagonal "ab" cuts it from A[i] to B[i+1] as triangles
# (A_i, B_i, B_i+1), (A_i, B_i+1, A_i+1); "ba" from A[i+1] to B[i] as (A_i, B_i, A_i+1),
# (A_i+1, B_i, B_i+1). The diagonal flips at the middle column (i >= RING // 2) so each strip is
# mirror-symmetric; "swapped" exchanges the last two corners of every triangle.
STRIPS: tuple[tuple[int, int, str, bool], ...] = (
    (0, 2, "ab", True),    # upper front
    (4, 5, "ab", False),   # upper back
    (5, 2, "ba", False),   # upper biting side
    (3, 1, "ba", True),    # lower front
    (6, 7, "ab", True),    # lower back
    (7, 3, "ba", True),    # lower biting side
)
N_TEETH_FACES = len(STRIPS) * 2 * (RING - 1)  # 168


@dataclass(frozen=True)
class TeethConfig:
    steps: int = 2            # edges from the mouth opening's border to the lip ring


def teeth_faces(n_vertices: int) -> np.ndarray:
    """[168, 3] int32 teeth triangles for a model with ``n_vertices`` vertices before the teeth."""
    out = []
    middle = RING // 2
    for row_a, row_b, first, swapped in STRIPS:
        a = n_vertices + RING * row_a + np.arange(RING)
        b = n_vertices + RING * row_b + np.arange(RING)
        for i in range(RING - 1):
            diagonal = first if i < middle else ("ba" if first == "ab" else "ab")
            if diagonal == "ab":
                tris = [(a[i], b[i], b[i + 1]), (a[i], b[i + 1], a[i + 1])]
            else:
                tris = [(a[i], b[i], a[i + 1]), (a[i + 1], b[i], b[i + 1])]
            for t0, t1, t2 in tris:
                out.append((t0, t2, t1) if swapped else (t0, t1, t2))
    return np.asarray(out, np.int32)


def _boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Vertex sets of the mesh's boundary components (edges used by one face)."""
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    border = uniq[counts == 1]
    if not len(border):
        return []
    parent: dict[int, int] = {}

    def root(v):
        while parent.setdefault(v, v) != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for u, v in border:
        parent[root(int(u))] = root(int(v))
    groups: dict[int, list[int]] = {}
    for v in np.unique(border):
        groups.setdefault(root(int(v)), []).append(int(v))
    return [np.asarray(g, np.int64) for g in groups.values()]


def _grow(faces: np.ndarray, n_vertices: int, start: np.ndarray, steps: int) -> np.ndarray:
    """Vertices exactly ``steps`` edges away from ``start`` (graph distance)."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    dist = np.full(n_vertices, -1, np.int64)
    dist[start] = 0
    front = start
    for k in range(1, steps + 1):
        mask = np.zeros(n_vertices, bool)
        mask[front] = True
        nxt = np.concatenate([edges[mask[edges[:, 0]], 1], edges[mask[edges[:, 1]], 0]])
        nxt = np.unique(nxt[dist[nxt] < 0])
        dist[nxt] = k
        front = nxt
    return front


def _resample(vertices: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``RING`` vertex ids spread evenly (by arc length) along ``ids`` sorted from +X to −X."""
    ids = ids[np.argsort(-vertices[ids, 0], kind="stable")]
    step = np.linalg.norm(np.diff(vertices[ids], axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(step)])
    targets = np.linspace(0.0, arc[-1], RING)
    return ids[np.abs(arc[None, :] - targets[:, None]).argmin(axis=1)]


def find_lip_rings(model: HeadModel, config: TeethConfig = TeethConfig()) -> tuple[np.ndarray, np.ndarray]:
    """(upper [15], lower [15]) vertex ids of the lip rings, ordered from +X to −X.

    The mouth opening is the boundary loop holding both jaw-driven (weight > 0.5) and other
    vertices (the smallest such loop); the ring is the set ``config.steps`` edges outside it.
    """
    faces = np.asarray(model.faces, np.int64)
    v = np.asarray(model.v_template, np.float64)
    jaw = np.asarray(model.weights)[:, JAW]
    candidates = [loop for loop in _boundary_loops(faces) if (jaw[loop] > 0.5).any() and (jaw[loop] <= 0.5).any()]
    if not candidates:
        raise GaussianHeadsError(f"head model '{model.name}' has no mouth opening (a border loop with both "
                                 "jaw-driven and fixed vertices) to build teeth from")
    loop = min(candidates, key=lambda ids: float(np.ptp(v[ids], axis=0).sum()))
    ring = _grow(faces, model.n_vertices, loop, int(config.steps)) if config.steps > 0 else loop
    upper, lower = ring[jaw[ring] <= 0.5], ring[jaw[ring] > 0.5]
    if len(upper) < 2 or len(lower) < 2:
        raise GaussianHeadsError(f"head model '{model.name}': the lip ring around the mouth has too few "
                                 "upper or lower vertices to build teeth")
    return _resample(v, upper), _resample(v, lower)


def teeth_vertices(v_template: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """[120, 3] teeth vertices (row-major, rows as in the module docstring) from the lip rings."""
    lip_u = np.asarray(v_template, np.float64)[upper]
    lip_l = np.asarray(v_template, np.float64)[lower]
    d = float(np.linalg.norm(lip_u - lip_l, axis=1).mean())
    mid = (lip_u + lip_l) / 2
    mid[:, 1] = mid[:, 1].mean()
    mid[:, 2] -= 1.5 * d
    up, back = np.array([0.0, d, 0.0]), np.array([0.0, 0.0, d])
    upper_edge = mid + 0.1 * up
    upper_root = upper_edge + 2 * up
    lower_edge = mid - 0.1 * up - 0.4 * back
    lower_root = lower_edge - 2 * up
    rows = [upper_root, lower_root, upper_edge, lower_edge,
            upper_root - back, upper_edge - back, lower_root - back, lower_edge - back]
    return np.concatenate(rows).astype(np.float32)


def add_teeth(model: HeadModel, config: TeethConfig = TeethConfig(), rings=None) -> HeadModel:
    """``model`` with the 120 teeth vertices and 168 teeth faces appended (a new HeadModel).

    ``rings``: (upper [15], lower [15]) vertex ids; default ``find_lip_rings(model, config)``.
    """
    upper, lower = find_lip_rings(model, config) if rings is None else (np.asarray(r, np.int64) for r in rings)
    n_v, n_t = model.n_vertices, N_TEETH_VERTICES
    v_teeth = teeth_vertices(model.v_template, upper, lower)
    lip_dirs = (model.shapedirs[upper] + model.shapedirs[lower]) / 2              # [15, 3, S]
    shapedirs_teeth = np.tile(lip_dirs, (ROWS, 1, 1))
    weights_teeth = np.zeros((n_t, model.weights.shape[1]), np.float32)
    for row in UPPER_ROWS:
        weights_teeth[RING * row:RING * (row + 1), NECK] = 1.0
    for row in LOWER_ROWS:
        weights_teeth[RING * row:RING * (row + 1), JAW] = 1.0
    faces = np.concatenate([model.faces, teeth_faces(n_v)]).astype(np.int32)

    def pad(a, extra):
        return None if a is None else np.concatenate([a, extra]).astype(np.float32)

    vt, ft = model.vt, model.ft
    if model.has_uv:   # teeth get a small strip of their own along the top edge of the UV square
        u = np.linspace(0.62, 0.38, RING)
        v = 1.0 - 0.005 * (1 + np.arange(ROWS))
        vt = np.concatenate([model.vt, np.stack(np.meshgrid(u, v), -1).reshape(-1, 2)]).astype(np.float32)
        ft = np.concatenate([model.ft, teeth_faces(model.vt.shape[0])]).astype(np.int32)
    masks = {k: np.concatenate([np.asarray(m, bool), np.zeros(n_t, bool)]) for k, m in model.masks.items()}
    masks["teeth"] = np.concatenate([np.zeros(n_v, bool), np.ones(n_t, bool)])
    return replace(
        model, name=f"{model.name}+teeth",
        v_template=pad(model.v_template, v_teeth),
        shapedirs=pad(model.shapedirs, shapedirs_teeth),
        exprdirs=pad(model.exprdirs, np.zeros((n_t, 3, model.n_expr), np.float32)),
        posedirs=pad(model.posedirs, None if model.posedirs is None else np.zeros((n_t,) + model.posedirs.shape[1:])),
        j_regressor=np.concatenate([model.j_regressor, np.zeros((model.j_regressor.shape[0], n_t))], 1).astype(
            np.float32),
        weights=pad(model.weights, weights_teeth), faces=faces, vt=vt, ft=ft, masks=masks)
