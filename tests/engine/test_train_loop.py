"""One-process training: resume is bit-identical, the checkpoint loads in the add-on's sources, bad runs are refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from engine.__main__ import main
from tests.engine.train_fixtures import TINY_FLAGS, build_tiny_dataset

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_dataset(str(tmp_path_factory.mktemp("train_loop") / "ds"))


def _state(run: str) -> dict[str, np.ndarray]:
    return load_file(os.path.join(run, "state", "train_state.safetensors"))


def test_resume_continues_bit_identically_and_checkpoint_loads(tiny, tmp_path, capsys):
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    assert main(["train", "--data", tiny, "--out", full, "--steps", "4", *TINY_FLAGS]) == 0
    assert main(["train", "--data", tiny, "--out", part, "--steps", "2", *TINY_FLAGS]) == 0
    assert main(["train", "--resume", part, "--steps", "4", "--no-progress"]) == 0
    a, b = _state(full), _state(part)
    assert sorted(a) == sorted(b)
    assert any(k.startswith("opt_d.") for k in a) and any(k.startswith("G_ema.") for k in a)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    rows = open(os.path.join(full, "log.csv")).read().splitlines()
    assert len(rows) == 5
    header = rows[0].split(",")
    for row in rows[1:]:
        values = dict(zip(header, row.split(",")))
        assert all(np.isfinite(float(values[k])) for k in ("loss_g", "loss_d", "d_real", "d_fake"))

    # the add-on's checkpoint: trained, with the dataset's description, ONNX, loadable by both backends
    from engine.avatar.sources import SourceSpec, sample_identity
    from engine.generator.checkpoint import read_checkpoint

    ckpt = os.path.join(full, "checkpoint")
    files = read_checkpoint(ckpt)
    assert files.meta["trained"] is True and files.meta["step"] == 4 and "synthetic" in files.meta["dataset"]
    assert files.has("identity_onnx") and files.has("weights")
    identity = sample_identity(SourceSpec("checkpoint", ckpt), seed=1)
    params = identity.neutral_params()
    params.expr[:3] = 0.5
    gaussians = identity.pose(params)
    assert len(gaussians.means) == 256 and np.isfinite(gaussians.means).all()
    ply = str(tmp_path / "s.ply")
    assert main(["sample", "--seed", "2", "--source", f"checkpoint:{ckpt}", "--out", ply]) == 0
    assert os.path.getsize(ply) > 0
    from engine.bake.bake import bake

    baked = bake(identity, n_samples=16, k=4, seed=0)
    assert np.isfinite(baked.pose(params).means).all()


def test_checkpoint_of_another_head_model_is_refused(tiny, tmp_path, capsys):
    from engine.generator.checkpoint import save_checkpoint
    from engine.generator.networks import build_generator
    from engine.head_model.storage import model_to_arrays, save_npz
    from tests.engine.synthetic_head import make_synthetic_head
    from tests.engine.train_fixtures import tiny_generator_config

    model_path = str(tmp_path / "other_head.npz")
    save_npz(model_path, model_to_arrays(make_synthetic_head()))
    other = str(tmp_path / "other_ckpt")
    save_checkpoint(build_generator(tiny_generator_config(head_model=model_path)), other)
    run = str(tmp_path / "run")
    assert main(["train", "--data", tiny, "--out", run, "--init", other, "--steps", "1", *TINY_FLAGS]) == 1
    err = capsys.readouterr().err
    assert "other_ckpt: was made for a different head model" in err
    assert not os.path.exists(run)  # refused before training started


def test_sigterm_writes_a_resumable_state(tiny, tmp_path):
    run = str(tmp_path / "run")
    proc = subprocess.Popen([sys.executable, "-m", "engine", "train", "--data", tiny, "--out", run, "--steps", "100000",
                             *TINY_FLAGS], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = os.path.join(run, "log.csv")
    deadline = time.time() + 120
    while time.time() < deadline and not (os.path.exists(log) and len(open(log).read().splitlines()) >= 3):
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    result = json.loads(out.splitlines()[0])
    assert result["stopped_by"] == "interrupted" and result["step"] >= 2
    state = json.load(open(os.path.join(run, "state", "train_state.json")))
    assert state["step"] == result["step"]
    assert main(["train", "--resume", run, "--steps", str(result["step"] + 1), "--no-progress"]) == 0
    assert json.load(open(os.path.join(run, "state", "train_state.json")))["step"] == result["step"] + 1
