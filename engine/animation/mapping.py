"""Mapping a ParamSequence onto a target head model's expression channels.

Methods, in the order they are tried for the expression channels:

* **FLAME → FLAME by index.** Source channels named ``expr_<i>`` (our readers' names for FLAME
  coefficients) go to target channel ``i`` when the target is a FLAME-space model; coefficients
  beyond the target's count are ignored, target channels beyond the source's stay 0.
* **ARKit ↔ FLAME by least squares**, when both head models are given. Each expression channel of
  a linear head model is a per-vertex displacement field, so a source channel vector ``e_s``
  deforms the face by ``D_s e_s`` and we want target coefficients ``e_t = M e_s`` with
  ``D_t M ≈ D_s`` over corresponding face vertices:

  1. Face vertices: the union of each model's face regions (``face``, ``lips``, ``eyelids``,
     ``nose``, ``eyebrows`` masks, whichever exist; all vertices when a model has none).
  2. Align the neutral meshes: start from matching centroids and RMS size (both models share the
     FLAME frame, +Y up, +Z forward), then ICP rounds, each fitting the similarity transform
     (scale s, rotation R, translation t) that minimises the squared distance between nearest
     face-vertex pairs, taken both ways (source→target and target→source), pairs farther apart
     than 2.5× the median distance left out, in closed form (Umeyama), until the pairing stops
     changing.
  3. Correspondence: every target face vertex takes its nearest aligned source face vertex.
  4. Source displacements are brought into the target frame (``s R d``; translation does not act on
     displacements) and stacked as ``D_s [3n, E_s]``; the target's as ``D_t [3n, E_t]``.
  5. ``M = argmin ||D_t M − D_s||² + ridge · Σ_j ||D_t[:, j]||² ||M[j, :]||²`` (ridge weighted by
     each target channel's own energy, so it is scale free and weak channels are not shrunk
     more than strong ones), solved in closed form. The relative residual
     ``||D_t M − D_s|| / ||D_s||`` is reported. Self-check on the open model (52 ARKit channels,
     4,790 vertices, 2,063 in the face regions): mapping it onto itself with the default ridge
     1e-5 gives M = I to 1.5e-3 (residual 5e-5) except ``tongueOut``, which moves no face-region
     vertex and so maps to 0; a ridge of 1e-3 would already shrink weak, correlated channels
     (eye look, jaw sideways) by up to 9 %.

* **By name** otherwise (ARKit ↔ ARKit and named channels): names match case-insensitively,
  ignoring ``_ - .`` and spaces, so Live Link Face's ``JawOpen`` drives ``jawOpen``.

Joint channels: ``jaw``, ``neck``, ``global_rot``, ``eyes`` and ``translation`` pass through (the
models share the FLAME joint layout and frame). Head rotation can be routed to the neck joint
instead of the global joint (``MapOptions.head_rotation_to``). For a FLAME target without a
``jawOpen`` channel, a source ``jawOpen`` with no jaw rotation of its own becomes a jaw rotation
about +X (``JAW_OPEN_RADIANS`` per unit), by name and in least squares alike (FLAME opens the
mouth with its jaw joint, so the fit does not try to imitate it with expression components).
Whatever could not be used is listed in the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import GaussianHeadsError
from .names import flame_index, normalize_name
from .sequence import SPACES, ParamSequence

JAW_OPEN_RADIANS = 0.35  # jaw rotation (about +X) for jawOpen = 1 when converting to FLAME joints


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class TargetSpec:
    """What a target avatar animates: its expression channel names (in order), their space, and
    optionally a soft per-channel range ``expr_range [E, 2]``."""

    expr_names: tuple[str, ...]
    space: str
    expr_range: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise GaussianHeadsError(f"unknown expression space {self.space!r}")
        object.__setattr__(self, "expr_names", tuple(str(n) for n in self.expr_names))
        if self.expr_range is not None:
            r = np.asarray(self.expr_range, np.float32)
            if r.shape != (len(self.expr_names), 2):
                raise GaussianHeadsError(f"expr_range has shape {r.shape}, expected ({len(self.expr_names)}, 2)")
            object.__setattr__(self, "expr_range", r)

    @classmethod
    def from_model(cls, model) -> "TargetSpec":
        """From a ``HeadModel`` (its ``expr_names``, ``expr_space`` and ``expr_range``)."""
        return cls(tuple(model.expr_names), model.expr_space, model.expr_range)


@dataclass(frozen=True)
class MapOptions:
    head_rotation_to: str = "global"  # "global" or "neck": which joint receives head rotation
    use_head_rotation: bool = True
    use_eyes: bool = True
    use_jaw: bool = True
    use_translation: bool = True
    ridge: float = 1e-5  # least-squares regularisation, relative (see the module docstring)

    def __post_init__(self) -> None:
        if self.head_rotation_to not in ("global", "neck"):
            raise GaussianHeadsError(f"head_rotation_to must be 'global' or 'neck', not {self.head_rotation_to!r}")
        if not self.ridge >= 0:
            raise GaussianHeadsError("ridge must be >= 0")


@dataclass
class MappingReport:
    """What happened to each source channel.

    mapped:    source channels copied to a target channel of the same meaning (name or index)
    converted: source channels turned into something else (unit/axis conversion, least squares)
    ignored:   source channels that drive nothing on the target
    missing:   target expression channels no source channel drives (they stay 0)
    """

    method: str = "name"
    mapped: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    residual: float | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self, limit: int = 8) -> str:
        """One line for an operator report: counts, then the first few names of each list."""
        def part(label, items):
            if not items:
                return f"{label} 0"
            shown = ", ".join(items[:limit]) + (f", … (+{len(items) - limit})" if len(items) > limit else "")
            return f"{label} {len(items)} ({shown})"

        text = "; ".join([part("mapped", self.mapped), part("converted", self.converted), part("ignored", self.ignored)])
        if self.residual is not None:
            text += f"; least-squares residual {self.residual:.1%}"
        return text

    def to_dict(self) -> dict:
        return {
            "method": self.method, "mapped": list(self.mapped), "converted": list(self.converted),
            "ignored": list(self.ignored), "missing": list(self.missing), "residual": self.residual,
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------- least squares
@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class ExpressionFit:
    """``matrix [E_t, E_s]``: target coefficients = matrix @ source coefficients."""

    matrix: np.ndarray
    residual: float
    scale: float
    n_vertices: int


FACE_REGIONS: tuple[str, ...] = ("face", "lips", "eyelids", "nose", "eyebrows")


def _face_mask(model) -> np.ndarray:
    """``[V]`` bool: the union of the model's face regions (all vertices when it has none)."""
    masks = getattr(model, "masks", None) or {}
    mask = np.zeros(model.v_template.shape[0], bool)
    for region in FACE_REGIONS:
        if region in masks:
            mask |= np.asarray(masks[region], bool)
    if not mask.any():
        mask[:] = True
    return mask


def nearest_indices(queries: np.ndarray, points: np.ndarray, chunk: int = 512) -> np.ndarray:
    """For each ``queries [Q, 3]`` row, the index of the nearest ``points [P, 3]`` row -> ``[Q]`` int64."""
    queries = np.asarray(queries, np.float64)
    points = np.asarray(points, np.float64)
    pn = np.sum(points**2, axis=1)
    out = np.empty(queries.shape[0], np.int64)
    for a in range(0, queries.shape[0], chunk):
        q = queries[a : a + chunk]
        d = pn[None, :] - 2.0 * q @ points.T
        out[a : a + chunk] = np.argmin(d, axis=1)
    return out


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ≈ s R src + t`` for paired points ``[N, 3]`` (Umeyama).

    Returns (s, R [3, 3], t [3]); R is a proper rotation (det +1).
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1.0
    R = U @ D @ Vt
    var_s = np.mean(np.sum(xs**2, axis=1))
    s = float(np.trace(np.diag(S) @ D) / max(var_s, 1e-18))
    t = mu_d - s * R @ mu_s
    return s, R, t


def align_neutrals(src_pts: np.ndarray, dst_pts: np.ndarray, iterations: int = 30) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) taking the source face points ``[Ns, 3]`` onto the target's ``[Nt, 3]``.

    ICP from a centroid and RMS-size start (both meshes are assumed to share the FLAME frame's
    orientation). Each round pairs every source point with its nearest target point *and* every
    target point with its nearest source point (the symmetric pairing avoids the shrinking bias of
    one-sided nearest points when the samplings differ), drops pairs farther apart than 2.5× the
    median (regions only one face mask covers), then refits the similarity in closed form; it stops
    when the pairing no longer changes.
    """
    src_pts = np.asarray(src_pts, np.float64)
    dst_pts = np.asarray(dst_pts, np.float64)
    rms = lambda p: np.sqrt(np.mean(np.sum((p - p.mean(0)) ** 2, axis=1)))  # noqa: E731
    s = float(rms(dst_pts) / max(rms(src_pts), 1e-18))
    R = np.eye(3)
    t = dst_pts.mean(0) - s * src_pts.mean(0)
    prev = None
    for _ in range(iterations):
        moved = s * src_pts @ R.T + t
        fwd = nearest_indices(moved, dst_pts)
        bwd = nearest_indices(dst_pts, moved)
        pairing = (fwd, bwd)
        if prev is not None and np.array_equal(prev[0], fwd) and np.array_equal(prev[1], bwd):
            break
        prev = pairing
        a = np.concatenate([src_pts, src_pts[bwd]])
        b = np.concatenate([dst_pts[fwd], dst_pts])
        # Trim outlier pairs (regions one mask covers and the other does not).
        d2 = np.sum((s * a @ R.T + t - b) ** 2, axis=1)
        keep = d2 <= 6.25 * np.median(d2) + 1e-18
        if keep.sum() >= 3:
            a, b = a[keep], b[keep]
        s, R, t = similarity_fit(a, b)
    return s, R, t


def fit_expression_map(source_model, target_model, ridge: float = 1e-5) -> ExpressionFit:
    """Least-squares matrix taking ``source_model`` expression coefficients to ``target_model``'s.

    Both are ``HeadModel``-like (``v_template [V, 3]``, ``exprdirs [V, 3, E]``, ``masks``).
    Returns an :class:`ExpressionFit` with ``matrix [E_t, E_s]`` (see the module docstring).
    """
    ms, mt = _face_mask(source_model), _face_mask(target_model)
    vs = np.asarray(source_model.v_template, np.float64)[ms]
    vt = np.asarray(target_model.v_template, np.float64)[mt]
    s, R, _t = align_neutrals(vs, vt)
    moved = s * vs @ R.T + _t
    corr = nearest_indices(vt, moved)
    Ds = np.asarray(source_model.exprdirs, np.float64)[ms][corr]  # [n, 3, Es]
    Ds = s * np.einsum("ij,njk->nik", R, Ds)
    Dt = np.asarray(target_model.exprdirs, np.float64)[mt]  # [n, 3, Et]
    n = Dt.shape[0]
    Ds = Ds.reshape(3 * n, -1)
    Dt = Dt.reshape(3 * n, -1)
    gram = Dt.T @ Dt
    # Ridge weighted by each target channel's own energy: scale free, and a channel that moves few
    # face vertices (eye look, jaw sideways) is not shrunk more than a large one.
    scale = np.diag(gram).copy()
    scale[scale <= 0] = max(float(scale.max()), 1e-30)
    M = np.linalg.solve(gram + ridge * np.diag(scale), Dt.T @ Ds)
    denom = float(np.linalg.norm(Ds))
    residual = float(np.linalg.norm(Dt @ M - Ds) / denom) if denom > 0 else 0.0
    return ExpressionFit(M.astype(np.float32), residual, s, n)


# ---------------------------------------------------------------------------- mapping
def _index_by_name(names) -> dict[str, int]:
    return {normalize_name(n): i for i, n in enumerate(names)}


def _source_in_model_order(seq: ParamSequence, model_names, space: str) -> tuple[np.ndarray, list[str], list[str]]:
    """Source curves rearranged to a model's channel order -> (values [T, E_model], used, unused)."""
    out = np.zeros((seq.n_frames, len(model_names)), np.float32)
    lookup = _index_by_name(model_names)
    used, unused = [], []
    for j, name in enumerate(seq.expr_names):
        idx = flame_index(name) if space == "flame" else None
        if idx is None:
            idx = lookup.get(normalize_name(name))
        if idx is None or idx >= len(model_names):
            unused.append(name)
            continue
        out[:, idx] = seq.expr[:, j]
        used.append(name)
    return out, used, unused


def map_sequence(
    seq: ParamSequence,
    target,
    *,
    source_model=None,
    target_model=None,
    options: MapOptions = MapOptions(),
    fit: ExpressionFit | None = None,
) -> tuple[ParamSequence, MappingReport]:
    """Map ``seq`` onto ``target`` (a :class:`TargetSpec` or a ``HeadModel``).

    Returns ``(mapped, report)``: ``mapped`` has the target's ``expr_names`` (in order) and space,
    ``expr [T, E_target]``, and the joint curves routed per ``options``. ``source_model`` (a head
    model in the sequence's space) enables the least-squares ARKit ↔ FLAME mapping; a precomputed
    ``fit`` can be passed to skip fitting.
    """
    if not isinstance(target, TargetSpec):
        target_model = target
        target = TargetSpec.from_model(target)
    report = MappingReport()
    T = seq.n_frames
    E = len(target.expr_names)
    expr = np.zeros((T, E), np.float32)
    driven = np.zeros(E, bool)
    tlookup = _index_by_name(target.expr_names)
    cross = {seq.space, target.space} == {"arkit", "flame"}
    # A FLAME target opens its mouth with the jaw joint, not an expression channel: a source jawOpen
    # (with no jaw rotation of its own) becomes a jaw rotation instead of being fitted/matched.
    jaw_open_src = None
    if target.space == "flame" and "jawopen" not in tlookup and options.use_jaw and not np.any(seq.jaw != 0):
        j = _index_by_name(seq.expr_names).get("jawopen")
        if j is not None and np.any(seq.expr[:, j] != 0):
            jaw_open_src = j
    if cross and source_model is not None and target_model is not None:
        report.method = "least_squares"
        if fit is None:
            fit = fit_expression_map(source_model, target_model, options.ridge)
        lsq_seq = seq
        if jaw_open_src is not None:
            e = seq.expr.copy()
            e[:, jaw_open_src] = 0.0
            lsq_seq = seq.replace(expr=e)
        src, used, unused = _source_in_model_order(lsq_seq, source_model.expr_names, seq.space)
        expr[:] = src @ fit.matrix.T
        driven[:] = True
        report.residual = fit.residual
        if jaw_open_src is not None:
            used = [n for n in used if n != seq.expr_names[jaw_open_src]]
        report.converted += [f"{n} (least squares)" for n in used]
        report.ignored += unused
        report.notes.append(
            f"least squares over {fit.n_vertices} face vertices, alignment scale {fit.scale:.4g}, "
            f"relative residual {fit.residual:.3g}"
        )
    else:
        by_index = seq.space == "flame" and target.space == "flame"
        report.method = "index" if by_index else "name"
        # Named channels first (they claim their target slots), then FLAME coefficients by index.
        order = sorted(range(seq.n_expr), key=lambda j: by_index and flame_index(seq.expr_names[j]) is not None)
        results: dict[int, str] = {}
        for j in order:
            name = seq.expr_names[j]
            idx = flame_index(name) if by_index else None
            if idx is None:
                idx = tlookup.get(normalize_name(name))
            if idx is None or idx >= E or driven[idx]:
                results[j] = ""
                continue
            expr[:, idx] = seq.expr[:, j]
            driven[idx] = True
            results[j] = (name if normalize_name(name) == normalize_name(target.expr_names[idx])
                          else f"{name} -> {target.expr_names[idx]}")
        for j, name in enumerate(seq.expr_names):  # report in the source's order
            (report.mapped.append(results[j]) if results[j] else report.ignored.append(name))
        if cross:
            report.notes.append(
                f"{seq.space} → {target.space} without both head models: matched by name only"
            )
    report.missing = [n for n, d in zip(target.expr_names, driven) if not d]

    def nonzero(a: np.ndarray) -> bool:
        return bool(np.any(a != 0))

    zeros3 = np.zeros((T, 3), np.float32)
    jaw, neck, global_rot = seq.jaw.copy(), seq.neck.copy(), seq.global_rot.copy()
    eyes, translation = seq.eyes.copy(), seq.translation.copy()

    if jaw_open_src is not None:
        jaw[:, 0] = seq.expr[:, jaw_open_src] * JAW_OPEN_RADIANS
        name = seq.expr_names[jaw_open_src]
        if name in report.ignored:
            report.ignored.remove(name)
        report.converted.append(f"{name} -> jaw rotation (1.0 = {JAW_OPEN_RADIANS} rad about +X)")
    if options.use_jaw:
        if nonzero(seq.jaw):
            report.mapped.append("jaw")
    else:
        if nonzero(jaw):
            report.ignored.append("jaw")
        jaw = zeros3.copy()
    if options.use_head_rotation:
        if options.head_rotation_to == "neck":
            neck, global_rot = seq.global_rot.copy(), seq.neck.copy()
        if nonzero(seq.global_rot):
            dest = "neck" if options.head_rotation_to == "neck" else "head_rot"
            if "global_rot" in seq.notes:
                report.converted.append(f"head rotation -> {dest} ({seq.notes['global_rot']})")
            elif dest == "neck":
                report.converted.append("global_rot -> neck")
            else:
                report.mapped.append("global_rot")
        if nonzero(seq.neck):
            report.mapped.append("neck" if options.head_rotation_to == "global" else "neck -> head_rot")
    else:
        for name in ("global_rot", "neck"):
            if nonzero(getattr(seq, name)):
                report.ignored.append(name)
        neck, global_rot = zeros3.copy(), zeros3.copy()
    if options.use_eyes:
        if nonzero(seq.eyes):
            if "eyes" in seq.notes:
                report.converted.append(f"eye rotation -> eyes ({seq.notes['eyes']})")
            else:
                report.mapped.append("eyes")
    else:
        if nonzero(seq.eyes):
            report.ignored.append("eyes")
        eyes = np.zeros((T, 2, 3), np.float32)
    if options.use_translation:
        if nonzero(seq.translation):
            report.mapped.append("translation")
    else:
        if nonzero(seq.translation):
            report.ignored.append("translation")
        translation = zeros3.copy()
    for name, note in seq.notes.items():
        if name not in ("global_rot", "eyes") and name not in seq.expr_names:
            report.notes.append(f"{name}: {note}")
    out = ParamSequence(
        fps=seq.fps, expr_names=target.expr_names, expr=expr, jaw=jaw, neck=neck, global_rot=global_rot,
        eyes=eyes, translation=translation,
        shape=seq.shape if seq.space == target.space else None,
        space=target.space, source_format=seq.source_format,
        notes={k: v for k, v in seq.notes.items() if k in ("fps",)},
    )
    return out, report
