"""The coefficient regressor: head parameters [P] -> blendshape coefficients [A·K].

Network (AGORA-M's shape, widths configurable):
    h1 = leaky(x  · W0 + b0)      W0 [P, H1]
    h2 = leaky(h1 · W1 + b1)      W1 [H1, H2]
    y  =       h2 · W2 + b2       W2 [H2, O]     O = A · K (attribute-major: attribute a owns y[a·K:(a+1)·K])
    leaky(v) = v if v >= 0 else slope · v     (slope 0.2)
Weights are stored "x · W" (input-major), float32. Input standardisation and per-attribute target
scaling used while training are folded into W0/b0 and W2/b2, so the stored network takes raw
parameters and returns raw coefficients.

Implementations of the same function (tests hold them equal):
    MLPWeights.forward      numpy (the reference and the fallback at run time)
    OnnxMLP(onnx_bytes)     onnxruntime, from ``to_onnx(weights)`` (what other runtimes load)
    mlp_reference.torch_module(weights)   torch (tests only)

Training (``train_mlp``) runs in numpy (``mlp_numpy``: hand-derived backprop + Adam, float32) —
what the add-on uses, with nothing beyond numpy; ``MLPConfig.trainer = "torch"`` runs the torch
twin (``mlp_reference.fit_torch``, same init, batches and schedule) where torch is installed.
``to_onnx`` encodes the ONNX model by hand (``onnx_writer``; the ``onnx`` package is not needed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import GaussianHeadsError, check_shape
from .config import MLPConfig
from .mlp_numpy import fit_numpy, init_params
from .onnx_writer import ONNX_INPUT, ONNX_OPSET, ONNX_OUTPUT, mlp_onnx_bytes  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class MLPWeights:
    """w0 [P, H1], b0 [H1], w1 [H1, H2], b1 [H2], w2 [H2, O], b2 [O] (float32); negative_slope."""

    w0: np.ndarray
    b0: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        for name in ("w0", "b0", "w1", "b1", "w2", "b2"):
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.float32))
        check_shape("mlp w0", self.w0, (None, None))
        p, h1 = self.w0.shape
        check_shape("mlp b0", self.b0, (h1,))
        check_shape("mlp w1", self.w1, (h1, None))
        h2 = self.w1.shape[1]
        check_shape("mlp b1", self.b1, (h2,))
        check_shape("mlp w2", self.w2, (h2, None))
        check_shape("mlp b2", self.b2, (self.w2.shape[1],))
        for name in ("w0", "b0", "w1", "b1", "w2", "b2"):
            if not np.isfinite(getattr(self, name)).all():
                raise GaussianHeadsError(f"MLP weight {name} contains NaN or infinity")

    @property
    def n_inputs(self) -> int:
        return int(self.w0.shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.w2.shape[1])

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x [P] or [B, P] -> [O] or [B, O] float32 (numpy)."""
        x = np.asarray(x, np.float32)
        if x.shape[-1] != self.n_inputs:
            raise GaussianHeadsError(f"MLP takes {self.n_inputs} inputs, got {x.shape[-1]}")
        s = np.float32(self.negative_slope)
        h = x @ self.w0 + self.b0
        h = np.where(h >= 0, h, h * s)
        h = h @ self.w1 + self.b1
        h = np.where(h >= 0, h, h * s)
        return h @ self.w2 + self.b2

    def arrays(self, prefix: str = "mlp_") -> dict[str, np.ndarray]:
        return {f"{prefix}{n}": getattr(self, n) for n in ("w0", "b0", "w1", "b1", "w2", "b2")}


@dataclass
class TrainResult:
    """weights: folded MLPWeights; rmse [A] per attribute group on the training set (raw units);
    loss: final mini-batch loss (normalised units); seconds of training."""

    weights: MLPWeights
    rmse: list[float]
    loss: float
    seconds: float


def lr_schedule(config: MLPConfig) -> np.ndarray:
    """[steps] learning rates: cosine decay from lr to lr·lr_final_ratio."""
    frac = np.arange(config.steps) / max(1, config.steps)
    r = config.lr_final_ratio
    return config.lr * (r + (1 - r) * 0.5 * (1 + np.cos(np.pi * frac)))


def initial_state(n: int, p: int, o: int, seed: int, config: MLPConfig):
    """(params, batches): the initial weights (``mlp_numpy.init_params``) and the mini-batch row
    indices [steps, B] (None when B >= n: every step takes the whole set), drawn from ``seed``."""
    rng = np.random.default_rng([int(seed) & 0x7FFFFFFF, 0x4D4C50])  # own stream ("MLP")
    params = init_params(p, config.hidden, o, rng)
    batch = min(config.batch_size, n)
    batches = rng.integers(0, n, size=(config.steps, batch)) if batch < n else None
    return params, batches


def train_mlp(inputs: np.ndarray, targets: np.ndarray, groups: Sequence[tuple[int, int]], seed: int,
              config: MLPConfig = MLPConfig(), tick: Callable[[float], None] | None = None) -> TrainResult:
    """Fit the regressor: inputs [n, P], targets [n, O]; ``groups`` = column ranges (one per attribute).

    Adam on mini-batches of standardised inputs and per-group RMS-scaled targets (both folded into
    the returned weights), on ``config.trainer`` ("numpy", or the "torch" twin). Deterministic for
    a given seed. ``tick(fraction)`` is called every few steps (it may raise to cancel).
    """
    import time

    config.validate()
    x = np.asarray(inputs, np.float64)
    y = np.asarray(targets, np.float64)
    check_shape("inputs", x, (None, None))
    check_shape("targets", y, (x.shape[0], None))
    n, p = x.shape
    o = y.shape[1]
    t0 = time.perf_counter()

    mu = x.mean(0)
    sd = x.std(0)
    sd[sd < 1e-6] = 1.0
    scale = np.ones(o)
    for start, stop in groups:
        rms = float(np.sqrt((y[:, start:stop] ** 2).mean())) if stop > start else 0.0
        scale[start:stop] = rms if rms > 1e-12 else 1.0
    xn = ((x - mu) / sd).astype(np.float32)
    yn = (y / scale).astype(np.float32)
    params, batches = initial_state(n, p, o, seed, config)
    lrs = lr_schedule(config)

    tick_every = max(1, config.steps // 100)
    last = {"loss": float("nan")}

    def on_step(step: int, loss: float) -> None:
        if step % tick_every == 0 or step == config.steps - 1:
            last["loss"] = loss
            if tick is not None:
                tick((step + 1) / config.steps)

    if config.trainer == "torch":
        from .mlp_reference import fit_torch

        w0, b0, w1, b1, w2, b2 = fit_torch(xn, yn, params, batches, lrs, config.negative_slope,
                                           config.weight_decay, config.threads, on_step)
    else:
        # numpy's BLAS keeps its own thread count: changing it from a bake thread while another
        # thread (the viewport) is inside BLAS is unsafe, and a second thread costs ~10 % here
        w0, b0, w1, b1, w2, b2 = fit_numpy(xn, yn, params, batches, lrs, config.negative_slope,
                                           config.weight_decay, on_step)

    w0, w1, w2 = (np.asarray(w, np.float64) for w in (w0, w1, w2))
    b0, b1, b2 = (np.asarray(b, np.float64) for b in (b0, b1, b2))
    weights = MLPWeights(w0 / sd[:, None], b0 - (mu / sd) @ w0, w1, b1, w2 * scale[None, :], b2 * scale,
                         config.negative_slope)
    if config.neutral_exact:
        at_zero = weights.forward(np.zeros(p, np.float32)).astype(np.float64)
        weights = MLPWeights(weights.w0, weights.b0, weights.w1, weights.b1, weights.w2,
                             weights.b2.astype(np.float64) - at_zero, config.negative_slope)
    pred = weights.forward(x.astype(np.float32)).astype(np.float64)
    rmse = [float(np.sqrt(((pred[:, s:e] - y[:, s:e]) ** 2).mean())) if e > s else 0.0 for s, e in groups]
    return TrainResult(weights, rmse, last["loss"], time.perf_counter() - t0)


def to_onnx(weights: MLPWeights) -> bytes:
    """Serialise the network as an ONNX model (opset 17): input "params" [batch, P] float32 ->
    output "coeffs" [batch, O] float32, weights embedded. Encoded by ``onnx_writer`` (no ``onnx``
    package); byte-identical to the ``onnx``-built reference (``mlp_reference.onnx_model_bytes``)."""
    return mlp_onnx_bytes(weights)


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxMLP:
    """onnxruntime session over ``to_onnx`` bytes; ``__call__`` has the numpy forward's signature."""

    def __init__(self, onnx_bytes: bytes, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(bytes(onnx_bytes), sess_options=opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise GaussianHeadsError(f"the bake network's ONNX model does not load: {exc}") from None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x [P] or [B, P] -> [O] or [B, O] float32."""
        x = np.asarray(x, np.float32)
        single = x.ndim == 1
        out = self.session.run([ONNX_OUTPUT], {ONNX_INPUT: x[None] if single else x})[0]
        return out[0] if single else out
