"""GAN losses (non-saturating logistic), lazy R1, EMA and differentiable augmentation.

Logits come in pairs (image discriminator, expression discriminator), each [B].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def generator_loss(logits: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Σ over discriminators of mean softplus(−D(fake))."""
    return sum(F.softplus(-lg).mean() for lg in logits)


def discriminator_loss(real: tuple[torch.Tensor, ...], fake: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Σ over discriminators of mean softplus(D(fake)) + mean softplus(−D(real))."""
    return sum(F.softplus(f).mean() + F.softplus(-r).mean() for r, f in zip(real, fake))


def r1_penalty(real_images: torch.Tensor, logits: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """mean over the batch of |∇_x Σ_D D(x)|², x the real images (create_graph for the D update)."""
    (grad,) = torch.autograd.grad(sum(lg.sum() for lg in logits), real_images, create_graph=True)
    return grad.square().sum(dim=(1, 2, 3)).mean()


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, beta: float) -> None:
    """ema = beta · ema + (1 − beta) · model for parameters; buffers copied."""
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1.0 - beta)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


def augment(images: torch.Tensor, cues: torch.Tensor, p: float, generator: torch.Generator):
    """Differentiable augmentation (applied to real and fake alike), each op per sample with prob. p.

    images, cues [B, 3, H, W] -> same shapes. Integer translation up to 1/8 of the size (zeros fill,
    the same shift for image and cue), brightness ±0.2, contrast ×[0.5, 1.5], saturation ×[0, 2]
    (image only). Random numbers come from ``generator`` (CPU), so a run is reproducible.
    """
    if p <= 0:
        return images, cues
    n, _, h, w = images.shape
    dev = images.device
    draw = lambda *s: torch.rand(*s, generator=generator).to(dev)  # noqa: E731
    on = lambda: (draw(n) < p).to(images.dtype)[:, None, None, None]  # noqa: E731
    # translation via padding + per-sample crop (gather), identical for image and cue
    m = max(1, h // 8)
    shift = ((draw(n, 2) * 2 - 1) * m).round().long() * on().long().view(n, 1)
    both = F.pad(torch.cat([images, cues], dim=1), (m, m, m, m))
    ys = (torch.arange(h, device=dev)[None] + m - shift[:, 1:2])                      # [B, H]
    xs = (torch.arange(w, device=dev)[None] + m - shift[:, 0:1])                      # [B, W]
    both = both.gather(2, ys[:, None, :, None].expand(-1, both.shape[1], -1, both.shape[3]))
    both = both.gather(3, xs[:, None, None, :].expand(-1, both.shape[1], h, -1))
    images, cues = both[:, :3], both[:, 3:]
    images = images + (draw(n, 1, 1, 1) - 0.5) * 0.4 * on()
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = (images - mean) * (1 + (draw(n, 1, 1, 1) - 0.5) * on()) + mean
    grey = images.mean(dim=1, keepdim=True)
    images = (images - grey) * (1 + (draw(n, 1, 1, 1) * 2 - 1) * on()) + grey
    return images, cues
