"""Dataset builder from an image folder + tracker output (a flame_param.npz here), and its refusals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from engine.animation.formats import write_flame_npz
from engine.animation.sequence import ParamSequence
from engine.errors import InputFileError
from engine.head_model import load_head_model
from engine.head_model.storage import model_to_arrays, save_npz
from engine.train.dataset import open_dataset
from engine.train.tracker import TrackerCamera, build_from_tracker
from tests.engine.synthetic_head import make_synthetic_head


def _flame_model(tmp_path):
    model = dataclasses.replace(make_synthetic_head(), expr_space="flame")
    path = str(tmp_path / "flame_like.npz")
    save_npz(path, model_to_arrays(model))
    return load_head_model(path), path


def _track(tmp_path, frames: int, expr_dims: int):
    rng = np.random.default_rng(0)
    seq = ParamSequence(fps=25.0, expr_names=tuple(f"expr_{i}" for i in range(expr_dims)),
                        expr=rng.normal(0, 0.5, (frames, expr_dims)), jaw=np.zeros((frames, 3)),
                        neck=np.zeros((frames, 3)), global_rot=rng.normal(0, 0.1, (frames, 3)),
                        eyes=np.zeros((frames, 2, 3)), translation=np.zeros((frames, 3)),
                        shape=rng.normal(0, 1, 5), space="flame")
    path = str(tmp_path / "flame_param.npz")
    write_flame_npz(seq, path)
    return path, seq


def _images(tmp_path, count: int, size=(40, 30)):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(count):
        Image.new("RGB", size, (10 * i, 100, 200)).save(folder / f"frame_{i:03d}.png")
    return str(folder)


def test_builds_a_dataset_from_frames_and_flame_params(tmp_path):
    model, spec = _flame_model(tmp_path)
    params, seq = _track(tmp_path, 3, model.n_expr + 4)
    out = build_from_tracker(str(tmp_path / "ds"), _images(tmp_path, 3), params, model, spec, TrackerCamera(resolution=16))
    ds = open_dataset(out, model=model)
    assert len(ds) == 3 and (ds.width, ds.height) == (16, 16)
    np.testing.assert_allclose(ds.arrays["expr"][1], seq.expr[1, : model.n_expr], atol=1e-6)
    np.testing.assert_allclose(ds.arrays["global_rot"][2], seq.global_rot[2], atol=1e-6)
    assert np.allclose(ds[0].image[:, 8, 8], np.array([0, 100, 200]) / 255, atol=0.02)  # centre crop, resized


def test_frame_count_mismatch_is_refused(tmp_path):
    model, spec = _flame_model(tmp_path)
    params, _ = _track(tmp_path, 4, model.n_expr)
    with pytest.raises(InputFileError, match="has 4 tracked frames but .* holds 3 images"):
        build_from_tracker(str(tmp_path / "ds"), _images(tmp_path, 3), params, model, spec)


def test_flame_parameters_need_a_flame_model(tmp_path):
    params, _ = _track(tmp_path, 2, 10)
    with pytest.raises(InputFileError, match="FLAME's expression space"):
        build_from_tracker(str(tmp_path / "ds"), _images(tmp_path, 2), params, load_head_model("open"), "open")
