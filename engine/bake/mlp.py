"""The coefficient regressor: head parameters [P] -> blendshape coefficients [A·K].

Network (AGORA-M's shape, widths configurable):
    h1 = leaky(x  · W0 + b0)      W0 [P, H1]
    h2 = leaky(h1 · W1 + b1)      W1 [H1, H2]
    y  =       h2 · W2 + b2       W2 [H2, O]     O = A · K (attribute-major: attribute a owns y[a·K:(a+1)·K])
    leaky(v) = v if v >= 0 else slope · v     (slope 0.2)
Weights are stored "x · W" (input-major), float32. Input standardisation and per-attribute target
scaling used while training are folded into W0/b0 and W2/b2, so the stored network takes raw
parameters and returns raw coefficients.

Three implementations of the same function (tests hold them equal):
    MLPWeights.forward      numpy (the reference and the fallback at run time)
    torch_module(weights)   torch (what is trained)
    OnnxMLP(onnx_bytes)     onnxruntime, from ``to_onnx(weights)`` (what other runtimes load)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import GaussianHeadsError, check_shape
from .config import MLPConfig

ONNX_INPUT = "params"
ONNX_OUTPUT = "coeffs"
ONNX_OPSET = 17


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


def torch_module(weights: MLPWeights):
    """A torch ``nn.Sequential`` computing exactly ``weights.forward`` (for training and tests)."""
    import torch
    from torch import nn

    p, h1 = weights.w0.shape
    h2, o = weights.w2.shape
    net = nn.Sequential(nn.Linear(p, h1), nn.LeakyReLU(weights.negative_slope), nn.Linear(h1, h2),
                        nn.LeakyReLU(weights.negative_slope), nn.Linear(h2, o))
    with torch.no_grad():
        for layer, w, b in zip((net[0], net[2], net[4]), (weights.w0, weights.w1, weights.w2),
                               (weights.b0, weights.b1, weights.b2)):
            layer.weight.copy_(torch.from_numpy(w.T.copy()))
            layer.bias.copy_(torch.from_numpy(b.copy()))
    return net


@dataclass
class TrainResult:
    """weights: folded MLPWeights; rmse [A] per attribute group on the training set (raw units);
    loss: final mini-batch loss (normalised units); seconds of training."""

    weights: MLPWeights
    rmse: list[float]
    loss: float
    seconds: float


def train_mlp(inputs: np.ndarray, targets: np.ndarray, groups: Sequence[tuple[int, int]], seed: int,
              config: MLPConfig = MLPConfig(), tick: Callable[[float], None] | None = None) -> TrainResult:
    """Fit the regressor: inputs [n, P], targets [n, O]; ``groups`` = column ranges (one per attribute).

    Deterministic for a given seed and torch thread count. ``tick(fraction)`` is called every few
    steps (it may raise to cancel).
    """
    import time

    import torch
    from torch import nn

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
    xn = torch.from_numpy(((x - mu) / sd).astype(np.float32))
    yn = torch.from_numpy((y / scale).astype(np.float32))

    old_threads = torch.get_num_threads()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) & 0x7FFFFFFF)
            h1, h2 = config.hidden
            net = nn.Sequential(nn.Linear(p, h1), nn.LeakyReLU(config.negative_slope), nn.Linear(h1, h2),
                                nn.LeakyReLU(config.negative_slope), nn.Linear(h2, o))
            gen = torch.Generator().manual_seed(int(seed) & 0x7FFFFFFF)
            opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
            batch = min(config.batch_size, n)
            loss_value = float("nan")
            tick_every = max(1, config.steps // 100)
            for step in range(config.steps):
                frac = step / max(1, config.steps)
                lr = config.lr * (config.lr_final_ratio + (1 - config.lr_final_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))
                for group in opt.param_groups:
                    group["lr"] = lr
                idx = torch.randint(0, n, (batch,), generator=gen) if batch < n else slice(None)
                pred = net(xn[idx])
                loss = torch.mean((pred - yn[idx]) ** 2)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if step % tick_every == 0 or step == config.steps - 1:
                    loss_value = float(loss.detach())
                    if tick is not None:
                        tick((step + 1) / config.steps)
    finally:
        if config.threads > 0:
            torch.set_num_threads(old_threads)

    lin = [net[0], net[2], net[4]]
    w = [layer.weight.detach().double().numpy().T for layer in lin]   # input-major
    b = [layer.bias.detach().double().numpy() for layer in lin]
    w0 = w[0] / sd[:, None]
    b0 = b[0] - (mu / sd) @ w[0]
    w2 = w[2] * scale[None, :]
    b2 = b[2] * scale
    weights = MLPWeights(w0, b0, w[1], b[1], w2, b2, config.negative_slope)
    if config.neutral_exact:
        at_zero = weights.forward(np.zeros(p, np.float32)).astype(np.float64)
        weights = MLPWeights(weights.w0, weights.b0, weights.w1, weights.b1, weights.w2,
                             weights.b2.astype(np.float64) - at_zero, config.negative_slope)
    pred = weights.forward(x.astype(np.float32)).astype(np.float64)
    rmse = [float(np.sqrt(((pred[:, s:e] - y[:, s:e]) ** 2).mean())) if e > s else 0.0 for s, e in groups]
    return TrainResult(weights, rmse, loss_value, time.perf_counter() - t0)


def to_onnx(weights: MLPWeights) -> bytes:
    """Serialise the network as an ONNX model (opset 17): input "params" [batch, P] float32 ->
    output "coeffs" [batch, O] float32. Weights are embedded (no external data)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:  # pragma: no cover - onnx is a pinned dependency
        raise GaussianHeadsError(f"exporting the bake network needs the 'onnx' package ({exc})") from None
    p, o = weights.n_inputs, weights.n_outputs
    inits = [numpy_helper.from_array(getattr(weights, n), name=n) for n in ("w0", "b0", "w1", "b1", "w2", "b2")]
    nodes = [
        helper.make_node("MatMul", [ONNX_INPUT, "w0"], ["m0"]),
        helper.make_node("Add", ["m0", "b0"], ["a0"]),
        helper.make_node("LeakyRelu", ["a0"], ["h1"], alpha=float(weights.negative_slope)),
        helper.make_node("MatMul", ["h1", "w1"], ["m1"]),
        helper.make_node("Add", ["m1", "b1"], ["a1"]),
        helper.make_node("LeakyRelu", ["a1"], ["h2"], alpha=float(weights.negative_slope)),
        helper.make_node("MatMul", ["h2", "w2"], ["m2"]),
        helper.make_node("Add", ["m2", "b2"], [ONNX_OUTPUT]),
    ]
    graph = helper.make_graph(
        nodes, "gaussian_heads_bake_mlp",
        [helper.make_tensor_value_info(ONNX_INPUT, TensorProto.FLOAT, ["batch", p])],
        [helper.make_tensor_value_info(ONNX_OUTPUT, TensorProto.FLOAT, ["batch", o])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              producer_name="gaussian_heads.bake")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


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
