"""DataLoader workers decode the same batches as the trainer does alone; resuming with workers stays bit-identical."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from engine.__main__ import main
from engine.errors import GaussianHeadsError
from tests.engine.train_fixtures import TINY_FLAGS, build_tiny_dataset, train_state_tensors


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_dataset(str(tmp_path_factory.mktemp("train_workers") / "ds"))


def _stream(folder: str, position: int, workers: int, check_images: bool = True):
    from engine.train.data import BatchStream
    from engine.train.dataset import open_dataset

    return BatchStream(open_dataset(folder, check_images=check_images), 2, 0, 1, 7, "cpu", position, workers=workers)


def test_workers_yield_the_batches_of_the_training_process_across_epochs(tiny):
    alone, loaded = _stream(tiny, 0, 0), _stream(tiny, 0, 2)
    per_epoch = alone._order.per_epoch                      # 12 training images, batch 2: 6 batches an epoch
    try:
        for k in range(per_epoch // 2 * 3):                 # 1.5 epochs: the order changes at the boundary
            a, b = alone.next(), loaded.next()
            assert sorted(a) == sorted(b)
            for key in a:
                assert torch.equal(a[key], b[key]), (k, key)
            # the workers have decoded batches ahead, but the position counts what was consumed
            assert loaded.position == alone.position == 2 * (k + 1)
        # a stream started mid-epoch (a resumed run) continues the same order
        resumed = _stream(tiny, loaded.position, 2)
        try:
            for _ in range(per_epoch // 2):
                assert torch.equal(resumed.next()["index"], alone.next()["index"])
        finally:
            resumed.close()
    finally:
        loaded.close()


def test_an_image_failing_in_a_worker_is_one_error_naming_the_file(tiny, tmp_path):
    broken = str(tmp_path / "broken")
    shutil.copytree(tiny, broken)
    from engine.train.dataset import open_dataset

    ds = open_dataset(broken)
    for i in ds.indices(0):                                 # every training image: whichever comes first fails
        with open(ds.image_path(int(i)), "wb") as fh:
            fh.write(b"not a png")
    stream = _stream(broken, 0, 2, check_images=False)
    try:
        with pytest.raises(GaussianHeadsError, match=r"images/\d+\.png: not a readable image"):
            stream.next()
    finally:
        stream.close()


@pytest.mark.slow
def test_resume_with_workers_continues_bit_identically(tiny, tmp_path):
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    flags = [*TINY_FLAGS, "--workers", "2", "--onnx", "false", "--tensorboard", "false"]
    # 8 steps of 2 images: the epoch of 12 images ends inside the resumed part (interrupted at step 5)
    assert main(["train", "--data", tiny, "--out", full, "--steps", "8", *flags]) == 0
    assert main(["train", "--data", tiny, "--out", part, "--steps", "5", *flags]) == 0
    assert main(["train", "--resume", part, "--steps", "8", "--no-progress"]) == 0
    a, b = train_state_tensors(full), train_state_tensors(part)
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # and the same run without workers ends in the same weights
    alone = str(tmp_path / "alone")
    assert main(["train", "--data", tiny, "--out", alone, "--steps", "8", *flags, "--workers", "0"]) == 0
    c = train_state_tensors(alone)
    for key in a:
        np.testing.assert_array_equal(a[key], c[key], err_msg=key)
    state = json.load(open(os.path.join(part, "state", "train_state.json")))
    assert state["position"] == 8 * 2 and state["config"]["workers"] == 2
