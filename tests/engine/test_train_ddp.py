"""torchrun with 2 CPU processes (gloo): finite losses, equal weights on both ranks, bit-identical resume,
and a checkpoint the Checkpoint source loads. The CI configuration of issue 15 (tiny, a few steps)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.engine.train_fixtures import TINY_FLAGS, build_tiny_dataset

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _torchrun(*args: str) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "engine", "train", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def test_two_processes_train_resume_and_write_a_loadable_checkpoint(tmp_path):
    data = build_tiny_dataset(str(tmp_path / "ds"))
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    result = _torchrun("--data", data, "--out", full, "--steps", "3", *TINY_FLAGS)
    assert result["world_size"] == 2 and result["step"] == 3
    assert result["rank_digests"][0] == result["rank_digests"][1]
    rows = open(os.path.join(full, "log.csv")).read().splitlines()
    header = rows[0].split(",")
    assert len(rows) == 4  # rank 0 logs alone
    for row in rows[1:]:
        values = dict(zip(header, row.split(",")))
        assert all(np.isfinite(float(values[k])) for k in ("loss_g", "loss_d", "d_real", "d_fake"))

    _torchrun("--data", data, "--out", part, "--steps", "2", *TINY_FLAGS)
    resumed = _torchrun("--resume", part, "--steps", "3", "--no-progress")
    assert resumed["rank_digests"] == result["rank_digests"]
    a = load_file(os.path.join(full, "state", "train_state.safetensors"))
    b = load_file(os.path.join(part, "state", "train_state.safetensors"))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)

    from engine.generator.source import CheckpointSource

    identity = CheckpointSource(os.path.join(full, "checkpoint")).sample(0)
    assert identity.meta["trained"] is True
    assert np.isfinite(identity.pose(identity.neutral_params()).means).all()
