"""The identity-source registry (engine/avatar/sources): names and the CLI's source strings,
the same identities as the sources it wraps, the open-source cache, and a checkpoint's trained status."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from engine.avatar import sources
from engine.avatar.builtin import BuiltinSamplerConfig, BuiltinSource
from engine.avatar.sources import SourceSpec, parse_source, sample_identity, source_status
from engine.avatar.sources.checkpoint import TRAINED, UNKNOWN, UNTRAINED
from engine.errors import GaussianHeadsError
from engine.generator import checkpoint as ckpt_mod
from engine.generator.config import small_config

N = 2000


def test_registry_names_and_enum_numbers():
    names = sources.source_names()
    assert names[:2] == ("builtin", "checkpoint") and "gaussian_avatars" in names  # kinds are only appended
    items = sources.enum_items()
    assert [i[0] for i in items] == [n.upper() for n in names] and [i[3] for i in items] == list(range(len(names)))


def test_parse_source_strings(tmp_path):
    assert parse_source("builtin", 4096, "open") == SourceSpec("builtin", "", 4096, "open")
    assert parse_source("checkpoint:" + str(tmp_path)) == SourceSpec("checkpoint", str(tmp_path))
    assert parse_source(str(tmp_path)) == SourceSpec("checkpoint", str(tmp_path))  # bare path: older CLIs
    with pytest.raises(GaussianHeadsError, match="unknown identity source 'nosuch'"):
        parse_source("nosuch:avatar.zip")
    with pytest.raises(GaussianHeadsError, match="no such LAM avatar zip"):
        parse_source("lam:" + str(tmp_path / "avatar.zip"))
    with pytest.raises(GaussianHeadsError, match="choose a generator checkpoint"):
        parse_source("checkpoint:")
    with pytest.raises(GaussianHeadsError, match="no such generator checkpoint"):
        parse_source("checkpoint:" + str(tmp_path / "missing"))
    with pytest.raises(GaussianHeadsError, match="built-in source; a checkpoint fixes its own count"):
        parse_source(str(tmp_path), 5000)
    with pytest.raises(GaussianHeadsError, match="takes no file"):
        parse_source("builtin:" + str(tmp_path))
    with pytest.raises(GaussianHeadsError, match="empty identity source"):
        parse_source("  ")


def test_builtin_matches_the_sampler_it_wraps_and_is_cached():
    spec = SourceSpec("builtin", n_gaussians=N)
    a = sample_identity(spec, 5, truncation=0.6)
    b = BuiltinSource(config=BuiltinSamplerConfig(n_gaussians=N)).sample(5, truncation=0.6)
    for key, value in b.to_arrays().items():
        np.testing.assert_array_equal(np.asarray(a.to_arrays()[key]), np.asarray(value), err_msg=key)
    assert sources.open_source(spec) is sources.open_source(SourceSpec("builtin", n_gaussians=N))
    from engine.avatar.cli_sample import make_source
    assert make_source("builtin", N) is sources.open_source(spec)


def test_shape_is_padded_and_all_zero_means_sampled():
    spec = SourceSpec("builtin", n_gaussians=N)
    ident = sample_identity(spec, 5, shape=(0.5, -0.25))
    expected = np.zeros_like(ident.shape)
    expected[:2] = (0.5, -0.25)
    np.testing.assert_array_equal(ident.shape, expected)
    sampled = sample_identity(spec, 5)
    np.testing.assert_array_equal(sample_identity(spec, 5, shape=(0.0,) * 8).shape, sampled.shape)


def _config_json(folder, meta):
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"format": ckpt_mod.FORMAT, "version": ckpt_mod.VERSION, "config": small_config().to_dict(),
           "meta": meta, "files": {"weights": ckpt_mod.WEIGHTS_NAME}}
    (folder / ckpt_mod.CONFIG_NAME).write_text(json.dumps(doc))
    return folder


def test_checkpoint_status_says_whether_it_is_trained(tmp_path):
    untrained = _config_json(tmp_path / "untrained", {"trained": False})
    status = source_status(SourceSpec("checkpoint", str(untrained)))
    assert status.text == UNTRAINED == "untrained (random weights): samples are structured noise" and status.warning
    trained = _config_json(tmp_path / "trained", {"trained": True})
    assert source_status(SourceSpec("checkpoint", str(trained))).text == TRAINED
    assert not source_status(SourceSpec("checkpoint", str(trained))).warning
    unknown = _config_json(tmp_path / "unknown", {})
    assert source_status(SourceSpec("checkpoint", str(unknown))).text == UNKNOWN
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json")
    status = source_status(SourceSpec("checkpoint", str(broken)))  # never raises: the UI shows the problem
    assert status.warning and "config.json" in status.text and "not valid JSON" in status.text
    assert source_status(SourceSpec("checkpoint", "")) is None
    assert source_status(SourceSpec("builtin", n_gaussians=N)) is None


def test_checkpoint_source_through_the_registry(tmp_path):
    torch = pytest.importorskip("torch")
    from engine.generator.networks import build_generator
    from engine.generator.source import CheckpointSource

    with torch.no_grad():
        path = ckpt_mod.save_checkpoint(build_generator(small_config(), seed=0), tmp_path / "ck",
                                        meta={"trained": False})
    spec = parse_source(f"checkpoint:{path}")
    a = sample_identity(spec, 3, truncation=0.5)
    b = CheckpointSource(path).sample(3, truncation=0.5)
    for name in ("offsets", "log_scales", "quats", "opacity_logits", "sh"):
        np.testing.assert_array_equal(getattr(a.canonical, name), getattr(b.canonical, name))
    assert a.meta["trained"] is False
    before = sources.open_source(spec)
    assert sources.open_source(spec) is before
    os.utime(path, (os.path.getatime(path), os.path.getmtime(path) + 10))  # a rewritten checkpoint reopens
    assert sources.open_source(spec) is not before
