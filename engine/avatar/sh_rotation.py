"""Rotating view-dependent colour: real spherical-harmonic coefficients of degree <= 3.

Basis and signs are the rasterizers' (``raster/common.py``, gsplat's / 3DGS'): band 1 is
(-C1 y, C1 z, -C1 x), bands 2 and 3 as in ``raster/reference.py: sh_to_colour``; ``sh_basis``
below writes it once more in numpy and a test holds it equal to the torch one.

A Gaussian turned by an orthogonal R (world = R · local) shows in world direction d the colour it
showed in local direction Rᵀd. So the new coefficients c' satisfy, for every unit d,

    Σ_k c'_k Y_k(d) = Σ_k c_k Y_k(Rᵀd).

Each band l (2l + 1 functions) is closed under rotations and reflections, so c'_l = D_l c_l with one
small matrix per band, the same for every Gaussian.

* ``rotate_sh`` (fast, the render path): D by least squares on fixed sample directions P,
  D = pinv(Y(P)) · Y(RᵀP), exact (to rounding) for orthogonal R because Y(RᵀP) lies in the
  span of Y(P) band by band. pinv is computed once; per call it is a [64, 16] basis
  evaluation and one block-diagonal [K, K] matrix applied to all Gaussians (BLAS products).
* ``rotate_sh_reference`` (the readable twin): projects the rotated colour function back onto the
  basis by quadrature (Gauss-Legendre in z × uniform in φ, exact for the degree-6 products of two
  degree-3 harmonics). Per-Gaussian work; for tests only.

Non-orthogonal matrices (non-uniform scale, shear) are refused: the direction map d -> M⁻¹d/|M⁻¹d|
is not linear, so no degree-3 SH represents the result exactly.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import GaussianHeadsError, check_shape
from ..raster.common import sh_basis_terms

#: Largest |RᵀR - I| entry accepted as orthogonal (float32 object matrices carry ~1e-7 noise).
ORTHO_TOLERANCE = 1e-4
_BANDS = ((1, 4), (4, 9), (9, 16))     # coefficient ranges of bands 1, 2, 3
_CHUNK = 16_384                         # Gaussians per matrix product in rotate_sh


def sh_basis(dirs: np.ndarray, degree: int) -> np.ndarray:
    """[M, 3] directions (normalised here) -> [M, (degree + 1)²] real SH basis, float64."""
    d = np.asarray(dirs, np.float64)
    check_shape("dirs", d, (None, 3))
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    x, y, z = d.T
    return np.stack(sh_basis_terms(x, y, z, degree), axis=1)


def check_orthogonal(rotation: np.ndarray) -> np.ndarray:
    """[3, 3] -> float64 copy; raises GaussianHeadsError unless RᵀR = I (reflections pass)."""
    r = np.array(rotation, np.float64)
    check_shape("rotation", r, (3, 3))
    if not np.isfinite(r).all() or np.abs(r.T @ r - np.eye(3)).max() > ORTHO_TOLERANCE:
        raise GaussianHeadsError(
            "view-dependent colour (SH degree >= 1) can only be rotated or mirrored: remove "
            "non-uniform scale and shear from the transform, or use SH degree 0")
    return r


@functools.lru_cache(maxsize=1)
def _samples() -> tuple[np.ndarray, np.ndarray]:
    """64 Fibonacci-sphere directions P [64, 3] and pinv(Y(P)) [16, 64] for degree 3."""
    i = np.arange(64) + 0.5
    z = 1.0 - 2.0 * i / 64
    phi = np.pi * (1.0 + 5.0 ** 0.5) * i
    r = np.sqrt(1.0 - z * z)
    dirs = np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
    return dirs, np.linalg.pinv(sh_basis(dirs, 3))


def band_matrices(rotation: np.ndarray, degree: int = 3) -> list[np.ndarray]:
    """[3, 3] orthogonal R -> [D_1, …, D_degree], D_l [2l+1, 2l+1] float64 with c'_l = D_l c_l."""
    r = check_orthogonal(rotation)
    dirs, pinv = _samples()
    seen = sh_basis(dirs @ r, 3)          # row p: Y(Rᵀ p)
    full = pinv @ seen                    # [16, 16], block diagonal up to rounding
    return [full[a:b, a:b] for a, b in _BANDS[:degree]]


def rotate_sh(sh: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """[N, K, 3] coefficients (K = 1, 4, 9, 16), [3, 3] orthogonal R -> [N, K, 3] float32, rotated.

    The DC term (band 0) is unchanged. Raises GaussianHeadsError for a non-orthogonal R.
    """
    sh = np.asarray(sh, np.float32)
    check_shape("sh", sh, (None, None, 3))
    k = sh.shape[1]
    degree = {1: 0, 4: 1, 9: 2, 16: 3}.get(k)
    if degree is None:
        raise GaussianHeadsError(f"{k} SH coefficients per colour channel is not (d+1)^2 for d in 0..3")
    full = np.eye(k)
    for (a, b), d in zip(_BANDS, band_matrices(rotation, degree)):
        full[a:b, a:b] = d
    # out[n, i, c] = Σ_j full[i, j] sh[n, j, c], i.e. rows [N, 3K] times kron(full, I3)ᵀ: one BLAS
    # product per chunk of Gaussians, no transposes (measured faster than einsum, per-band
    # products and a numba loop; the chunks keep the working set in cache)
    kron = np.ascontiguousarray(np.kron(full, np.eye(3)).T, dtype=np.float32)
    n = sh.shape[0]
    src = np.ascontiguousarray(sh).reshape(n, 3 * k)
    out = np.empty((n, 3 * k), np.float32)
    for start in range(0, n, _CHUNK):
        np.matmul(src[start:start + _CHUNK], kron, out=out[start:start + _CHUNK])
    return out.reshape(n, k, 3)


@functools.lru_cache(maxsize=1)
def _quadrature() -> tuple[np.ndarray, np.ndarray]:
    """Directions [Q, 3] and weights [Q] (sum 4π) exact for polynomials of degree <= 7."""
    z, wz = np.polynomial.legendre.leggauss(8)
    phi = 2.0 * np.pi * np.arange(16) / 16
    zz, pp = np.meshgrid(z, phi, indexing="ij")
    r = np.sqrt(1.0 - zz * zz)
    dirs = np.stack([r * np.cos(pp), r * np.sin(pp), zz], axis=-1).reshape(-1, 3)
    weights = np.repeat(wz, 16) * (2.0 * np.pi / 16)
    return dirs, weights


def rotate_sh_reference(sh: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Readable twin of ``rotate_sh``: c'_k = ∫ Y_k(d) · colour(Rᵀd) dd by quadrature.

    sh [N, K, 3], rotation [3, 3] orthogonal -> [N, K, 3] float64. Slow (per Gaussian); tests only.
    """
    sh = np.asarray(sh, np.float64)
    r = check_orthogonal(rotation)
    degree = {1: 0, 4: 1, 9: 2, 16: 3}[sh.shape[1]]
    dirs, weights = _quadrature()
    basis = sh_basis(dirs, degree)                            # [Q, K]: Y_k(d)
    colour = np.einsum("qk,nkc->nqc", sh_basis(dirs @ r, degree), sh)   # colour(Rᵀd) per Gaussian
    return np.einsum("q,qk,nqc->nkc", weights, basis, colour)
