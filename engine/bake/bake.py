"""``bake(identity, n_samples, k, seed)``: turn any Identity into a BakedIdentity (AGORA-M).

Stages (progress fractions in brackets, without / with the PSNR report):
1. neutral pose and the sample table (``sampling.sample_inputs``)                      [0.00]
2. truncated SVD per attribute of the posed-minus-neutral residuals, streamed block by
   block (``svd.truncated_svd``; every pass re-poses the samples, deterministically)   [0.00–0.80 / 0.00–0.70]
   and the coefficient bounds coef_max [A, K] = max over samples of |projection|
3. coefficient MLP trained on the projections (``mlp.train_mlp``, numpy), ONNX-encoded  [0.80–0.97 / 0.70–0.85]
4. held-out report (``report.build_report``)                                           [0.97–1.00 / 0.85–1.00]

``cancel()`` is polled before every posed sample and every few training steps; when it returns
True, ``BakeCancelled`` is raised. A bake writes nothing outside memory, so nothing is left behind.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ..errors import GaussianHeadsError
from ..head_model.model import HeadParams
from .attributes import attribute_values, inputs_to_params, params_to_inputs, residual_into, rigid_head_transform
from .baked import BakedIdentity
from .config import ATTRIBUTE_DIMS, BakeConfig
from .mlp import MLPWeights, to_onnx, train_mlp
from .report import BakeReport, build_report
from .sampling import sample_inputs
from .svd import truncated_svd

Progress = Callable[[float, str], None]
Cancel = Callable[[], bool]


class BakeCancelled(GaussianHeadsError):
    """The user cancelled a bake; nothing was written."""

    def __init__(self, message: str = "bake cancelled"):
        super().__init__(message)


def neutral_joints(model, shape: np.ndarray) -> np.ndarray:
    """[2, 3] root and neck joint positions of the shaped neutral mesh (J_regressor · shaped vertices)."""
    v = np.asarray(model.v_template, np.float64) + np.asarray(model.shapedirs, np.float64) @ np.asarray(shape, np.float64)
    joints = np.asarray(model.j_regressor, np.float64) @ v
    return joints[:2].copy()


def extra_frames_to_inputs(frames, n_expr: int) -> np.ndarray | None:
    """The object's own animation as bake inputs [T, E + 9] (rigid parts dropped).

    ``frames``: None; an array [T, E + 9] already in input layout; or anything with ``expr [T, E]``,
    ``jaw [T, 3]`` and ``eyes [T, 2, 3]`` (a batched HeadParams, an animation ParamSequence).
    """
    if frames is None:
        return None
    if isinstance(frames, np.ndarray):
        x = np.asarray(frames, np.float32)
        if x.ndim != 2 or x.shape[1] != n_expr + 9:
            raise GaussianHeadsError(f"extra frames have shape {x.shape}, expected (T, {n_expr + 9})")
        return x
    try:
        expr = np.asarray(frames.expr, np.float32)
        jaw = np.asarray(frames.jaw, np.float32)
        eyes = np.asarray(frames.eyes, np.float32)
    except AttributeError:
        raise GaussianHeadsError("extra frames need expr, jaw and eyes arrays") from None
    if expr.ndim != 2:
        raise GaussianHeadsError("extra frames must be a batch (expr [T, E])")
    t = expr.shape[0]
    params = HeadParams(np.zeros((t, 0), np.float32), expr, np.zeros((t, 3), np.float32),
                        np.zeros((t, 3), np.float32), jaw, eyes.reshape(t, 2, 3), np.zeros((t, 3), np.float32))
    return params_to_inputs(params, n_expr)


def _batched_lbs(identity):
    """For a plain ``BoundIdentity``: a function posing a batch of meshes in one LBS call
    (head_model.lbs batched, ~6x cheaper per frame than one call per frame), else None."""
    from ..avatar.identity import BoundIdentity

    if not isinstance(identity, BoundIdentity) or type(identity).pose is not BoundIdentity.pose:
        return None
    from ..head_model import lbs

    def vertices(rows: np.ndarray, shape: np.ndarray, n_expr: int) -> np.ndarray:
        b = len(rows)
        z = np.zeros((b, 3), np.float32)
        batch = HeadParams(np.broadcast_to(shape, (b, len(shape))).copy(), rows[:, :n_expr], z, z.copy(),
                           rows[:, n_expr:n_expr + 3], rows[:, n_expr + 3:n_expr + 9].reshape(b, 2, 3), z.copy())
        return lbs.forward(identity.model, batch).vertices

    return vertices


def residual_source(identity, inputs: np.ndarray, neutral, attributes, check: Callable[[], None] | None = None):
    """Block source for ``svd``: (start, stop) -> [residuals [stop - start, N·d_a] per attribute].

    inputs [n, E + 9]; neutral: the identity's neutral GaussianSet. Poses ``identity`` once per row
    (deterministic), calling ``check()`` before each pose. A plain ``BoundIdentity`` has its mesh
    posed for the whole block in one batched LBS call, then ``pose_vertices`` per row (the same
    result as ``pose``; tests hold them equal).
    """
    n_expr = inputs.shape[1] - 9
    shape = np.asarray(identity.shape, np.float32)
    attrs = tuple(attributes)
    neutral_values = {a: np.array(attribute_values(neutral, a), np.float32) for a in attrs}
    dims = [len(neutral) * ATTRIBUTE_DIMS[a] for a in attrs]
    batched = _batched_lbs(identity)

    def source(start: int, stop: int) -> list[np.ndarray]:
        rows = [np.empty((stop - start, d), np.float32) for d in dims]
        if check is not None:
            check()
        verts = batched(inputs[start:stop], shape, n_expr) if batched is not None else None
        for i in range(start, stop):
            if check is not None:
                check()
            params = inputs_to_params(inputs[i], shape, n_expr)
            posed = identity.pose(params) if verts is None else identity.pose_vertices(verts[i - start], params)
            for a, name in enumerate(attrs):
                residual_into(posed, neutral_values[name], name, rows[a][i - start])
        for a, name in enumerate(attrs):
            if not np.isfinite(rows[a]).all():
                raise GaussianHeadsError(f"the identity produced NaN or infinite '{name}' while posing samples")
        return rows

    return source


def estimate_neck_weights(identity, neutral, joints: np.ndarray, angle: float = 0.3) -> np.ndarray:
    """[N] float32 in [0, 1]: how much each Gaussian follows the neck joint (vs the root).

    Poses the identity with the neck turned by ``angle`` about +X and about +Y (everything else
    neutral) and fits, per Gaussian, posed ≈ x + w·(M_neck·x − x) in least squares (x = neutral
    mean). Gaussians the neck barely moves (near the joint) get w = 1.
    """
    x = neutral.means.astype(np.float64)
    num = np.zeros(len(x))
    den = np.zeros(len(x))
    for axis in (0, 1):
        params = identity.neutral_params()
        neck = np.zeros(3, np.float32)
        neck[axis] = angle
        params.neck = neck
        posed = identity.pose(params).means.astype(np.float64)
        m = rigid_head_transform(np.zeros(3), neck, np.zeros(3), joints)
        e = x @ m[:3, :3].T + m[:3, 3] - x
        num += ((posed - x) * e).sum(1)
        den += (e * e).sum(1)
    w = np.where(den > 1e-14, num / np.maximum(den, 1e-300), 1.0)
    return np.clip(w, 0.0, 1.0).astype(np.float32)


def _silence_null_outputs(weights: MLPWeights, bases: list[np.ndarray]) -> MLPWeights:
    """Zero the MLP outputs whose basis row is zero (components without energy): their coefficient
    is exactly 0 and the coefficients file stays clean. bases: [K, D] per attribute, output order."""
    w2, b2 = weights.w2.copy(), weights.b2.copy()
    offset = 0
    for basis in bases:
        null = ~np.any(basis, axis=1)
        cols = offset + np.flatnonzero(null)
        w2[:, cols] = 0.0
        b2[cols] = 0.0
        offset += basis.shape[0]
    return MLPWeights(weights.w0, weights.b0, weights.w1, weights.b1, w2, b2, weights.negative_slope)


class _Stepper:
    """Maps stage-local fractions to the overall progress and polls cancel."""

    def __init__(self, progress: Progress | None, cancel: Cancel | None):
        self.progress, self.cancel = progress, cancel
        self.lo, self.hi, self.text = 0.0, 1.0, ""
        self.last = -1.0

    def stage(self, lo: float, hi: float, text: str) -> None:
        self.lo, self.hi, self.text = lo, hi, text
        self(0.0)

    def check(self) -> None:
        if self.cancel is not None and self.cancel():
            raise BakeCancelled()

    def __call__(self, fraction: float) -> None:
        self.check()
        if self.progress is not None:
            value = self.lo + (self.hi - self.lo) * min(1.0, max(0.0, fraction))
            if value - self.last >= 0.002 or fraction >= 1.0 or fraction == 0.0:
                self.last = value
                self.progress(value, self.text)


def bake(identity, n_samples: int, k: int, seed: int, *, config: BakeConfig = BakeConfig(),
         progress: Progress | None = None, cancel: Cancel | None = None, extra_frames=None) -> BakedIdentity:
    """Bake ``identity`` into K blendshapes per attribute + a coefficient MLP.

    identity: any ``Identity`` (``model``, ``shape``, ``neutral_params()``, ``pose(params)``).
    n_samples: parameter tuples posed (N; row 0 is neutral); k: blendshapes per attribute (K <= N);
    seed: makes the bake reproducible (sampling, SVD test matrices, MLP).
    extra_frames: the object's own animation (see ``extra_frames_to_inputs``), mixed into the samples.
    progress(fraction, text): called often with fraction in [0, 1]; cancel() -> True stops the bake
    by raising ``BakeCancelled``.
    Returns a BakedIdentity with ``report`` filled (held-out attribute RMSE; PSNR when
    ``config.report.psnr``).
    """
    config.validate()
    n_samples, k = int(n_samples), int(k)
    if n_samples < 2:
        raise GaussianHeadsError("a bake needs at least 2 samples")
    step = _Stepper(progress, cancel)
    psnr = config.report.psnr and config.report.n_heldout > 0
    bounds = (0.70, 0.85) if psnr else (0.80, 0.97)
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}

    step.stage(0.0, bounds[0], "posing samples")
    model = identity.model
    n_expr = int(model.n_expr)
    shape = np.asarray(identity.shape, np.float32)
    neutral = identity.pose(identity.neutral_params())
    neutral.validate_finite("neutral pose")
    n_g = len(neutral)
    attrs = tuple(config.attributes)
    dims = [n_g * ATTRIBUTE_DIMS[a] for a in attrs]
    if k > min(dims):
        raise GaussianHeadsError(f"K = {k} needs at least {k} Gaussians (the identity has {n_g})")
    if k > n_samples:
        raise GaussianHeadsError(f"K = {k} blendshapes need at least {k} samples (got {n_samples})")
    extra = extra_frames_to_inputs(extra_frames, n_expr)
    inputs = sample_inputs(n_samples, n_expr, seed, config.sampling, expr_space=getattr(model, "expr_space", "arkit"),
                           expr_range=getattr(model, "expr_range", None), extra_inputs=extra)
    seconds["neutral"] = time.perf_counter() - t_start

    source = residual_source(identity, inputs, neutral, attrs, check=step.check)

    t0 = time.perf_counter()
    results = truncated_svd(source, n_samples, dims, k, seed, config.svd, tick=step)
    seconds["svd"] = time.perf_counter() - t0

    step.stage(bounds[0], bounds[1], "training coefficient network")
    t0 = time.perf_counter()
    targets = np.concatenate([r.coeffs for r in results], axis=1)
    groups = [(a * k, (a + 1) * k) for a in range(len(attrs))]
    trained = train_mlp(inputs, targets, groups, seed, config.mlp, tick=step)
    trained.weights = _silence_null_outputs(trained.weights, [r.basis for r in results])
    pred = trained.weights.forward(inputs).astype(np.float64)
    trained.rmse = [float(np.sqrt(((pred[:, s:e] - targets[:, s:e]) ** 2).mean())) for s, e in groups]
    onnx_bytes = to_onnx(trained.weights)
    seconds["mlp"] = time.perf_counter() - t0

    bases = {name: r.basis for name, r in zip(attrs, results)}
    # [A, K]: the largest |coefficient| each component took on the training samples; the run-time
    # kernel skips Gaussians whose blend stays below tolerance within these bounds (blend_kernel)
    coef_max = np.stack([np.abs(r.coeffs).max(axis=0) for r in results]).astype(np.float32)
    meta = {"model": {"name": str(getattr(model, "name", "")), "expr_space": str(getattr(model, "expr_space", "")),
                      "n_shape": int(len(shape)), "n_expr": n_expr}}
    joints = neutral_joints(model, shape)
    neck_weights = estimate_neck_weights(identity, neutral, joints) if config.neck_blend else None
    baked = BakedIdentity(neutral, attrs, bases, trained.weights, onnx_bytes, tuple(model.expr_names), shape,
                          joints, neck_weights, config=config, meta=meta, model=model, coef_max=coef_max)

    step.stage(bounds[1], 1.0, "measuring quality on held-out poses")
    t0 = time.perf_counter()
    report = BakeReport(n_samples=n_samples, k=k, n_gaussians=n_g, attributes=list(attrs),
                        svd_passes=max(1, config.svd.power_iters) + 1 if config.svd.method == "streaming" else 1,
                        svd_method=config.svd.method,
                        captured={a: r.captured for a, r in zip(attrs, results)},
                        train_rmse={a: float(e * np.sqrt(k / (n_g * ATTRIBUTE_DIMS[a]))) for a, e in zip(attrs, trained.rmse)})
    if config.report.n_heldout > 0:
        heldout = sample_inputs(config.report.n_heldout + 1, n_expr, seed, config.sampling,
                                expr_space=getattr(model, "expr_space", "arkit"),
                                expr_range=getattr(model, "expr_range", None), stream=1)[1:]
        build_report(identity, baked, heldout, config.report, report=report, tick=step)
    seconds["report"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_start
    report.seconds = {key: float(v) for key, v in seconds.items()}
    baked.report = report
    step(1.0)
    return baked
