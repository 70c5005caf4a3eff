"""Tiny training fixtures shared by tests/engine/test_train_*.py (built by the tests themselves)."""

from __future__ import annotations

import os

from engine.generator.config import GeneratorConfig

TINY_GENERATOR = dict(z_dim=16, w_dim=16, mapping_layers=1, uv_resolution=16, channel_base=128, channel_max=16,
                      channel_min=8, deform_resolution=8, deform_channels=8, deform_cond_dim=8, n_gaussians=256,
                      n_expr=52)
# CLI flags of a tiny, fast run (16 px images, 256 Gaussians)
TINY_FLAGS = ["--batch", "2", "--r1-interval", "2", "--log-every", "1", "--sample-every", "0",
              "--checkpoint-every", "0", "--d-channel-base", "64", "--d-channel-max", "16", "--window", "5",
              "--no-progress", "--threads", "1"] + [
    x for key, value in TINY_GENERATOR.items() for x in ("--gen-" + key.replace("_", "-"), str(value))]


def tiny_generator_config(**changes) -> GeneratorConfig:
    return GeneratorConfig(**{**TINY_GENERATOR, **changes})


def build_tiny_dataset(folder: str) -> str:
    """3 identities x 4 views at 16 px plus the held-out pairs (open head model)."""
    from engine.train.synthetic import SyntheticConfig, build_synthetic

    if not os.path.exists(os.path.join(folder, "dataset.json")):
        build_synthetic(folder, SyntheticConfig(identities=3, views=4, resolution=16, n_gaussians=2048,
                                                heldout_expressions=1, heldout_identities=2))
    return folder


def train_state_tensors(run: str) -> dict:
    """name -> numpy array of a run folder's state/train_state.safetensors (weights, Adam moments)."""
    from safetensors.numpy import load_file

    return load_file(os.path.join(run, "state", "train_state.safetensors"))
