"""Training datasets: the synthetic builder, the loader, and refusal of bad input before training."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import GaussianHeadsError, InputFileError
from engine.train.dataset import SPLIT_HELDOUT, SPLIT_TRAIN, open_dataset
from tests.engine.synthetic_head import make_synthetic_head
from tests.engine.train_fixtures import build_tiny_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_dataset(str(tmp_path_factory.mktemp("train_ds") / "ds"))


@pytest.fixture
def copy(tiny, tmp_path):
    dst = str(tmp_path / "ds")
    shutil.copytree(tiny, dst)
    return dst


def test_synthetic_dataset_loads_and_streams(tiny):
    ds = open_dataset(tiny)
    assert len(ds.indices(SPLIT_TRAIN)) == 12 and len(ds.indices(SPLIT_HELDOUT)) == 4
    item = ds[3]
    assert item.image.shape == (3, 16, 16) and item.image.dtype == np.float32
    assert 0.0 <= item.image.min() and item.image.max() <= 1.0
    assert item.image.std() > 0.02                     # a head over the background, not a flat image
    # the camera looks at the posed head: its projected vertices land inside the image
    from engine.head_model import load_head_model
    from engine.head_model.lbs import forward

    verts = forward(load_head_model("open"), item.params).vertices
    uvz = item.camera.project(verts)
    assert (uvz[:, 2] > 0).all() and 0 < np.median(uvz[:, 0]) < 16 and 0 < np.median(uvz[:, 1]) < 16
    held = ds.indices(SPLIT_HELDOUT)
    assert np.abs(ds.arrays["expr"][held[0]]).sum() == 0 and np.abs(ds.arrays["expr"][held[1]]).sum() > 0


def test_missing_image_is_refused(copy):
    os.remove(os.path.join(copy, "images", "000005.png"))
    with pytest.raises(InputFileError, match=r"000005\.png: missing"):
        open_dataset(copy)


def test_corrupt_image_is_refused(copy):
    path = os.path.join(copy, "images", "000002.png")
    with open(path, "r+b") as fh:
        fh.truncate(60)
    with pytest.raises(InputFileError, match=r"000002\.png: not a readable image"):
        open_dataset(copy)


def test_wrongly_sized_image_is_refused(copy):
    from PIL import Image

    Image.new("RGB", (20, 16)).save(os.path.join(copy, "images", "000001.png"))
    with pytest.raises(InputFileError, match=r"000001\.png: is 20x16 pixels, the dataset says 16x16"):
        open_dataset(copy)


def test_mismatched_parameter_count_is_refused(copy):
    path = os.path.join(copy, "params.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["expr"] = arrays["expr"][:-1]
    np.savez(path, **arrays)
    with pytest.raises(InputFileError, match=r"params\.npz: 'expr' has 15 rows, the index lists 16 images"):
        open_dataset(copy)


def test_corrupt_params_file_is_refused(copy):
    path = os.path.join(copy, "params.npz")
    with open(path, "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(InputFileError, match=r"params\.npz: truncated or corrupt"):
        open_dataset(copy)


def test_other_head_model_is_refused(copy):
    with pytest.raises(InputFileError, match="different head model"):
        open_dataset(copy, model=make_synthetic_head())


def test_image_path_leaving_the_folder_is_refused(copy):
    path = os.path.join(copy, "dataset.json")
    index = json.load(open(path))
    index["images"][0] = "../outside.png"
    json.dump(index, open(path, "w"))
    with pytest.raises(InputFileError, match="leaves the dataset folder"):
        open_dataset(copy)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_index_and_params_raise_one_clear_error(copy, data):
    """Random edits of dataset.json and random bytes in params.npz: loads, or one InputFileError."""
    index_path, params_path = os.path.join(copy, "dataset.json"), os.path.join(copy, "params.npz")
    original_index, original_params = open(index_path, "rb").read(), open(params_path, "rb").read()
    try:
        if data.draw(st.booleans()):
            index = json.loads(original_index)
            key = data.draw(st.sampled_from(sorted(index) + ["extra"]))
            index[key] = data.draw(st.one_of(st.none(), st.integers(-5, 10 ** 6), st.text(max_size=8),
                                             st.lists(st.integers(-3, 40), max_size=4),
                                             st.dictionaries(st.text(max_size=4), st.integers(), max_size=3)))
            open(index_path, "w").write(json.dumps(index))
        else:
            blob = bytearray(original_params)
            for _ in range(data.draw(st.integers(1, 8))):
                blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
            cut = data.draw(st.integers(len(blob) // 2, len(blob)))
            open(params_path, "wb").write(bytes(blob[:cut]))
        try:
            open_dataset(copy, check_images=False)
        except InputFileError as exc:
            assert exc.path.startswith(copy)
        except GaussianHeadsError:
            pytest.fail("a bad dataset must raise InputFileError naming the file")
    finally:
        open(index_path, "wb").write(original_index)
        open(params_path, "wb").write(original_params)
