"""Coefficient MLP (engine.bake.mlp): the numpy trainer's backprop is right (finite differences) and
matches its torch twin; numpy, torch and onnxruntime forwards agree; the hand-encoded ONNX equals
the ``onnx`` package's; training generalises; a bake needs neither torch nor onnx."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from engine.bake.config import MLPConfig
from engine.bake.mlp import MLPWeights, OnnxMLP, initial_state, lr_schedule, to_onnx, train_mlp
from engine.bake.mlp_numpy import NumpyMLPTrainer, fit_numpy, init_params
from engine.errors import GaussianHeadsError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _random_weights(p=11, h1=32, h2=48, o=12, seed=0):
    rng = np.random.default_rng(seed)
    return MLPWeights(rng.normal(size=(p, h1)) / np.sqrt(p), rng.normal(size=h1) * 0.1,
                      rng.normal(size=(h1, h2)) / np.sqrt(h1), rng.normal(size=h2) * 0.1,
                      rng.normal(size=(h2, o)) / np.sqrt(h2), rng.normal(size=o) * 0.1, 0.2)


def test_numpy_torch_onnxruntime_agree():
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from engine.bake.mlp_reference import torch_module

    w = _random_weights()
    x = np.random.default_rng(1).normal(size=(7, 11)).astype(np.float32)
    ref = w.forward(x)
    with torch.no_grad():
        via_torch = torch_module(w)(torch.from_numpy(x)).numpy()
    session = OnnxMLP(to_onnx(w))
    np.testing.assert_allclose(via_torch, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(session(x), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(session(x[0]), ref[0], rtol=1e-5, atol=1e-5)
    assert w.forward(x[0]).shape == (12,)


def test_hand_encoded_onnx_equals_the_onnx_package():
    pytest.importorskip("onnx")
    from engine.bake.mlp_reference import onnx_model_bytes

    for seed, slope in ((0, 0.2), (3, 0.01)):
        w = _random_weights(p=7, h1=5, h2=9, o=300, seed=seed)  # O > 127: multi-byte varints
        w = MLPWeights(w.w0, w.b0, w.w1, w.b1, w.w2, w.b2, slope)
        assert to_onnx(w) == onnx_model_bytes(w)


def test_forward_rejects_wrong_width_and_bad_weights():
    w = _random_weights()
    with pytest.raises(GaussianHeadsError, match="inputs"):
        w.forward(np.zeros(5, np.float32))
    with pytest.raises(GaussianHeadsError):
        MLPWeights(w.w0, w.b0[:-1], w.w1, w.b1, w.w2, w.b2)
    with pytest.raises(GaussianHeadsError, match="NaN"):
        MLPWeights(w.w0 * np.nan, w.b0, w.w1, w.b1, w.w2, w.b2)
    with pytest.raises(GaussianHeadsError, match="trainer"):
        MLPConfig(trainer="jax").validate()


def _loss64(params, x, y, slope):
    w0, b0, w1, b1, w2, b2 = params
    h = x @ w0 + b0
    h = np.where(h > 0, h, slope * h)
    h = h @ w1 + b1
    h = np.where(h > 0, h, slope * h)
    return float(np.mean((h @ w2 + b2 - y) ** 2))


def test_backprop_matches_finite_differences():
    rng = np.random.default_rng(4)
    p, hidden, o, b = 5, (7, 6), 4, 9
    params = [a.astype(np.float64) for a in init_params(p, hidden, o, rng)]
    x, y = rng.normal(size=(b, p)), rng.normal(size=(b, o))
    trainer = NumpyMLPTrainer(params, b, 0.2, dtype=np.float64)
    loss = trainer.loss_and_grad(x, y)
    assert loss == pytest.approx(_loss64(params, x, y, 0.2), rel=1e-12)
    eps = 1e-6
    for i, (a, g) in enumerate(zip(params, trainer.g)):
        num = np.zeros_like(a)
        for j in np.ndindex(a.shape):
            plus = [q.copy() for q in params]
            minus = [q.copy() for q in params]
            plus[i][j] += eps
            minus[i][j] -= eps
            num[j] = (_loss64(plus, x, y, 0.2) - _loss64(minus, x, y, 0.2)) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8, err_msg=f"layer {i}")
    # float32 (what training runs) gives the same gradient to float32 precision
    t32 = NumpyMLPTrainer(params, b, 0.2)
    t32.loss_and_grad(x.astype(np.float32), y.astype(np.float32))
    for g32, g64 in zip(t32.g, trainer.g):
        np.testing.assert_allclose(g32, g64, rtol=2e-4, atol=1e-6 * np.abs(g64).max())


def test_numpy_trainer_matches_torch_twin_step_by_step():
    pytest.importorskip("torch")
    from engine.bake.mlp_reference import fit_torch

    rng = np.random.default_rng(5)
    n, p, o = 200, 8, 10
    xn = rng.normal(size=(n, p)).astype(np.float32)
    yn = np.tanh(xn @ rng.normal(size=(p, o))).astype(np.float32)
    cfg = MLPConfig(hidden=(32, 48), steps=25, batch_size=32, lr=3e-3, weight_decay=1e-3)
    params, batches = initial_state(n, p, o, 11, cfg)
    lrs = lr_schedule(cfg)
    a = fit_numpy(xn, yn, params, batches, lrs, 0.2, cfg.weight_decay)
    b = fit_torch(xn, yn, params, batches, lrs, 0.2, cfg.weight_decay)
    for name, u, v, init in zip("w0 b0 w1 b1 w2 b2".split(), a, b, params):
        assert np.abs(u - init).max() > 1e-3, name                        # the weights did move
        np.testing.assert_allclose(u, v, rtol=0, atol=1e-5, err_msg=name)  # the same way
    # full-batch mode (B >= n) too
    params, batches = initial_state(20, p, o, 2, cfg)
    assert batches is None
    a = fit_numpy(xn[:20], yn[:20], params, None, lrs[:5], 0.2)
    b = fit_torch(xn[:20], yn[:20], params, None, lrs[:5], 0.2)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=0, atol=1e-5)


def _target(x, a):  # smooth, non-linear, two attribute groups of very different scale
    y = np.tanh(x @ a) + 0.3 * (x @ a) ** 2 / x.shape[1]
    y[:, 4:] *= 1e-3
    return y


@pytest.mark.parametrize("trainer", ["numpy", "torch"])
def test_training_recovers_held_out_coefficients(trainer):
    if trainer == "torch":
        pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    p = 6
    a = rng.normal(size=(p, 8))
    x = rng.uniform(-1, 1, size=(400, p))
    x[0] = 0.0
    x_test = rng.uniform(-1, 1, size=(100, p))
    cfg = MLPConfig(hidden=(64, 64), steps=1500, batch_size=128, lr=3e-3, trainer=trainer)
    res = train_mlp(x, _target(x, a), [(0, 4), (4, 8)], seed=0, config=cfg)
    pred = res.weights.forward(x_test.astype(np.float32))
    y_test = _target(x_test, a)
    for s, e in ((0, 4), (4, 8)):
        err = np.sqrt(((pred[:, s:e] - y_test[:, s:e]) ** 2).mean())
        assert err < 0.08 * y_test[:, s:e].std(), (s, err)
    # neutral_exact: zero inputs give exactly zero coefficients
    np.testing.assert_allclose(res.weights.forward(np.zeros(p, np.float32)), 0.0, atol=1e-6)
    # deterministic for a seed
    short = MLPConfig(hidden=(64, 64), steps=50, trainer=trainer)
    res2 = train_mlp(x, _target(x, a), [(0, 4), (4, 8)], seed=0, config=short)
    res3 = train_mlp(x, _target(x, a), [(0, 4), (4, 8)], seed=0, config=short)
    np.testing.assert_array_equal(res2.weights.w2, res3.weights.w2)


BLOCKED_RUN = r"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "onnx", "onnxscript", "gsplat"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Block())
import dataclasses
import numpy as np
from tests.engine.test_bake import SMALL, SynthIdentity, _params
from engine.bake import BakedIdentity, ReportConfig, bake
from engine.bake.mlp import OnnxMLP
identity = SynthIdentity(n_gaussians=300)
# the held-out PSNR report as the Bake operator asks for it (cpu renders), smaller images
config = dataclasses.replace(SMALL, report=ReportConfig(n_heldout=2, psnr=True, resolution=32))
baked = bake(identity, 60, 8, seed=1, config=config)
assert baked.report.psnr_mean is not None
baked.save(sys.argv[1])
back = BakedIdentity.load(sys.argv[1])
p = _params(identity, expr=np.full(6, 0.3), jaw=(0.2, 0, 0), neck=(0.1, 0, 0))
np.testing.assert_allclose(back.pose(p).means, baked.pose(p).means, rtol=0, atol=1e-6)
assert back.onnx_bytes and back.metadata()["mlp"]["has_onnx"]
x = np.full(back.mlp.n_inputs, 0.2, np.float32)
np.testing.assert_allclose(OnnxMLP(back.onnx_bytes)(x), back.mlp.forward(x), rtol=1e-5, atol=1e-6)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx", "onnxscript", "gsplat"))
assert not leaked, leaked
print("OK", baked.report.heldout_rmse["xyz"])
"""


def test_bake_save_load_pose_without_torch_or_onnx(tmp_path):
    """A whole bake (sampling, residuals, SVD, numpy MLP, ONNX bytes, PSNR report) + save + load +
    pose in a process where torch, onnx and gsplat cannot be imported; none gets loaded."""
    pytest.importorskip("onnxruntime")
    script = tmp_path / "blocked.py"
    script.write_text(textwrap.dedent(BLOCKED_RUN))
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "b.npz")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("OK")
