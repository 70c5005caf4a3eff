"""Quality report of a bake, measured on held-out parameters (never used for training).

Held-out inputs come from ``sampling.sample_inputs(..., stream=1)``: the training distribution,
disjoint draws. For each held-out frame the full identity and the baked one are posed:
  * attribute RMSE per attribute (xyz in metres, scale in log units, rotation in quaternion
    units on sign-aligned unit quaternions, opacity in logits): baked vs full, and the best the
    basis can do (full residual projected on the basis: the SVD part of the error alone);
  * PSNR (dB) of baked vs full renders (engine.raster.render, cpu backend, black background,
    premultiplied RGB, peak 1.0) from a front and a three-quarter camera framing the head.

``BakeReport`` is a plain dataclass of numbers and strings; ``to_json()`` / ``from_json()``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..avatar.gaussian_set import GaussianSet
from .attributes import attribute_values, inputs_to_params

if TYPE_CHECKING:  # pragma: no cover
    from .baked import BakedIdentity


@dataclass
class BakeReport:
    """Numbers describing one bake (all JSON-serialisable).

    n_samples, k, n_gaussians, attributes: what was baked.
    seconds: wall time per stage ("neutral", "svd", "mlp", "report", "total").
    svd_passes: passes over the samples (each poses every sample once).
    captured: per attribute, fraction of the training residual energy the K components hold.
    train_rmse: per attribute, RMSE of the MLP's coefficients vs the projections on the training set
        (equal to the residual-space RMSE per element times sqrt(N·d), reported per element here).
    heldout_rmse / heldout_projection_rmse / heldout_residual_rms: per attribute, per element,
        baked vs full, projection vs full, and the size of the residuals themselves (for scale).
    psnr_mean / psnr_min: over held-out frames × cameras (None if PSNR was not measured), whole
        images (the black background counts); psnr_head_mean / psnr_head_min: the same over the
        pixels either render covers (alpha > 1/255) only, a stricter figure;
    psnr_by_camera: mean per camera; resolution, render_backend: how the images were made.
    neck_rmse / neck_max: position error (metres) of the run-time head transform, baked vs full at
        the neutral expression with the neck and head turned (``NECK_PROBES``).
    """

    n_samples: int = 0
    k: int = 0
    n_gaussians: int = 0
    attributes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    svd_passes: int = 0
    svd_method: str = ""
    captured: dict[str, float] = field(default_factory=dict)
    train_rmse: dict[str, float] = field(default_factory=dict)
    n_heldout: int = 0
    heldout_rmse: dict[str, float] = field(default_factory=dict)
    heldout_projection_rmse: dict[str, float] = field(default_factory=dict)
    heldout_residual_rms: dict[str, float] = field(default_factory=dict)
    psnr_mean: float | None = None
    psnr_min: float | None = None
    psnr_by_camera: dict[str, float] = field(default_factory=dict)
    psnr_head_mean: float | None = None
    psnr_head_min: float | None = None
    resolution: int = 0
    render_backend: str = ""
    neck_rmse: float | None = None
    neck_max: float | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict | None) -> "BakeReport | None":
        if data is None:
            return None
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in dict(data).items() if k in names})


# (neck, global_rot) axis-angle pairs, radians: nod, turn while the head turns, a mixed twist
NECK_PROBES = (((0.3, 0.0, 0.0), (0.0, 0.0, 0.0)), ((0.0, 0.4, 0.0), (0.1, 0.3, 0.0)),
               ((0.2, -0.3, 0.1), (0.0, 0.0, 0.0)))


def neck_errors(identity, baked) -> tuple[float, float]:
    """(RMSE, max) of Gaussian positions, baked vs full, over ``NECK_PROBES`` (metres)."""
    sq, count, worst = 0.0, 0, 0.0
    for neck, global_rot in NECK_PROBES:
        params = identity.neutral_params()
        params.neck = np.asarray(neck, np.float32)
        params.global_rot = np.asarray(global_rot, np.float32)
        d = np.linalg.norm(identity.pose(params).means.astype(np.float64) - baked.pose(params).means, axis=1)
        sq += float((d ** 2).sum())
        count += len(d)
        worst = max(worst, float(d.max(initial=0.0)))
    return (float(np.sqrt(sq / count)) if count else 0.0), worst


def _aligned_quats(q: np.ndarray, ref: np.ndarray) -> np.ndarray:
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    return q * np.where((q * ref).sum(1, keepdims=True) < 0, -1.0, 1.0).astype(np.float32)


def attribute_errors(full: GaussianSet, baked: GaussianSet, neutral: GaussianSet, basis: dict[str, np.ndarray],
                     attributes) -> tuple[dict, dict, dict]:
    """Squared-error sums for one frame: (baked vs full, projection vs full, residual²), per attribute,
    each a (sum, count) pair. basis[name] is [K, N·d] with orthonormal rows."""
    err, proj, size = {}, {}, {}
    for name in attributes:
        ref = attribute_values(neutral, name)
        f = attribute_values(full, name)
        b = attribute_values(baked, name)
        if name == "rotation":
            f = _aligned_quats(f, ref)
            b = _aligned_quats(b, ref)
        r = (f - ref).reshape(-1).astype(np.float64)
        p = basis[name].T.astype(np.float64) @ (basis[name].astype(np.float64) @ r)
        err[name] = (float(((b - f).astype(np.float64) ** 2).sum()), r.size)
        proj[name] = (float(((p - r) ** 2).sum()), r.size)
        size[name] = (float((r ** 2).sum()), r.size)
    return err, proj, size


def head_cameras(neutral: GaussianSet, resolution: int, names=("front", "three_quarter")):
    """Cameras framing the neutral head: {name: Camera}, model frame (+Y up, face towards +Z).

    Target = centre of the 2nd..98th percentile box of the means; a 30° vertical field of view at
    a distance that fits the box's bounding sphere. "three_quarter" is the front camera turned
    45° about +Y towards the subject's left (+X).
    """
    from ..raster.camera import Camera, look_at

    m = neutral.means.astype(np.float64)
    if len(m) == 0:
        lo = hi = np.zeros(3)
    else:
        lo, hi = np.percentile(m, 2, axis=0), np.percentile(m, 98, axis=0)
    centre = (lo + hi) / 2
    radius = max(float(np.linalg.norm(hi - lo)) / 2, 1e-3)
    fov = math.radians(30.0)
    dist = radius / math.sin(fov / 2) * 1.05
    f = resolution / 2 / math.tan(fov / 2)
    out = {}
    for name in names:
        angle = {"front": 0.0, "three_quarter": math.radians(45.0)}.get(name)
        if angle is None:
            from ..errors import GaussianHeadsError

            raise GaussianHeadsError(f"unknown report camera '{name}' (front or three_quarter)")
        eye = centre + dist * np.array([math.sin(angle), 0.0, math.cos(angle)])
        out[name] = Camera(look_at(eye, centre, up=(0.0, 1.0, 0.0)), f, f, resolution / 2, resolution / 2,
                           resolution, resolution, near=0.01, far=100.0)
    return out


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """PSNR in dB of two images [H, W, C] (or pixel lists [M, C]) in [0, peak]; identical images
    give 99 dB (capped)."""
    mse = float(((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).mean())
    if mse <= 1e-20:
        return 99.0
    return float(min(99.0, 10.0 * math.log10(peak * peak / mse)))


def build_report(identity, baked: "BakedIdentity", heldout_inputs: np.ndarray, config, *, report: BakeReport,
                 tick: Callable[[float], None] | None = None) -> BakeReport:
    """Fill ``report``'s held-out fields. heldout_inputs [H, P]; config: ReportConfig.

    Poses ``identity`` (full model) and ``baked`` for each held-out row; renders when config.psnr.
    """
    attrs = list(baked.attributes)
    n_expr = len(baked.expr_names)
    neutral = baked.neutral
    bases = {name: baked.basis(name) for name in attrs}
    sums = [{n: [0.0, 0] for n in attrs} for _ in range(3)]
    cams = head_cameras(neutral, config.resolution, config.cameras) if config.psnr else {}
    values: dict[str, list[float]] = {name: [] for name in cams}
    head_values: list[float] = []
    if config.psnr:
        from ..raster import render
    total = max(1, len(heldout_inputs))
    for i, x in enumerate(heldout_inputs):
        params = inputs_to_params(x, baked.shape, n_expr)
        full = identity.pose(params)
        mine = baked.pose(params)
        for acc, part in zip(sums, attribute_errors(full, mine, neutral, bases, attrs)):
            for name, (s, c) in part.items():
                acc[name][0] += s
                acc[name][1] += c
        for name, cam in cams.items():
            ra = render(full, cam, cam.width, cam.height, backend=config.backend).rgba
            rb = render(mine, cam, cam.width, cam.height, backend=config.backend).rgba
            a, b = np.clip(ra[..., :3], 0, 1), np.clip(rb[..., :3], 0, 1)
            values[name].append(psnr(a, b))
            covered = (ra[..., 3] > 1 / 255) | (rb[..., 3] > 1 / 255)
            if covered.any():
                head_values.append(psnr(a[covered], b[covered]))
        if tick is not None:
            tick((i + 1) / total)
    rms = [{n: float(math.sqrt(s / c)) if c else 0.0 for n, (s, c) in acc.items()} for acc in sums]
    report.neck_rmse, report.neck_max = neck_errors(identity, baked)
    report.n_heldout = int(len(heldout_inputs))
    report.heldout_rmse, report.heldout_projection_rmse, report.heldout_residual_rms = rms
    if cams and len(heldout_inputs):
        every = [v for vs in values.values() for v in vs]
        report.psnr_mean = float(np.mean(every))
        report.psnr_min = float(np.min(every))
        report.psnr_by_camera = {n: float(np.mean(v)) for n, v in values.items()}
        if head_values:
            report.psnr_head_mean = float(np.mean(head_values))
            report.psnr_head_min = float(np.min(head_values))
        report.resolution = int(config.resolution)
        report.render_backend = config.backend
    return report
