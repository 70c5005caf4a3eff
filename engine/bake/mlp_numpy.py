"""Training the coefficient MLP in float32 numpy: hand-derived backprop and Adam (no torch).

The network of ``mlp.py`` in normalised units (x standardised, y scaled per attribute):
    z0 = x·W0 + b0   a0 = leaky(z0)      x [B, P], W0 [P, H1]
    z1 = a0·W1 + b1  a1 = leaky(z1)      W1 [H1, H2]
    out = a1·W2 + b2                      W2 [H2, O]
    loss = mean((out − y)²)               over all B·O entries
Backward (d = ∂loss/∂·, leaky'(z) = 1 if z > 0 else slope, as torch):
    d_out = 2(out − y)/(B·O);  dW2 = a1ᵀ·d_out;  db2 = Σ_rows d_out
    d_z1 = (d_out·W2ᵀ) ⊙ leaky'(z1);  dW1 = a0ᵀ·d_z1;  db1 = Σ_rows d_z1
    d_z0 = (d_z1·W1ᵀ) ⊙ leaky'(z0);   dW0 = xᵀ·d_z0;   db0 = Σ_rows d_z0
Adam as ``torch.optim.Adam`` (β = 0.9, 0.999, ε = 1e-8, L2 weight decay added to the gradient):
    m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
    p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
All parameters live in one flat float32 vector (views per layer), so an Adam step is a handful of
vectorised passes; every mat-mul writes into a preallocated buffer (float32 BLAS sgemm).
``mlp_torch.py`` is the torch twin; tests hold them equal and check the gradient by finite differences.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
LAYER_NAMES = ("w0", "b0", "w1", "b1", "w2", "b2")


def layer_shapes(p: int, hidden: Sequence[int], o: int) -> list[tuple[int, ...]]:
    h1, h2 = hidden
    return [(p, h1), (h1,), (h1, h2), (h2,), (h2, o), (o,)]


def init_params(p: int, hidden: Sequence[int], o: int, rng: np.random.Generator) -> list[np.ndarray]:
    """torch ``nn.Linear``'s default init, drawn with numpy: W and b ~ U(−1/√fan_in, 1/√fan_in)
    (kaiming_uniform with a = √5 gives the same bound). Input-major float32 arrays, LAYER_NAMES order."""
    out = []
    for shape in layer_shapes(p, hidden, o):
        fan_in = shape[0] if len(shape) == 2 else out[-1].shape[0]  # a bias follows its weight
        bound = 1.0 / np.sqrt(fan_in)
        out.append(rng.uniform(-bound, bound, size=shape).astype(np.float32))
    return out


class NumpyMLPTrainer:
    """State of one training run: flat parameters, gradient and Adam moments, batch buffers."""

    def __init__(self, params: Sequence[np.ndarray], batch: int, negative_slope: float, weight_decay: float = 0.0,
                 dtype=np.float32):
        """params: LAYER_NAMES arrays; batch: the largest batch; dtype float32 (float64 for checks)."""
        shapes = [np.shape(a) for a in params]
        sizes = [int(np.prod(s)) for s in shapes]
        self.dtype = dt = np.dtype(dtype)
        self.flat = np.concatenate([np.asarray(a, dt).reshape(-1) for a in params])
        self.grad = np.zeros_like(self.flat)
        self.m = np.zeros_like(self.flat)
        self.v = np.zeros_like(self.flat)
        self.tmp = np.empty_like(self.flat)
        offsets = np.cumsum([0] + sizes)
        self.p = [self.flat[a:b].reshape(s) for a, b, s in zip(offsets[:-1], offsets[1:], shapes)]
        self.g = [self.grad[a:b].reshape(s) for a, b, s in zip(offsets[:-1], offsets[1:], shapes)]
        self.slope = dt.type(negative_slope)
        self.weight_decay = float(weight_decay)
        self.t = 0
        p, h1 = shapes[0]
        h2, o = shapes[4]
        self.batch = batch
        self.xb, self.yb = np.empty((batch, p), dt), np.empty((batch, o), dt)
        self.z0, self.a0, self.mask0 = (np.empty((batch, h1), dt) for _ in range(3))
        self.z1, self.a1, self.mask1 = (np.empty((batch, h2), dt) for _ in range(3))
        self.out = np.empty((batch, o), dt)

    def _leaky(self, z: np.ndarray, a: np.ndarray, mask: np.ndarray) -> None:
        """a = leaky(z); mask = leaky'(z) (1 where z > 0, else slope)."""
        np.copyto(mask, self.slope)
        np.copyto(mask, 1, where=z > 0)
        np.multiply(z, mask, out=a)

    def loss_and_grad(self, x: np.ndarray, y: np.ndarray) -> float:
        """Forward + backward on one batch x [B, P], y [B, O]; fills ``self.grad``; returns the loss."""
        w0, b0, w1, b1, w2, b2 = self.p
        gw0, gb0, gw1, gb1, gw2, gb2 = self.g
        b = x.shape[0]
        z0, a0, z1, a1, out = self.z0[:b], self.a0[:b], self.z1[:b], self.a1[:b], self.out[:b]
        m0, m1 = self.mask0[:b], self.mask1[:b]
        np.matmul(x, w0, out=z0)
        z0 += b0
        self._leaky(z0, a0, m0)
        np.matmul(a0, w1, out=z1)
        z1 += b1
        self._leaky(z1, a1, m1)
        np.matmul(a1, w2, out=out)
        out += b2
        out -= y                                   # out is now the error e
        loss = float(np.dot(out.reshape(-1), out.reshape(-1))) / out.size
        out *= self.dtype.type(2.0 / out.size)     # d_out
        np.matmul(a1.T, out, out=gw2)
        np.sum(out, axis=0, out=gb2)
        np.matmul(out, w2.T, out=z1)               # z1 <- d_a1
        z1 *= m1                                   # d_z1
        np.matmul(a0.T, z1, out=gw1)
        np.sum(z1, axis=0, out=gb1)
        np.matmul(z1, w1.T, out=z0)                # z0 <- d_a0
        z0 *= m0                                   # d_z0
        np.matmul(x.T, z0, out=gw0)
        np.sum(z0, axis=0, out=gb0)
        return loss

    def adam_step(self, lr: float) -> None:
        """One ``torch.optim.Adam`` update of every parameter from ``self.grad``."""
        self.t += 1
        g, m, v, tmp, f = self.grad, self.m, self.v, self.tmp, self.dtype.type
        if self.weight_decay:
            g += f(self.weight_decay) * self.flat
        m *= f(BETA1)
        np.multiply(g, f(1 - BETA1), out=tmp)
        m += tmp
        v *= f(BETA2)
        np.multiply(g, g, out=tmp)
        tmp *= f(1 - BETA2)
        v += tmp
        bc1 = 1.0 - BETA1 ** self.t
        bc2 = 1.0 - BETA2 ** self.t
        np.sqrt(v, out=tmp)
        tmp *= f(1.0 / np.sqrt(bc2))
        tmp += f(EPS)
        np.divide(m, tmp, out=tmp)
        tmp *= f(lr / bc1)
        self.flat -= tmp

    def step(self, xn: np.ndarray, yn: np.ndarray, idx: np.ndarray | None, lr: float) -> float:
        """Gather the batch (rows ``idx``, or all rows when None), backprop, Adam. Returns the loss."""
        if idx is None:
            x, y = xn, yn
        else:
            x, y = self.xb[:len(idx)], self.yb[:len(idx)]
            np.take(xn, idx, axis=0, out=x)
            np.take(yn, idx, axis=0, out=y)
        loss = self.loss_and_grad(x, y)
        self.adam_step(lr)
        return loss


def fit_numpy(xn: np.ndarray, yn: np.ndarray, params: Sequence[np.ndarray], batches: np.ndarray | None,
              lrs: np.ndarray, negative_slope: float, weight_decay: float = 0.0,
              tick: Callable[[int, float], None] | None = None) -> list[np.ndarray]:
    """Train from ``params`` (LAYER_NAMES order) on xn [n, P], yn [n, O] float32.

    batches [steps, B] row indices (None: the full set every step), lrs [steps] learning rates;
    ``tick(step, loss)`` after each step (may raise to cancel). Returns the trained arrays (copies).
    """
    steps = len(lrs)
    batch = xn.shape[0] if batches is None else batches.shape[1]
    trainer = NumpyMLPTrainer(params, batch, negative_slope, weight_decay)
    xn = np.ascontiguousarray(xn, np.float32)
    yn = np.ascontiguousarray(yn, np.float32)
    for step in range(steps):
        loss = trainer.step(xn, yn, None if batches is None else batches[step], float(lrs[step]))
        if tick is not None:
            tick(step, loss)
    return [a.copy() for a in trainer.p]
