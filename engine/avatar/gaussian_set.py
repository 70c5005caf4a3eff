"""GaussianSet: a bag of 3D Gaussians in the gsplat / INRIA 3DGS conventions.

Arrays are numpy float32:
    means           [N, 3]   world (or model) positions, metres
    log_scales      [N, 3]   natural log of the per-axis standard deviations
    quats           [N, 4]   unit quaternions, (w, x, y, z)
    opacity_logits  [N]      opacity = sigmoid(logit)
    sh              [N, K, 3] spherical-harmonic colour coefficients, K = (d + 1)^2, d in 0..3;
                             colour = 0.5 + sum_k SH_k(dir) * sh[:, k] (DC term: C0 * sh[:, 0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import GaussianHeadsError, check_shape

SH_C0 = 0.28209479177387814


def sh_degree_for(k: int) -> int:
    """SH degree d for K = (d + 1)^2 coefficients; raises for other K."""
    for d in range(4):
        if (d + 1) ** 2 == k:
            return d
    raise GaussianHeadsError(f"{k} SH coefficients per colour channel is not (d+1)^2 for d in 0..3")


def rgb_to_sh_dc(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] colour in [0, 1] -> [..., 3] DC coefficient."""
    return (np.asarray(rgb, np.float32) - 0.5) / SH_C0


def sh_dc_to_rgb(dc: np.ndarray) -> np.ndarray:
    """[..., 3] DC coefficient -> [..., 3] colour (not clipped)."""
    return np.asarray(dc, np.float32) * SH_C0 + 0.5


@dataclass
class GaussianSet:
    means: np.ndarray
    log_scales: np.ndarray
    quats: np.ndarray
    opacity_logits: np.ndarray
    sh: np.ndarray

    def __post_init__(self) -> None:
        self.means = np.ascontiguousarray(self.means, dtype=np.float32)
        self.log_scales = np.ascontiguousarray(self.log_scales, dtype=np.float32)
        self.quats = np.ascontiguousarray(self.quats, dtype=np.float32)
        self.opacity_logits = np.ascontiguousarray(self.opacity_logits, dtype=np.float32)
        self.sh = np.ascontiguousarray(self.sh, dtype=np.float32)
        n = self.means.shape[0] if self.means.ndim == 2 else -1
        check_shape("means", self.means, (None, 3))
        check_shape("log_scales", self.log_scales, (n, 3))
        check_shape("quats", self.quats, (n, 4))
        check_shape("opacity_logits", self.opacity_logits, (n,))
        check_shape("sh", self.sh, (n, None, 3))
        sh_degree_for(self.sh.shape[1])

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return sh_degree_for(self.sh.shape[1])

    @property
    def opacities(self) -> np.ndarray:
        """[N] opacity in (0, 1)."""
        return 1.0 / (1.0 + np.exp(-self.opacity_logits))

    @property
    def scales(self) -> np.ndarray:
        """[N, 3] standard deviations."""
        return np.exp(self.log_scales)

    @classmethod
    def empty(cls, sh_degree: int = 0) -> "GaussianSet":
        k = (sh_degree + 1) ** 2
        z = np.zeros
        return cls(z((0, 3)), z((0, 3)), z((0, 4)), z((0,)), z((0, k, 3)))

    def subset(self, index) -> "GaussianSet":
        """Gaussians selected by a boolean mask or index array."""
        return GaussianSet(self.means[index], self.log_scales[index], self.quats[index],
                           self.opacity_logits[index], self.sh[index])

    def with_sh_degree(self, degree: int) -> "GaussianSet":
        """Same Gaussians with SH truncated or zero-padded to ``degree``."""
        k = (degree + 1) ** 2
        sh = np.zeros((len(self), k, 3), np.float32)
        m = min(k, self.sh.shape[1])
        sh[:, :m] = self.sh[:, :m]
        return GaussianSet(self.means, self.log_scales, self.quats, self.opacity_logits, sh)

    def transformed(self, matrix: np.ndarray) -> "GaussianSet":
        """Apply a 4x4 similarity transform (rotation * uniform scale + translation).

        Means, quaternions and scales move with it, and view-dependent colour (SH degree >= 1)
        turns with the rotation (``sh_rotation.rotate_sh``), so a turned avatar shows each side
        the colour it showed before the turn. Mirrored, sheared or non-uniformly scaled matrices
        raise GaussianHeadsError.
        """
        from .sh_rotation import rotate_sh  # local: keeps this module light
        from .transforms import apply_similarity, split_similarity

        matrix = np.asarray(matrix, np.float64)
        moved = apply_similarity(self, matrix)
        if self.sh_degree > 0:
            rotation, _, _ = split_similarity(matrix)
            moved.sh = rotate_sh(self.sh, rotation)
        return moved

    @staticmethod
    def concatenate(sets: "list[GaussianSet]") -> "GaussianSet":
        """Merge sets; SH is padded to the largest degree among them."""
        sets = [s for s in sets if s is not None]
        if not sets:
            return GaussianSet.empty()
        degree = max(s.sh_degree for s in sets)
        sets = [s.with_sh_degree(degree) if s.sh_degree != degree else s for s in sets]
        return GaussianSet(*(np.concatenate([getattr(s, f) for s in sets]) for f in
                             ("means", "log_scales", "quats", "opacity_logits", "sh")))

    def validate_finite(self, what: str = "Gaussians") -> None:
        for name in ("means", "log_scales", "quats", "opacity_logits", "sh"):
            if not np.isfinite(getattr(self, name)).all():
                raise GaussianHeadsError(f"{what}: {name} contains NaN or infinity")
