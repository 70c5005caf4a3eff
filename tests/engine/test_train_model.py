"""TrainingHead places Gaussians exactly where the Checkpoint source poses them."""

from __future__ import annotations

import numpy as np
import torch

from engine.generator.checkpoint import save_checkpoint
from engine.generator.networks import build_generator
from engine.generator.source import CheckpointSource, condition_vector, latent_from_seed
from engine.generator.uvmap import shape_uv_map
from engine.head_model import load_head_model
from engine.raster.reference import covariances_3d
from engine.train.model import PARAM_KEYS, TrainingHead
from tests.engine.train_fixtures import tiny_generator_config


def test_training_head_matches_checkpoint_source(tmp_path):
    model = load_head_model("open")
    cfg = tiny_generator_config(n_gaussians=300)
    gen = build_generator(cfg, seed=3)
    path = save_checkpoint(gen, tmp_path / "ckpt", {"trained": False})
    identity = CheckpointSource(path, backend="torch").sample(5, truncation=0.7)
    params = identity.neutral_params()
    rng = np.random.default_rng(0)
    params.expr = rng.random(model.n_expr).astype(np.float32) * 0.6
    params.jaw = np.array([0.2, 0.01, 0.0], np.float32)
    params.global_rot = np.array([0.1, -0.2, 0.05], np.float32)
    posed = identity.pose(params)

    head = TrainingHead(model, cfg)
    shape = torch.from_numpy(identity.shape)[None]
    np.testing.assert_allclose(head.shape_maps(shape)[0].numpy(), shape_uv_map(model, identity.shape, 16), atol=1e-6)
    t = {k: torch.from_numpy(np.asarray(getattr(params, k), np.float32))[None] for k in PARAM_KEYS}
    cond = head.condition(t["expr"], t["jaw"])
    np.testing.assert_allclose(cond[0].numpy(), condition_vector(cfg, model, params), atol=1e-7)
    with torch.no_grad():
        z = torch.from_numpy(latent_from_seed(5, cfg.z_dim))[None]
        attributes, features = gen.identity(z, head.shape_maps(shape), 0.7)
        residuals = gen.deformation(features, cond)
        means, covs, sh, opac = head.gaussians(attributes, residuals, head.vertices(t))
    np.testing.assert_allclose(means[0].numpy(), posed.means, atol=2e-5)
    expected = covariances_3d(torch.from_numpy(posed.quats).double(), torch.exp(torch.from_numpy(posed.log_scales).double()))
    np.testing.assert_allclose(covs[0].double().numpy(), expected.numpy(), atol=1e-9, rtol=2e-3)
    np.testing.assert_allclose(sh[0].numpy(), posed.sh, atol=1e-5)
    np.testing.assert_allclose(opac[0].numpy(), 1 / (1 + np.exp(-posed.opacity_logits)), atol=1e-5)
