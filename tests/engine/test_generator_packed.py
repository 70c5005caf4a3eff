"""A generator identity's deformation branch packed into its arrays poses without the checkpoint,
bit-identically to the checkpoint's own runner (torch and ONNX forms)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.avatar.identity import BoundIdentity  # noqa: E402
from engine.errors import GaussianHeadsError  # noqa: E402
from engine.generator.checkpoint import save_checkpoint  # noqa: E402
from engine.generator.config import small_config  # noqa: E402
from engine.generator.networks import build_generator  # noqa: E402
from engine.generator.packed import PackedRunner, pack_deformation  # noqa: E402
from engine.generator.source import CheckpointSource  # noqa: E402
from engine.head_model import load_head_model  # noqa: E402


def _posed_params(identity):
    params = identity.neutral_params()
    params.expr[:6] = np.linspace(0.2, 0.9, 6)
    params.jaw[0] = 0.2
    return params


@pytest.mark.parametrize("onnx", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_packed_identity_poses_identically_without_the_checkpoint(tmp_path, onnx):
    path = tmp_path / "ckpt"
    save_checkpoint(build_generator(small_config(n_gaussians=1500), seed=1), path, onnx=onnx)
    identity = CheckpointSource(path).sample(3)
    params = _posed_params(identity)
    want = identity.pose(params)
    assert np.abs(identity.deformation.residuals(params).d_offsets).max() > 0   # the branch matters

    identity.deformation.pack()
    arrays = identity.to_arrays()
    assert ("deformation.packed.deformation_onnx" in arrays) == onnx
    assert any(k.startswith("deformation.packed.weights.") for k in arrays)
    shutil.rmtree(path)

    back = BoundIdentity.from_arrays(arrays, load_head_model("open"))
    assert isinstance(back.deformation.runner, PackedRunner)
    assert back.deformation.runner.backend == identity.deformation.runner.backend
    got = back.pose(params)
    for name in ("means", "log_scales", "quats", "opacity_logits", "sh"):
        assert np.array_equal(getattr(got, name), getattr(want, name)), name
    # stored again (e.g. re-saved on the farm), the packed branch is carried along
    again = back.to_arrays()
    assert sorted(again) == sorted(arrays)


def test_packing_a_missing_checkpoint_names_it(tmp_path):
    with pytest.raises(GaussianHeadsError, match="gone"):
        pack_deformation(tmp_path / "gone")


def test_packed_weights_must_match_the_config(tmp_path):
    path = tmp_path / "ckpt"
    save_checkpoint(build_generator(small_config(n_gaussians=1500), seed=1), path)
    packed = pack_deformation(path)
    assert PackedRunner(packed).backend == "torch"
    broken = {k: v for k, v in packed.items() if k != "weights.in_bias"}
    with pytest.raises(GaussianHeadsError, match="does not match"):
        PackedRunner(broken)
