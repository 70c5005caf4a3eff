"""The expression-control measure of ``bench train``: held-out pairing, region scores, inversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.train.expression_eval import CHANGE_THRESHOLD, heldout_pairs, region_scores
from tests.engine.train_fixtures import build_tiny_dataset, tiny_generator_config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from engine.train.dataset import open_dataset

    return open_dataset(build_tiny_dataset(str(tmp_path_factory.mktemp("expr_eval") / "ds")))


def test_heldout_rows_pair_each_expression_with_its_subjects_neutral(tiny):
    neutral, expr, number = heldout_pairs(tiny)
    a = tiny.arrays
    assert len(expr) == 2                                  # 2 held-out subjects x 1 expression
    assert np.abs(a["expr"][neutral]).sum() == 0 and np.abs(a["jaw"][neutral]).sum() == 0
    assert (np.abs(a["expr"][expr]).sum(1) > 0).all()
    np.testing.assert_array_equal(a["identity"][neutral], a["identity"][expr])
    np.testing.assert_allclose(a["world_to_cam"][neutral], a["world_to_cam"][expr])
    assert len(set(neutral.tolist())) == 2 and (number == 0).all()


def _pair(seed: int = 0):
    """Dataset (neutral, ψ) images [2, 3, 16, 16]: ψ brightens a square, as an expression changes a region."""
    g = torch.Generator().manual_seed(seed)
    neutral = 0.3 + 0.4 * torch.rand(2, 3, 16, 16, generator=g)
    psi = neutral.clone()
    psi[:, :, 4:9, 5:11] += 0.25
    return neutral, psi


def test_region_scores_tell_right_none_and_wrong_motion_apart():
    d0, d1 = _pair()
    fit = d0 + 0.02                                        # an imperfect fit of the neutral image
    exact = region_scores(fit + (d1 - d0), fit, d1, d0)
    still = region_scores(fit, fit, d1, d0)
    wrong = region_scores(fit - (d1 - d0), fit, d1, d0)
    half = region_scores(fit + 0.5 * (d1 - d0), fit, d1, d0)
    assert (exact["gain"] > 0.98).all() and np.allclose(exact["change_cosine"], 1.0, atol=1e-5)
    assert np.allclose(still["gain"], 0.0, atol=1e-6) and np.allclose(still["change_cosine"], 0.0)
    assert (wrong["gain"] < 0).all() and np.allclose(wrong["change_cosine"], -1.0, atol=1e-5)
    assert (0.5 < half["gain"]).all() and (half["gain"] < exact["gain"]).all()
    # the region is the changed square, dilated by one pixel
    assert np.allclose(exact["region_pixels"], 7 * 8)


def test_region_ignores_changes_below_the_threshold():
    d0, _ = _pair()
    d1 = d0 + 0.5 * CHANGE_THRESHOLD
    scores = region_scores(d0, d0, d1, d0)
    assert np.allclose(scores["region_pixels"], 0.0) and np.isfinite(scores["gain"]).all()


@pytest.mark.slow
def test_inversion_fits_the_neutral_image_and_scores_every_pair(tiny, tmp_path):
    from engine.head_model import load_head_model
    from engine.train import ddp
    from engine.train.config import TrainConfig
    from engine.train.expression_eval import expression_control
    from engine.train.loop import Trainer

    torch.manual_seed(0)
    cfg = TrainConfig(data=tiny.root, out=str(tmp_path / "run"), batch=2, d_channel_base=64, d_channel_max=16,
                      window=5, threads=1, generator=tiny_generator_config(head_model="open"))
    trainer = Trainer(cfg, tiny, load_head_model("open"), ddp.setup("cpu"))
    before = {k: v.clone() for k, v in trainer.G_ema.state_dict().items()}
    picture = tmp_path / "expr.png"
    out = expression_control(trainer, steps=40, lr=0.05, picture=str(picture))
    assert out["pairs"] == 2 and out["subjects"] == 2 and len(out["per_expression"]) == 1
    assert out["fit_mse"] < 0.5 * out["fit_mse_start"]   # the fit moved toward the neutral images
    assert np.isfinite([out["gain"], out["change_cosine"], out["mse_psi"], out["mse_neutral"]]).all()
    assert out["mse_neutral"] > 0
    for key, value in trainer.G_ema.state_dict().items():   # fitting codes never changes the weights
        torch.testing.assert_close(value, before[key])
    from PIL import Image

    assert Image.open(picture).size == (2 * 16 * 2, 2 * 16 * 4)
