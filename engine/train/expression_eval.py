"""Expression control of a trained generator, measured on the held-out split after fitting each identity.

A GAN draws new people, so its renders cannot be compared pixel by pixel with a dataset subject.
This measure first fits the generator to each held-out subject's **neutral** image (inversion:
per subject a w+ code [num_ws, w_dim], started at ``w_avg``, Adam on the pixel MSE), then poses
the fitted head with each held-out expression ψ (never in the training split) and asks whether
its render moved toward the dataset's render of ψ:

* the *changed region* M of a (neutral, ψ) pair: pixels where the dataset's two renders differ by
  more than ``CHANGE_THRESHOLD`` in any channel, dilated by one pixel;
* ``mse_psi``: mean squared error over M of G(w+, ψ) against the dataset's ψ render;
  ``mse_neutral``: the same for G(w+, 0) (what not moving at all would score);
* ``gain = 1 − mse_psi / mse_neutral``: 1 if the fitted head reproduces the expression exactly, 0
  if it does no better than staying neutral, negative if the expression moves it the wrong way;
* ``change_cosine``: cosine between the generator's change G(ψ) − G(0) and the dataset's change
  D(ψ) − D(0) over M (1: the same direction, 0: unrelated).

Held-out rows: per (subject, camera) one neutral row (expression and jaw zero) and any number of
expression rows (``synthetic.build_synthetic`` writes them so). Images [B, 3, H, W] in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import collate
from .dataset import SPLIT_HELDOUT, HeadDataset

CHANGE_THRESHOLD = 4.0 / 255.0


def heldout_pairs(dataset: HeadDataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(neutral rows [P], their expression rows [P], expression number within the subject [P]).

    Every held-out row with a non-zero expression or jaw is paired with the neutral held-out row of
    the same subject and camera; expressions without such a neutral row are skipped.
    """
    a, held = dataset.arrays, dataset.indices(SPLIT_HELDOUT)
    moving = (np.abs(a["expr"][held]).sum(1) + np.abs(a["jaw"][held]).sum(1)) > 0
    neutrals = held[~moving]
    neutral_rows, expr_rows, number, seen = [], [], [], {}
    for row in held[moving]:
        same = neutrals[(a["identity"][neutrals] == a["identity"][row])
                        & np.all(np.isclose(a["world_to_cam"][neutrals], a["world_to_cam"][row], atol=1e-6), axis=(1, 2))]
        if len(same):
            base = int(same[0])
            neutral_rows.append(base)
            expr_rows.append(int(row))
            number.append(seen.get(base, 0))
            seen[base] = seen.get(base, 0) + 1
    return np.asarray(neutral_rows, np.int64), np.asarray(expr_rows, np.int64), np.asarray(number, np.int64)


class FittedCodes(nn.Module):
    """Stands in for ``model.GeneratorStep`` with per-image w+ codes instead of z: (ws, shape map, condition)."""

    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def forward(self, ws, shape_map, condition):
        attributes, features = self.generator.synthesis(ws, shape_map, noise_mode="const")
        return attributes.float(), self.generator.deformation(features, condition).float()


def changed_region(data_psi: torch.Tensor, data_neutral: torch.Tensor) -> torch.Tensor:
    """[B, 1, H, W] float mask M (see the module docstring)."""
    mask = ((data_psi - data_neutral).abs().amax(1, keepdim=True) > CHANGE_THRESHOLD).float()
    return F.max_pool2d(mask, 3, stride=1, padding=1)


def region_scores(gen_psi, gen_neutral, data_psi, data_neutral) -> dict[str, np.ndarray]:
    """Per pair [B]: mse_psi, mse_neutral, gain, change_cosine, region_pixels (module docstring)."""
    mask = changed_region(data_psi, data_neutral)
    pixels = mask.sum(dim=(1, 2, 3)).clamp_min(1.0)

    def mse(x):
        return ((x - data_psi).square().mean(1, keepdim=True) * mask).sum(dim=(1, 2, 3)) / pixels

    mse_psi, mse_neutral = mse(gen_psi), mse(gen_neutral)
    cg, cd = (gen_psi - gen_neutral) * mask, (data_psi - data_neutral) * mask
    cosine = (cg * cd).sum(dim=(1, 2, 3)) / (cg.flatten(1).norm(dim=1) * cd.flatten(1).norm(dim=1)).clamp_min(1e-12)
    return {"mse_psi": mse_psi.numpy(), "mse_neutral": mse_neutral.numpy(),
            "gain": (1.0 - mse_psi / mse_neutral.clamp_min(1e-12)).numpy(), "change_cosine": cosine.numpy(),
            "region_pixels": mask.sum(dim=(1, 2, 3)).numpy()}


def invert(trainer, batch: dict, steps: int, lr: float) -> tuple[torch.Tensor, list[float]]:
    """Fit w+ codes [B, num_ws, w_dim] of ``trainer.G_ema`` to ``batch``'s images; returns them and the MSE curve."""
    g = trainer.G_ema
    ws = g.mapping.w_avg.detach().clone()[None, None].repeat(len(batch["image"]), g.synthesis.num_ws, 1)
    ws.requires_grad_(True)
    net, opt, curve = FittedCodes(g), torch.optim.Adam([ws], lr=lr), []
    with torch.enable_grad():                  # callers may evaluate under no_grad
        for _ in range(int(steps)):
            loss = (trainer.render(net, batch, ws) - batch["image"]).square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            curve.append(float(loss.detach()))
    return ws.detach(), curve


def expression_control(trainer, steps: int = 200, lr: float = 0.05, max_subjects: int | None = None,
                       picture: str | None = None) -> dict:
    """Fit every held-out subject's neutral image, pose it with the held-out expressions, score (module docstring).

    Returns {"pairs", "subjects", "fit_mse" (neutral fit, mean), "mse_psi", "mse_neutral" (means over
    pairs), "gain" (1 − their ratio), "change_cosine" (mean), "per_expression": [{"gain",
    "change_cosine", "pairs"}, ...]}; ``picture`` writes rows D(0), D(ψ), G(0), G(ψ) as a PNG.
    """
    ds, dev = trainer.dataset, trainer.env.device
    neutral_rows, expr_rows, number = heldout_pairs(ds)
    if not len(expr_rows):
        return {"pairs": 0}
    subjects = np.unique(neutral_rows)
    if max_subjects is not None:
        subjects = subjects[: int(max_subjects)]
        keep = np.isin(neutral_rows, subjects)
        neutral_rows, expr_rows, number = neutral_rows[keep], expr_rows[keep], number[keep]
    was_training = trainer.G_ema.training
    trainer.G_ema.eval().requires_grad_(False)
    try:
        fitted, curve = invert(trainer, collate(ds, subjects, dev), steps, lr)
        code = {int(row): fitted[i] for i, row in enumerate(subjects)}
        ws = torch.stack([code[int(r)] for r in neutral_rows])
        b_neutral, b_psi = collate(ds, neutral_rows, dev), collate(ds, expr_rows, dev)
        net = FittedCodes(trainer.G_ema)
        with torch.no_grad():
            gen_neutral = trainer.render(net, b_neutral, ws).clamp(0, 1)
            gen_psi = trainer.render(net, b_psi, ws).clamp(0, 1)
    finally:
        trainer.G_ema.train(was_training)
    scores = region_scores(gen_psi.cpu(), gen_neutral.cpu(), b_psi["image"].cpu(), b_neutral["image"].cpu())
    if picture:
        _picture(picture, b_neutral["image"], b_psi["image"], gen_neutral, gen_psi, number)
    mse_psi, mse_neutral = float(scores["mse_psi"].mean()), float(scores["mse_neutral"].mean())
    per_expression = []
    for k in np.unique(number):
        sel = number == k
        per_expression.append({
            "gain": round(1.0 - float(scores["mse_psi"][sel].mean()) / max(float(scores["mse_neutral"][sel].mean()),
                                                                          1e-12), 4),
            "change_cosine": round(float(scores["change_cosine"][sel].mean()), 4),
            "region_pixels": round(float(scores["region_pixels"][sel].mean()), 1), "pairs": int(sel.sum())})
    return {"pairs": int(len(expr_rows)), "subjects": int(len(subjects)), "inversion_steps": int(steps),
            "fit_mse_start": round(curve[0], 6) if curve else None, "fit_mse": round(curve[-1], 6) if curve else None,
            "mse_psi": round(mse_psi, 6), "mse_neutral": round(mse_neutral, 6),
            "gain": round(1.0 - mse_psi / max(mse_neutral, 1e-12), 4),
            "change_cosine": round(float(scores["change_cosine"].mean()), 4), "per_expression": per_expression}


def _picture(path: str, data_neutral, data_psi, gen_neutral, gen_psi, number, per_expression: int = 4) -> None:
    """Rows D(0), D(ψ), G(0), G(ψ); columns: up to ``per_expression`` subjects for each expression."""
    from PIL import Image

    cols = [i for k in np.unique(number) for i in np.flatnonzero(number == k)[:per_expression]]
    rows = [torch.cat([x[i].cpu() for i in cols], dim=2) for x in (data_neutral, data_psi, gen_neutral, gen_psi)]
    grid = (torch.cat(rows, dim=1).clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)
