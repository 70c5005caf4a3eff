"""Synthetic scenes for render tests and benchmarks (no head model needed).

``head_shell(n)`` is a head-sized ellipsoid shell of flat, surface-aligned Gaussians with
skin-like colours; ``head_camera(width, height)`` frames it from the front so that it fills about
60% of the frame's height. World frame is Blender's: Z up, the face looks toward -Y.
"""

from __future__ import annotations

import numpy as np

from ..avatar.gaussian_set import GaussianSet, rgb_to_sh_dc
from ..avatar.transforms import matrix_to_quat
from .camera import Camera, look_at

HEAD_RADII = (0.075, 0.095, 0.11)   # metres: half-width, half-depth, half-height (~0.22 m tall)


def head_shell(n: int = 65536, sh_degree: int = 3, seed: int = 0, radii=HEAD_RADII) -> GaussianSet:
    """``n`` Gaussians on an ellipsoid shell: tangential scales ~1.2 mm (area-matched to ``n``),
    normal scale a fifth of that, opacities mostly high, skin colours with a little view
    dependence (SH up to ``sh_degree``)."""
    rng = np.random.default_rng(seed)
    radii = np.asarray(radii, np.float64)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    means = d * radii
    normals = d / radii**2
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    helper = np.where(np.abs(normals[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    t1 = np.cross(normals, helper)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    t2 = np.cross(normals, t1)
    spin = rng.uniform(0.0, 2 * np.pi, (n, 1))               # so the splats are not all aligned
    t1, t2 = np.cos(spin) * t1 + np.sin(spin) * t2, np.cos(spin) * t2 - np.sin(spin) * t1
    rot = np.stack([t1, t2, normals], axis=2)                 # columns: local x, y, z axes
    quats = matrix_to_quat(rot)
    area = 4 * np.pi * ((radii[0] * radii[1]) ** 1.6 + (radii[0] * radii[2]) ** 1.6
                        + (radii[1] * radii[2]) ** 1.6) ** (1 / 1.6) / 3 ** (1 / 1.6)
    tangential = np.sqrt(area / n) * 0.8
    log_scales = np.log(tangential) + rng.normal(0.0, 0.3, (n, 3))
    log_scales[:, 2] -= np.log(5.0)
    opacity_logits = rng.normal(2.5, 1.0, n)
    skin = np.array([0.78, 0.57, 0.47]) + rng.normal(0.0, 0.04, (n, 3))
    skin *= 0.85 + 0.15 * (means[:, 2:3] / radii[2])          # a little darker low on the face
    k = (sh_degree + 1) ** 2
    sh = np.zeros((n, k, 3))
    sh[:, 0] = rgb_to_sh_dc(np.clip(skin, 0, 1))
    if k > 1:
        sh[:, 1:] = rng.normal(0.0, 0.05, (n, k - 1, 3))
    return GaussianSet(means, log_scales, quats, opacity_logits, sh)


def head_camera(width: int = 512, height: int = 512, fill: float = 0.6, orthographic: bool = False,
                radii=HEAD_RADII) -> Camera:
    """A front camera (on -Y, looking at the origin) where the head covers ``fill`` of the
    frame's height; 50 mm lens on a 36 mm sensor for the perspective camera."""
    height_m = 2 * radii[2]
    if orthographic:
        f = fill * height / height_m                            # pixels per metre
        w2c = look_at((0.0, -1.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
        return Camera(w2c, f, f, width / 2, height / 2, width, height, 0.01, 100.0, True)
    f = max(width, height) * 50.0 / 36.0
    distance = f * height_m / (fill * height) + radii[1]
    w2c = look_at((0.0, -distance, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    return Camera(w2c, f, f, width / 2, height / 2, width, height, 0.01, 100.0, False)
