"""The training rasterizer (engine/train/splat_torch.py): equal to the reference, gradients equal to finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.avatar.gaussian_set import GaussianSet
from engine.raster import reference
from engine.raster.camera import Camera, look_at
from engine.train.splat_torch import rasterize, sh_colours


def _scene(n, seed, scale=(-4.2, -3.6)):
    rng = np.random.default_rng(seed)
    means = rng.uniform(-0.06, 0.06, (n, 3))
    log_scales = rng.uniform(*scale, (n, 3))
    quats = rng.normal(size=(n, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    opacity_logits = rng.uniform(-1.0, 2.5, n)
    sh = rng.normal(0.0, 0.3, (n, 4, 3))
    return GaussianSet(means, log_scales, quats, opacity_logits, sh)


def _torch_inputs(g: GaussianSet, cam: Camera, dtype=torch.float64):
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype)[None]  # noqa: E731
    covs = reference.covariances_3d(torch.as_tensor(g.quats, dtype=dtype), torch.exp(torch.as_tensor(g.log_scales, dtype=dtype)))
    w2c = t(cam.world_to_cam)
    intr = t([cam.fx, cam.fy, cam.cx, cam.cy])
    colours = sh_colours(t(g.sh), t(g.means), w2c, 1)
    return t(g.means), covs[None], colours, torch.sigmoid(t(g.opacity_logits)), w2c, intr


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_when_splats_fit_the_window(seed):
    size = 32
    cam = Camera(look_at((0.1, 0.05, 0.5), (0, 0, 0), (0, 1, 0)), 70.0, 75.0, 15.0, 17.0, size, size)
    g = _scene(800, seed, scale=(-5.4, -4.6))
    ref = reference.render(g, cam, size, size, (0.2, 0.3, 0.4), sh_degree=1)
    means, covs, colours, opac, w2c, intr = _torch_inputs(g, cam)
    rgb, alpha = rasterize(means, covs, colours, opac, w2c, intr, size, size, (0.2, 0.3, 0.4), window=15)
    np.testing.assert_allclose(rgb[0].permute(1, 2, 0).numpy(), ref.rgba[..., :3], atol=2e-5)
    np.testing.assert_allclose(alpha[0, 0].numpy(), ref.alpha, atol=2e-5)
    assert ref.alpha.max() > 0.9  # the scene covers pixels fully somewhere: termination is exercised


def test_gradients_match_finite_differences():
    size = 10
    cam = Camera(look_at((0.0, 0.0, 0.5), (0, 0, 0), (0, 1, 0)), 60.0, 60.0, 5.0, 5.0, size, size)
    g = _scene(5, 7, scale=(-3.6, -3.2))
    means, covs, colours, opac, w2c, intr = _torch_inputs(g, cam)
    opac = opac.clamp(0.2, 0.8)

    def f(m, c, col, o):
        rgb, alpha = rasterize(m, c @ c.transpose(-1, -2) + 1e-6 * torch.eye(3, dtype=c.dtype), col, o, w2c, intr,
                               size, size, (0.1, 0.2, 0.3), window=2 * size + 1)
        return rgb, alpha

    chol = torch.linalg.cholesky(covs)
    args = tuple(a.detach().clone().requires_grad_(True) for a in (means, chol, colours, opac))
    assert torch.autograd.gradcheck(f, args, eps=1e-7, atol=1e-5, rtol=1e-4)
