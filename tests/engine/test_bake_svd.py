"""Streaming randomized SVD (engine.bake.svd) against its exact reference twin."""

import numpy as np
import pytest

from engine.bake.config import SVDConfig
from engine.bake.svd import exact_svd, streaming_svd, subspace_distance
from engine.errors import GaussianHeadsError


def _low_rank_source(n, dims, rank, noise, seed=0, decay=0.6):
    """Block source over fixed matrices A_a = U_a S V_aᵀ + noise (returns the source and the matrices)."""
    rng = np.random.default_rng(seed)
    mats = []
    for d in dims:
        u = np.linalg.qr(rng.normal(size=(n, rank)))[0]
        v = np.linalg.qr(rng.normal(size=(d, rank)))[0]
        s = 10.0 * decay ** np.arange(rank)
        mats.append(((u * s) @ v.T + noise * rng.normal(size=(n, d))).astype(np.float32))
    calls = []

    def source(start, stop):
        calls.append((start, stop))
        return [m[start:stop] for m in mats]

    return source, mats, calls


def test_streaming_matches_exact_subspace():
    n, dims, k = 90, [300, 120, 400], 6
    source, mats, calls = _low_rank_source(n, dims, rank=8, noise=1e-4)
    cfg = SVDConfig(oversample=10, power_iters=2, block_rows=16)
    fast = streaming_svd(source, n, dims, k, seed=3, config=cfg)
    ref = exact_svd(source, n, dims, k, seed=3, config=cfg)
    assert len(calls) == 3 * -(-n // 16) + -(-n // 16)  # streaming: power_iters + 1 passes; exact: 1
    for f, r, a in zip(fast, ref, mats):
        assert f.basis.shape == (k, a.shape[1]) and f.coeffs.shape == (n, k)
        assert subspace_distance(f.basis, r.basis) < 1e-3
        np.testing.assert_allclose(f.singular_values, r.singular_values, rtol=1e-4)
        # signs are fixed the same way, so bases and coefficients agree entry by entry
        np.testing.assert_allclose(f.basis, r.basis, atol=2e-3)
        np.testing.assert_allclose(f.coeffs, a @ f.basis.T, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(f.basis @ f.basis.T, np.eye(k), atol=1e-5)
        assert abs(f.energy - r.energy) <= 1e-5 * r.energy
        assert 0.99 < f.captured <= 1.0


def test_full_rank_is_exact():
    n, dims = 20, [60, 45]
    # float32 sketches square the condition number (here ~70, so ~5e3 · 6e-8 ≈ 3e-4 worst case;
    # measured 4.4e-5 streaming, 2e-7 exact): keep the spectrum within ~1e3
    source, mats, _ = _low_rank_source(n, dims, rank=20, noise=0.0, seed=1, decay=0.8)
    for fn, tol in ((streaming_svd, 1e-4), (exact_svd, 2e-5)):
        results = fn(source, n, dims, n, seed=0, config=SVDConfig(oversample=4, block_rows=7))
        for r, a in zip(results, mats):
            np.testing.assert_allclose(r.coeffs @ r.basis, a, atol=tol * np.abs(a).max())
            assert r.captured == pytest.approx(1.0, abs=1e-5)


def test_deterministic_and_single_power_iteration():
    n, dims, k = 40, [80], 4
    source, mats, _ = _low_rank_source(n, dims, rank=4, noise=1e-5, seed=2)
    a = streaming_svd(source, n, dims, k, seed=7, config=SVDConfig(power_iters=1, block_rows=5))
    b = streaming_svd(source, n, dims, k, seed=7, config=SVDConfig(power_iters=1, block_rows=5))
    np.testing.assert_array_equal(a[0].basis, b[0].basis)
    ref = exact_svd(source, n, dims, k, seed=0)
    assert subspace_distance(a[0].basis, ref[0].basis) < 1e-3


def test_zero_matrix_is_harmless():
    n, dims = 10, [30]
    results = streaming_svd(lambda s, e: [np.zeros((e - s, 30), np.float32)], n, dims, 3, seed=0)
    assert np.isfinite(results[0].basis).all() and np.all(results[0].coeffs == 0)
    assert results[0].captured == 1.0


def test_rejects_bad_k_and_bad_blocks():
    source, _, _ = _low_rank_source(10, [20], rank=3, noise=0.0)
    with pytest.raises(GaussianHeadsError, match="samples"):
        streaming_svd(source, 10, [20], 11, seed=0)
    with pytest.raises(GaussianHeadsError, match="width"):
        streaming_svd(source, 10, [5], 6, seed=0)
    with pytest.raises(GaussianHeadsError, match="shape"):
        streaming_svd(lambda s, e: [np.zeros((e - s, 7), np.float32)], 10, [20], 2, seed=0)


def test_sample_space_sketch_without_power_iteration():
    n, dims, k = 80, [200, 90], 5
    source, mats, calls = _low_rank_source(n, dims, rank=5, noise=1e-5, seed=4)
    fast = streaming_svd(source, n, dims, k, seed=1, config=SVDConfig(power_iters=0, block_rows=20))
    assert len(calls) == 2 * 4  # two passes of 4 blocks
    ref = exact_svd(source, n, dims, k, seed=0)
    for f, r in zip(fast, ref):
        assert subspace_distance(f.basis, r.basis) < 1e-3


def test_null_components_are_zeroed():
    n = 12
    rng = np.random.default_rng(0)
    a = (rng.normal(size=(n, 2)) @ rng.normal(size=(2, 40))).astype(np.float32)  # rank 2
    for fn in (streaming_svd, exact_svd):
        r = fn(lambda s, e: [a[s:e]], n, [40], 4, seed=0)[0]
        assert np.all(r.basis[2:] == 0) and np.all(r.coeffs[:, 2:] == 0)
        np.testing.assert_allclose(r.coeffs @ r.basis, a, atol=1e-4)
