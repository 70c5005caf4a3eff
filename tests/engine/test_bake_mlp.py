"""Coefficient MLP (engine.bake.mlp): numpy, torch and onnxruntime agree; training generalises."""

import numpy as np
import pytest

from engine.bake.config import MLPConfig
from engine.bake.mlp import MLPWeights, OnnxMLP, to_onnx, torch_module, train_mlp
from engine.errors import GaussianHeadsError


def _random_weights(p=11, h1=32, h2=48, o=12, seed=0):
    rng = np.random.default_rng(seed)
    return MLPWeights(rng.normal(size=(p, h1)) / np.sqrt(p), rng.normal(size=h1) * 0.1,
                      rng.normal(size=(h1, h2)) / np.sqrt(h1), rng.normal(size=h2) * 0.1,
                      rng.normal(size=(h2, o)) / np.sqrt(h2), rng.normal(size=o) * 0.1, 0.2)


def test_numpy_torch_onnxruntime_agree():
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
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


def test_forward_rejects_wrong_width_and_bad_weights():
    w = _random_weights()
    with pytest.raises(GaussianHeadsError, match="inputs"):
        w.forward(np.zeros(5, np.float32))
    with pytest.raises(GaussianHeadsError):
        MLPWeights(w.w0, w.b0[:-1], w.w1, w.b1, w.w2, w.b2)
    with pytest.raises(GaussianHeadsError, match="NaN"):
        MLPWeights(w.w0 * np.nan, w.b0, w.w1, w.b1, w.w2, w.b2)


def test_training_recovers_held_out_coefficients():
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    p, o = 6, 8
    a = rng.normal(size=(p, o))

    def target(x):  # smooth, non-linear, two attribute groups of very different scale
        y = np.tanh(x @ a) + 0.3 * (x @ a) ** 2 / p
        y[:, 4:] *= 1e-3
        return y

    x = rng.uniform(-1, 1, size=(400, p))
    x[0] = 0.0
    x_test = rng.uniform(-1, 1, size=(100, p))
    cfg = MLPConfig(hidden=(64, 64), steps=1500, batch_size=128, lr=3e-3)
    res = train_mlp(x, target(x), [(0, 4), (4, 8)], seed=0, config=cfg)
    pred = res.weights.forward(x_test.astype(np.float32))
    y_test = target(x_test)
    for s, e in ((0, 4), (4, 8)):
        err = np.sqrt(((pred[:, s:e] - y_test[:, s:e]) ** 2).mean())
        assert err < 0.08 * y_test[:, s:e].std(), (s, err)
    # neutral_exact: zero inputs give exactly zero coefficients
    np.testing.assert_allclose(res.weights.forward(np.zeros(p, np.float32)), 0.0, atol=1e-6)
    # deterministic for a seed
    res2 = train_mlp(x, target(x), [(0, 4), (4, 8)], seed=0, config=MLPConfig(hidden=(64, 64), steps=50))
    res3 = train_mlp(x, target(x), [(0, 4), (4, 8)], seed=0, config=MLPConfig(hidden=(64, 64), steps=50))
    np.testing.assert_array_equal(res2.weights.w2, res3.weights.w2)
