"""Per-attribute truncated SVD of residual matrices that are produced block by block.

A bake has one residual matrix per attribute, A_a [n, D_a] (n samples, D_a = N_gaussians · d_a).
For n = 5,000 and 65k Gaussians the four matrices hold 3.6 G floats (14 GB): they are never
materialised. Instead a *block source* regenerates any range of rows on demand (by posing the
identity again, deterministically):

    source(start, stop) -> [A_0[start:stop], A_1[start:stop], ...]   each [stop - start, D_a] float32

``streaming_svd`` (fast, bounded memory) — randomized range finder on the row space:
    Ω ~ N(0, 1) [D, l]        l = min(K + oversample, n, D)
    Y = (AᵀA)^q Ω             q = power_iters; each application is ONE pass over the rows:
                              Y_new = Σ_blocks A_bᵀ (A_b Q), Q = orth(Y)
                              (q = 0: Y = Aᵀ Ω' with Ω' [n, l] in sample space, one pass of one
                              mat-mul per block instead of two: cheaper, less accurate tail)
    Q = orth(Y)               [D, l]
    B = A Q                   [n, l]  (one more pass)
    B = U S Wᵀ                small dense SVD
    basis = (Q W)ᵀ[:K]        [K, D] orthonormal rows; coeffs = U S [:, :K] = A basisᵀ
Passes over the samples: max(q, 1) + 1. Memory: a few [D, l] matrices + one block of rows.

``exact_svd`` (reference, small problems only) stacks all rows and calls numpy's dense SVD; it has
the same signature and result type. Tests hold the two equal (subspace agreement).

Basis signs are fixed (largest-magnitude entry of each basis row positive) so results are
deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import GaussianHeadsError
from .config import SVDConfig

BlockSource = Callable[[int, int], Sequence[np.ndarray]]
Tick = Callable[[float], None]


@dataclass
class SVDResult:
    """One attribute's factorisation.

    basis            [K, D] float32, orthonormal rows (the blendshapes, flattened); rows of
                     components without energy are zero
    singular_values  [K] float64, descending
    coeffs           [n, K] float32, the rows projected on the basis (A · basisᵀ)
    energy           ‖A‖²_F (float), so captured energy = Σ singular_values² / energy
    """

    basis: np.ndarray
    singular_values: np.ndarray
    coeffs: np.ndarray
    energy: float

    @property
    def captured(self) -> float:
        """Fraction of the squared Frobenius norm that the K components capture, in [0, 1]."""
        if self.energy <= 0:
            return 1.0
        return float(min(1.0, (self.singular_values ** 2).sum() / self.energy))


def _check_k(k: int, n_rows: int, dims: Sequence[int]) -> None:
    if k < 1:
        raise GaussianHeadsError("K must be at least 1")
    if k > n_rows:
        raise GaussianHeadsError(f"K = {k} blendshapes need at least {k} samples (got {n_rows})")
    if k > min(dims):
        raise GaussianHeadsError(f"K = {k} exceeds the smallest attribute width {min(dims)} (too few Gaussians)")


def _blocks(n_rows: int, block_rows: int):
    for start in range(0, n_rows, block_rows):
        yield start, min(n_rows, start + block_rows)


def _get_block(source: BlockSource, start: int, stop: int, dims: Sequence[int]) -> list[np.ndarray]:
    rows = list(source(start, stop))
    if len(rows) != len(dims):
        raise GaussianHeadsError(f"block source returned {len(rows)} matrices, expected {len(dims)}")
    out = []
    for a, (block, d) in enumerate(zip(rows, dims)):
        block = np.asarray(block, np.float32)
        if block.shape != (stop - start, d):
            raise GaussianHeadsError(f"block source returned shape {block.shape} for attribute {a}, "
                                     f"expected {(stop - start, d)}")
        out.append(block)
    return out


def _fix_signs(basis: np.ndarray, coeffs: np.ndarray) -> None:
    """In place: flip rows of ``basis`` [K, D] (and columns of ``coeffs`` [n, K]) so that each row's
    largest-magnitude entry is positive."""
    if basis.size == 0:
        return
    idx = np.abs(basis).argmax(axis=1)
    sign = np.sign(basis[np.arange(len(basis)), idx])
    sign[sign == 0] = 1
    basis *= sign[:, None].astype(basis.dtype)
    coeffs *= sign[None, :].astype(coeffs.dtype)


def _orth(y: np.ndarray) -> np.ndarray:
    """Orthonormal basis [D, l] float32 of the columns of y [D, l] (reduced QR in float64)."""
    q, _ = np.linalg.qr(y.astype(np.float64), mode="reduced")
    return q.astype(np.float32)


def _drop_null(basis: np.ndarray, coeffs: np.ndarray, s: np.ndarray) -> None:
    """In place: zero the basis rows (and coefficients) of components with no energy (singular
    value <= 1e-6 of the largest, or exactly 0): their directions are arbitrary (e.g. an attribute
    the identity never changes), and a zero row keeps the blend from wandering along them."""
    null = s <= max(float(s.max(initial=0.0)) * 1e-6, 0.0)
    basis[null] = 0.0
    coeffs[:, null] = 0.0


def _finish(q: np.ndarray, b: np.ndarray, k: int, energy: float) -> SVDResult:
    u, s, wt = np.linalg.svd(b.astype(np.float64), full_matrices=False)
    basis = (q.astype(np.float64) @ wt[:k].T).T.astype(np.float32)  # [k, D]
    coeffs = (u[:, :k] * s[:k]).astype(np.float32)                  # [n, k]
    _fix_signs(basis, coeffs)
    _drop_null(basis, coeffs, s[:k])
    return SVDResult(np.ascontiguousarray(basis), s[:k].astype(np.float64), coeffs, float(energy))


def streaming_svd(source: BlockSource, n_rows: int, dims: Sequence[int], k: int, seed: int,
                  config: SVDConfig = SVDConfig(), tick: Tick | None = None) -> list[SVDResult]:
    """Randomized truncated SVD of each attribute matrix A_a [n_rows, dims[a]] (module docstring).

    Calls ``source`` (power_iters + 1) times per row; ``tick(fraction)`` after every block
    (fraction of this function's work done, in [0, 1]; it may raise to cancel).
    Returns one ``SVDResult`` per attribute, in ``dims`` order.
    """
    config.validate()
    dims = [int(d) for d in dims]
    _check_k(k, n_rows, dims)
    passes = max(1, config.power_iters) + 1
    n_blocks = -(-n_rows // config.block_rows)
    done = 0

    def step():
        nonlocal done
        done += 1
        if tick is not None:
            tick(done / (passes * n_blocks))

    widths = [min(k + config.oversample, n_rows, d) for d in dims]
    q_mats = []
    if config.power_iters == 0:  # Y = Aᵀ Ω with Ω [n, l] in sample space: one mat-mul per block
        y_mats = [np.zeros((d, l), np.float32) for d, l in zip(dims, widths)]
        omegas = [np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x535644, a]))
                  .standard_normal((n_rows, l), dtype=np.float32) for a, l in enumerate(widths)]
        for start, stop in _blocks(n_rows, config.block_rows):
            for a, block in enumerate(_get_block(source, start, stop, dims)):
                y_mats[a] += block.T @ omegas[a][start:stop]
            step()
        q_mats = y_mats
    for a, (d, l) in enumerate(zip(dims, widths)):
        if config.power_iters == 0:
            break
        rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x535644, a]))
        q_mats.append(rng.standard_normal((d, l), dtype=np.float32))
    for it in range(config.power_iters):
        if it > 0:
            q_mats = [_orth(y) for y in q_mats]
        else:  # scale the test matrix columns to unit norm (keeps float32 sums well ranged)
            q_mats = [y / np.maximum(np.linalg.norm(y, axis=0, keepdims=True), 1e-30) for y in q_mats]
        y_mats = [np.zeros_like(q) for q in q_mats]
        for start, stop in _blocks(n_rows, config.block_rows):
            for a, block in enumerate(_get_block(source, start, stop, dims)):
                z = block @ q_mats[a]                 # [b, l]
                y_mats[a] += block.T @ z              # [D, l]
            step()
        q_mats = y_mats
    q_mats = [_orth(y) for y in q_mats]
    b_mats = [np.zeros((n_rows, l), np.float32) for l in widths]
    energy = [0.0] * len(dims)
    for start, stop in _blocks(n_rows, config.block_rows):
        for a, block in enumerate(_get_block(source, start, stop, dims)):
            b_mats[a][start:stop] = block @ q_mats[a]
            energy[a] += float(np.einsum("ij,ij->", block, block, dtype=np.float64))
        step()
    return [_finish(q, b, k, e) for q, b, e in zip(q_mats, b_mats, energy)]


def exact_svd(source: BlockSource, n_rows: int, dims: Sequence[int], k: int, seed: int,
              config: SVDConfig = SVDConfig(), tick: Tick | None = None) -> list[SVDResult]:
    """Reference twin of ``streaming_svd``: stack all rows (float64) and take numpy's dense SVD.

    Same signature and result; ``seed`` is unused (deterministic). Memory n_rows · Σ dims · 8 B:
    for small problems and tests only.
    """
    config.validate()
    dims = [int(d) for d in dims]
    _check_k(k, n_rows, dims)
    mats = [np.zeros((n_rows, d), np.float64) for d in dims]
    n_blocks = -(-n_rows // config.block_rows)
    for i, (start, stop) in enumerate(_blocks(n_rows, config.block_rows)):
        for a, block in enumerate(_get_block(source, start, stop, dims)):
            mats[a][start:stop] = block
        if tick is not None:
            tick((i + 1) / n_blocks)
    results = []
    for m in mats:
        u, s, vt = np.linalg.svd(m, full_matrices=False)
        basis = vt[:k].astype(np.float32)
        coeffs = (u[:, :k] * s[:k]).astype(np.float32)
        _fix_signs(basis, coeffs)
        _drop_null(basis, coeffs, s[:k])
        results.append(SVDResult(np.ascontiguousarray(basis), s[:k].copy(), coeffs, float((m * m).sum())))
    return results


def truncated_svd(source: BlockSource, n_rows: int, dims: Sequence[int], k: int, seed: int,
                  config: SVDConfig = SVDConfig(), tick: Tick | None = None) -> list[SVDResult]:
    """Dispatch on ``config.method`` ("streaming" or "exact")."""
    fn = streaming_svd if config.method == "streaming" else exact_svd
    return fn(source, n_rows, dims, k, seed, config, tick)


def subspace_distance(basis_a: np.ndarray, basis_b: np.ndarray) -> float:
    """Sine of the largest principal angle between the row spaces of [K, D] bases (0 = same)."""
    qa, _ = np.linalg.qr(np.asarray(basis_a, np.float64).T)
    qb, _ = np.linalg.qr(np.asarray(basis_b, np.float64).T)
    cos = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return float(np.sqrt(max(0.0, 1.0 - float(cos.min()) ** 2)))
