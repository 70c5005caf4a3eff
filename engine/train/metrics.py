"""Distances that need no downloaded weights: sliced Wasserstein distance over Laplacian-pyramid patches.

ProGAN's measure (Karras et al. 2018, section 5): each image set becomes a Laplacian pyramid
(5-tap binomial filter, down to ``min_size`` pixels); from every level ``patches`` random 7x7
neighbourhoods per image are taken, each channel normalised by the real set's mean and
standard deviation on that level (ProGAN normalises each set by its own; using the real set's for
both keeps a global colour shift visible to the distance); the sliced Wasserstein distance between the
two descriptor sets is the mean, over ``projections`` random unit directions, of the mean
absolute difference of the sorted projections. Reported per level and averaged, times 1000.

Images: torch tensors [B, 3, H, W] in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(x: torch.Tensor) -> torch.Tensor:
    k = (_BINOMIAL[:, None] * _BINOMIAL[None, :]).to(x)[None, None].expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k, groups=x.shape[1])


def laplacian_pyramid(images: torch.Tensor, min_size: int = 16) -> list[torch.Tensor]:
    """[B, C, H, W] -> band-pass levels, finest first, the last one the low-pass residual."""
    levels, x = [], images
    while x.shape[-1] > min_size:
        low = F.avg_pool2d(_blur(x), 2)
        up = F.interpolate(low, scale_factor=2.0, mode="bilinear", align_corners=False)
        levels.append(x - up)
        x = low
    levels.append(x)
    return levels


def _patches(level: torch.Tensor, count: int, gen: torch.Generator, size: int = 7) -> torch.Tensor:
    """[B, C, H, W] -> [B * count, C * size * size] random neighbourhoods."""
    b, c, h, w = level.shape
    ys = torch.randint(0, h - size + 1, (b, count), generator=gen)
    xs = torch.randint(0, w - size + 1, (b, count), generator=gen)
    unfolded = F.unfold(level, size)                                   # [B, C*size*size, L]
    idx = (ys * (w - size + 1) + xs).to(level.device)
    return unfolded.gather(2, idx[:, None, :].expand(-1, unfolded.shape[1], -1)).permute(0, 2, 1).reshape(b * count, -1)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int, gen: torch.Generator) -> float:
    """Descriptor sets a [Na, D], b [Nb, D] (Na == Nb) -> SWD (mean |sorted projection difference|)."""
    dirs = torch.randn(a.shape[1], projections, generator=gen).to(a)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    pa, _ = torch.sort((a @ dirs).T.contiguous(), dim=1)   # sorting along contiguous rows is ~10x faster
    pb, _ = torch.sort((b @ dirs).T.contiguous(), dim=1)
    return float((pa - pb).abs().mean())


@torch.no_grad()
def swd(real: torch.Tensor, fake: torch.Tensor, patches: int = 128, projections: int = 512, seed: int = 0,
        min_size: int = 16) -> dict:
    """{"levels": [per-level SWD x 1e3, finest first], "mean": their mean}; real and fake [B, 3, H, W], same B."""
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} image sets differ in shape")
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for lr, lf in zip(laplacian_pyramid(real.double(), min_size), laplacian_pyramid(fake.double(), min_size)):
        dr, df = _patches(lr, patches, gen), _patches(lf, patches, gen)
        c = lr.shape[1]
        dr3, df3 = dr.view(dr.shape[0], c, -1), df.view(df.shape[0], c, -1)
        mean = dr3.mean(dim=(0, 2), keepdim=True)
        std = dr3.std(dim=(0, 2), keepdim=True).clamp_min(1e-8)
        dr, df = ((dr3 - mean) / std).flatten(1), ((df3 - mean) / std).flatten(1)
        out.append(1e3 * sliced_wasserstein(dr, df, projections, gen))
    return {"levels": [round(v, 3) for v in out], "mean": round(sum(out) / len(out), 3)}
