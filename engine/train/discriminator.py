"""Dual discrimination (AGORA): an image discriminator and an expression-conditioned one.

``Discriminator(in_channels, resolution)``: a residual convolutional network in StyleGAN2's
layout (1x1 fromRGB, one residual block per resolution halving it down to 4x4, a minibatch
standard-deviation channel, a 3x3 convolution and two fully connected layers) -> one logit.
Every layer has an equalised learning rate (weights N(0, 1), scaled by 1/sqrt(fan-in) when run),
as the generator's, so one Adam learning rate suits both networks.

``DualDiscriminator.forward(image [B, 3, H, W], cue [B, 3, H, W]) -> (image logits [B],
expression logits [B])`` (optionally a fake pair as well): the second network sees the image concatenated with the geometry cue
(the head mesh coloured by its expression-only displacement, ``TrainingHead.geometry_cue``), the
conditioning Next3D uses; one module so DistributedDataParallel wraps both with one forward.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..generator.networks import FullyConnected

_SQRT2 = math.sqrt(2.0)


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * _SQRT2


class _Conv(nn.Module):
    """Equalised-learning-rate convolution (stride 1, same padding)."""

    def __init__(self, cin: int, cout: int, kernel: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.gain = 1.0 / math.sqrt(cin * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.gain, self.bias, padding=self.padding)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv0 = _Conv(cin, cin, 3)
        self.conv1 = _Conv(cin, cout, 3)
        self.skip = _Conv(cin, cout, 1, bias=False)

    def forward(self, x):
        y = _act(self.conv0(x))
        y = F.avg_pool2d(_act(self.conv1(y)), 2)
        return (y + self.skip(F.avg_pool2d(x, 2))) / _SQRT2


class Discriminator(nn.Module):
    def __init__(self, in_channels: int, resolution: int, channel_base: int = 2048, channel_max: int = 128,
                 mbstd_group: int = 4):
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"discriminator resolution must be a power of two >= 8, got {resolution}")
        ch = lambda r: min(channel_base // r, channel_max)  # noqa: E731
        self.from_rgb = _Conv(in_channels, ch(resolution), 1)
        blocks, r = [], resolution
        while r > 4:
            blocks.append(_Block(ch(r), ch(r // 2)))
            r //= 2
        self.blocks = nn.ModuleList(blocks)
        self.mbstd_group = mbstd_group
        c4 = ch(4)
        self.conv = _Conv(c4 + 1, c4, 3)
        self.fc = FullyConnected(c4 * 16, c4, activation="lrelu")
        self.out = FullyConnected(c4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _act(self.from_rgb(x * 2.0 - 1.0))
        for block in self.blocks:
            x = block(x)
        n, c, h, w = x.shape
        g = min(self.mbstd_group, n)
        while n % g:
            g -= 1
        std = x.reshape(g, -1, c, h, w).var(dim=0, unbiased=False).add(1e-8).sqrt().mean(dim=(1, 2, 3))  # [n/g]
        x = torch.cat([x, std.repeat(g)[:, None, None, None].expand(n, 1, h, w)], dim=1)
        x = _act(self.conv(x))
        return self.out(self.fc(x.flatten(1)))[:, 0]


class DualDiscriminator(nn.Module):
    def __init__(self, resolution: int, channel_base: int = 2048, channel_max: int = 128):
        super().__init__()
        self.image = Discriminator(3, resolution, channel_base, channel_max)
        self.expression = Discriminator(6, resolution, channel_base, channel_max)

    def forward(self, image: torch.Tensor, cue: torch.Tensor, fake_image: torch.Tensor | None = None,
                fake_cue: torch.Tensor | None = None):
        """-> (image logits [B], expression logits [B]); with a fake pair too, both pairs' logits
        (real and fake go through separate calls, so the minibatch-std groups never mix them)."""
        real = (self.image(image), self.expression(torch.cat([image, cue], dim=1)))
        if fake_image is None:
            return real
        return real, (self.image(fake_image), self.expression(torch.cat([fake_image, fake_cue], dim=1)))


def build_discriminator(resolution: int, channel_base: int, channel_max: int, seed: int) -> DualDiscriminator:
    """Weights depend only on the arguments."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) + 0xD15C)
        return DualDiscriminator(resolution, channel_base, channel_max)
