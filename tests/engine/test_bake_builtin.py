"""Baking the built-in identity on the open head model: batched posing, residual twins, CLI, bench."""

import json

import numpy as np
import pytest

from engine.__main__ import main
from engine.bake import BakedIdentity
from engine.bake.attributes import attribute_values, inputs_to_params, residual_into, residual_row
from engine.bake.bake import _batched_lbs, residual_source
from engine.bake.sampling import sample_inputs

ATTRS = ("xyz", "scale", "rotation", "opacity", "color")


@pytest.fixture(scope="module")
def builtin_identity():
    from engine.avatar.builtin import BuiltinSamplerConfig, BuiltinSource
    from engine.head_model import load_head_model

    return BuiltinSource(load_head_model("open"), BuiltinSamplerConfig(n_gaussians=1500)).sample(3)


def test_batched_source_equals_posing_one_by_one(builtin_identity):
    ident = builtin_identity
    assert _batched_lbs(ident) is not None
    inputs = sample_inputs(9, ident.model.n_expr, seed=5)
    neutral = ident.pose(ident.neutral_params())
    rows = residual_source(ident, inputs, neutral, ATTRS)(2, 9)
    for i in range(2, 9):
        posed = ident.pose(inputs_to_params(inputs[i], ident.shape, ident.model.n_expr))
        for a, name in enumerate(ATTRS):
            ref = residual_row(posed, attribute_values(neutral, name), name)
            np.testing.assert_allclose(rows[a][i - 2], ref, atol=5e-5, err_msg=name)  # float32 LBS sums, small faces


def test_fast_residuals_equal_reference(builtin_identity):
    ident = builtin_identity
    neutral = ident.pose(ident.neutral_params())
    p = ident.neutral_params()
    p.jaw = np.array([0.3, 0.05, 0], np.float32)
    p.expr[:5] = 0.7
    posed = ident.pose(p)
    posed.quats[::3] *= -1.7  # unnormalised and sign-flipped quaternions are the same rotations
    for name in ATTRS:
        nv = attribute_values(neutral, name).copy()
        ref = residual_row(posed, nv, name)
        out = np.full(ref.shape, np.nan, np.float32)
        residual_into(posed, nv, name, out)
        np.testing.assert_allclose(out, ref, atol=1e-6, err_msg=name)


@pytest.mark.slow
def test_cli_bake_with_report(tmp_path, capsys):
    out = tmp_path / "baked.npz"
    code = main(["bake", "--seed", "1", "--gaussians", "1500", "--samples", "48", "--k", "8", "--steps", "60",
                 "--heldout", "2", "--report", "--quiet", "--out", str(out)])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("psnr_mean", "psnr_min", "seconds", "peak_mb", "gaussians", "k"):
        assert key in result, key
    assert result["gaussians"] == 1500 and result["k"] == 8
    assert result["psnr_min"] <= result["psnr_mean"] and result["psnr_mean"] > 25
    # over the covered pixels only the error is denser: never a higher PSNR than the whole image
    assert result["psnr_head_mean"] <= result["psnr_mean"] + 1e-6
    assert result["peak_mb"] > 0
    baked = BakedIdentity.load(out)
    assert baked.report.psnr_mean == pytest.approx(result["psnr_mean"], abs=0.01)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baked.npz"]


def test_cli_rejects_bad_output(tmp_path, capsys):
    assert main(["bake", "--seed", "1", "--out", str(tmp_path / "x.txt")]) == 1
    assert "npz" in capsys.readouterr().err
    assert main(["bake", "--seed", "1", "--out", str(tmp_path / "nope" / "x.npz")]) == 1


@pytest.mark.slow
def test_bench_replay_line(capsys):
    assert main(["bench", "bake", "--replay", "--gaussians", "1000", "--k", "8", "--repeat", "5"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["bench"] == "bake_replay" and line["gaussians"] == 1000 and line["ms_median"] > 0
