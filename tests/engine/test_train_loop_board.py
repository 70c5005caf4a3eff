"""TensorBoard logs of a run: log.csv's scalars and the sample grids; resume without duplicates; no package, no failure."""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import sys

import pytest

from engine.__main__ import main
from tests.engine.train_fixtures import TINY_FLAGS, build_tiny_dataset

pytestmark = pytest.mark.slow
FLAGS = [*TINY_FLAGS, "--onnx", "false"]
# a development dependency: the oldest-stack venv (tests/engine/test_oldest_stack.py) has no tensorboard
needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason="the tensorboard package is not installed")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_dataset(str(tmp_path_factory.mktemp("train_board") / "ds"))


def _events(run: str):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(os.path.join(run, "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def _csv(run: str) -> list[dict]:
    with open(os.path.join(run, "log.csv"), newline="") as fh:
        return list(csv.DictReader(fh))


@needs_tensorboard
def test_scalars_follow_log_csv_and_sample_grids_are_images(tiny, tmp_path):
    run = str(tmp_path / "run")
    assert main(["train", "--data", tiny, "--out", run, "--steps", "4", *FLAGS, "--sample-every", "2",
                 "--checkpoint-every", "2"]) == 0
    acc = _events(run)
    tags = acc.Tags()
    assert set(tags["scalars"]) == {"loss/g", "loss/d", "logits/real", "logits/fake", "r1", "speed/steps_per_s"}
    rows = _csv(run)
    for column, tag in (("loss_g", "loss/g"), ("loss_d", "loss/d"), ("d_real", "logits/real"),
                        ("d_fake", "logits/fake"), ("steps_per_s", "speed/steps_per_s")):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [int(r["step"]) for r in rows] == [1, 2, 3, 4]
        assert [e.value for e in events] == pytest.approx([float(r[column]) for r in rows], rel=1e-6, abs=1e-6)
    assert [e.step for e in acc.Scalars("r1")] == [1, 3]      # R1 every 2 steps; none logged in between
    images = acc.Images("samples")
    assert [e.step for e in images] == [2, 4]                 # every 2 steps, the final grid not twice
    assert (images[0].width, images[0].height) == (8 * 16, 2 * 16)


@needs_tensorboard
def test_resume_replaces_what_an_interrupted_run_logged_after_its_state(tiny, tmp_path):
    run = str(tmp_path / "run")
    assert main(["train", "--data", tiny, "--out", run, "--steps", "2", *FLAGS]) == 0
    saved = str(tmp_path / "state_at_2")
    shutil.copytree(os.path.join(run, "state"), saved)
    assert main(["train", "--resume", run, "--steps", "3", "--no-progress"]) == 0
    # a crash after step 3 leaves the state of step 2: the resumed run logs step 3 again
    shutil.rmtree(os.path.join(run, "state"))
    shutil.copytree(saved, os.path.join(run, "state"))
    assert main(["train", "--resume", run, "--steps", "4", "--no-progress"]) == 0
    assert [r["step"] for r in _csv(run)] == ["1", "2", "3", "3", "4"]   # log.csv appends
    acc = _events(run)
    assert [e.step for e in acc.Scalars("loss/g")] == [1, 2, 3, 4]      # purge_step hid the first step 3
    assert [e.step for e in acc.Images("samples")] == [2, 4]           # the lost run's final grid (3) too


def test_without_the_tensorboard_package_training_goes_on(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)   # `import` of it raises ImportError
    run = str(tmp_path / "run")
    assert main(["train", "--data", tiny, "--out", run, "--steps", "2", *FLAGS]) == 0
    err = capsys.readouterr().err
    assert err.count("tensorboard is not installed") == 1
    assert not os.path.exists(os.path.join(run, "tensorboard"))
    assert [r["step"] for r in _csv(run)] == ["1", "2"]
    assert os.path.isfile(os.path.join(run, "checkpoint", "generator.safetensors"))
