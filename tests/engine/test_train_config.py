"""TrainConfig: JSON round trip, CLI flags override a config file, bad values refused."""

from __future__ import annotations

import argparse
import json

import pytest

from engine.errors import GaussianHeadsError
from engine.train.config import TrainConfig, add_config_arguments, config_from_args


def _parse(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_config_arguments(parser)
    return parser.parse_args(argv)


def test_json_round_trip_and_flag_overrides(tmp_path):
    cfg = TrainConfig(batch=3, augment_p=0.2, generator=TrainConfig().generator.replace(n_gaussians=1024))
    assert TrainConfig.from_dict(json.loads(cfg.to_json())) == cfg
    path = tmp_path / "c.json"
    path.write_text(cfg.to_json())
    out = config_from_args(_parse(["--config", str(path), "--batch", "8", "--gen-uv-resolution", "32",
                                   "--onnx", "false"]))
    assert out.batch == 8 and out.augment_p == 0.2 and out.onnx is False
    assert out.generator.uv_resolution == 32 and out.generator.n_gaussians == 1024


@pytest.mark.parametrize("data, message", [
    ({"batch": 0}, "batch must be at least 1"),
    ({"window": 6}, "window must be odd"),
    ({"backend": "vulkan"}, "backend must be"),
    ({"batch": "4"}, "batch should be int"),
    ({"nope": 1}, "unknown keys: nope"),
    ({"generator": {"uv_resolution": 48}}, "power of two"),
])
def test_bad_values_are_refused(data, message):
    with pytest.raises(GaussianHeadsError, match=message):
        TrainConfig.from_dict(data)
