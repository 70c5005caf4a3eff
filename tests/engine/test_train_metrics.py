"""SWD over Laplacian-pyramid patches, and the differentiable augmentation."""

from __future__ import annotations

import pytest
import torch

from engine.train.losses import augment
from engine.train.metrics import laplacian_pyramid, swd


def _blobs(n, seed, colour=(0.8, 0.6, 0.5)):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    centre = 16 + 4 * torch.randn(n, 2, generator=g)
    d2 = (yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2
    mask = torch.exp(-d2 / 60.0)[:, None]
    return 0.3 + mask * (torch.tensor(colour)[None, :, None, None] - 0.3)


def test_pyramid_reconstructs_the_image():
    x = _blobs(2, 0).double()
    levels = laplacian_pyramid(x, min_size=8)
    assert [lv.shape[-1] for lv in levels] == [32, 16, 8]
    rec = levels[-1]
    for band in reversed(levels[:-1]):
        rec = torch.nn.functional.interpolate(rec, scale_factor=2.0, mode="bilinear", align_corners=False) + band
    torch.testing.assert_close(rec, x)


@pytest.mark.slow
def test_swd_orders_sets_by_how_different_they_are():
    real = _blobs(32, 1)
    same_kind = _blobs(32, 2)
    other_colour = _blobs(32, 3, colour=(0.2, 0.7, 0.9))
    noise = torch.rand(32, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    d_self = swd(real, real)["mean"]
    d_same, d_colour, d_noise = (swd(real, x)["mean"] for x in (same_kind, other_colour, noise))
    assert d_self < d_colour / 3            # patch sampling noise only
    assert d_same < d_colour < d_noise


def test_augment_is_differentiable_and_identity_when_off():
    img = torch.rand(4, 3, 16, 16, requires_grad=True)
    cue = torch.rand(4, 3, 16, 16)
    gen = torch.Generator().manual_seed(0)
    same_img, same_cue = augment(img, cue, 0.0, gen)
    assert same_img is img and same_cue is cue
    out_img, out_cue = augment(img, cue, 1.0, gen)
    assert out_img.shape == img.shape and out_cue.shape == cue.shape
    out_img.sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0
    # the cue moves with the image (same translation): a bright pixel lands at the same place in both
    for seed in range(5):
        one = torch.zeros(1, 3, 16, 16)
        one[..., 8, 8] = 1.0
        a, b = augment(one, one.clone(), 1.0, torch.Generator().manual_seed(seed))
        assert int(a[0].mean(0).argmax()) == int(b[0].mean(0).argmax())
