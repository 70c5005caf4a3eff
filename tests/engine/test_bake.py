"""Baking (engine.bake) end to end on a small synthetic identity.

The identity is the avatar developer's synthetic head model (tests/engine/synthetic_head.py)
with UV-bound Gaussians (engine.avatar.binding / identity) and a non-linear deformation on
scales and opacities, posed with the test's own numpy LBS (``synthetic_forward``).
"""

import os
import zipfile

import numpy as np
import pytest
from tests.engine.synthetic_head import make_synthetic_head, synthetic_forward

from engine.avatar.binding import sample_uv_binding
from engine.avatar.identity import BoundIdentity, CanonicalGaussians, GaussianResiduals
from engine.bake import BakeCancelled, BakeConfig, BakedIdentity, MLPConfig, ReportConfig, SVDConfig, bake
from engine.bake.attributes import input_names, inputs_to_params, params_to_inputs, rigid_head_transform
from engine.bake.bake import neutral_joints, residual_source
from engine.bake.config import SamplingConfig
from engine.bake.mlp import OnnxMLP
from engine.bake.sampling import sample_inputs
from engine.bake.svd import streaming_svd
from engine.errors import GaussianHeadsError, InputFileError


class _Deformation:
    """Non-linear residuals on log-scales and opacity logits driven by the expression."""

    def __init__(self, n, n_expr, seed=0):
        rng = np.random.default_rng(seed)
        self.w_opacity = rng.normal(size=(n_expr, n)).astype(np.float32)
        self.w_scale = (rng.normal(size=(n_expr, n, 3)) * 0.1).astype(np.float32)

    def residuals(self, params):
        e = np.asarray(params.expr, np.float32)
        return GaussianResiduals(d_log_scales=np.tanh(np.einsum("e,enj->nj", e, self.w_scale)),
                                 d_opacity_logits=np.tanh(e @ self.w_opacity))


class SynthIdentity:
    """An Identity (model, shape, neutral_params, pose) on the synthetic head."""

    def __init__(self, n_gaussians=1200, seed=0):
        self.model = make_synthetic_head(n_lat=16, n_lon=32, n_shape=4)
        rng = np.random.default_rng(seed)
        self.shape = (rng.normal(size=4) * 0.5).astype(np.float32)
        n = n_gaussians
        q = rng.normal(size=(n, 4))
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        canonical = CanonicalGaussians(rng.normal(size=(n, 3)) * 0.05,
                                       np.log(0.3) + rng.normal(size=(n, 3)) * 0.2, q, rng.normal(size=n) + 2,
                                       rng.normal(size=(n, 1, 3)))
        self.bound = BoundIdentity(self.model, sample_uv_binding(self.model, n, seed), canonical, self.shape,
                                   deformation=_Deformation(n, self.model.n_expr))
        self.calls = 0

    def neutral_params(self):
        return self.bound.neutral_params()

    def pose(self, params):
        self.calls += 1
        return self.bound.pose_vertices(synthetic_forward(self.model, params).vertices, params)


SMALL = BakeConfig(mlp=MLPConfig(hidden=(64, 64), steps=600, batch_size=64, lr=3e-3),
                   svd=SVDConfig(block_rows=16), report=ReportConfig(n_heldout=6))


@pytest.fixture(scope="module")
def identity():
    return SynthIdentity()


@pytest.fixture(scope="module")
def baked(identity):
    return bake(identity, 120, 16, seed=0, config=SMALL)


def _params(identity, expr=None, jaw=(0, 0, 0), eyes=None, neck=(0, 0, 0), global_rot=(0, 0, 0),
            translation=(0, 0, 0)):
    p = identity.neutral_params()
    if expr is not None:
        p.expr = np.asarray(expr, np.float32)
    p.jaw = np.asarray(jaw, np.float32)
    if eyes is not None:
        p.eyes = np.asarray(eyes, np.float32).reshape(2, 3)
    p.neck = np.asarray(neck, np.float32)
    p.global_rot = np.asarray(global_rot, np.float32)
    p.translation = np.asarray(translation, np.float32)
    return p


def test_sampling_layout_and_determinism():
    cfg = SamplingConfig()
    a = sample_inputs(200, 6, seed=4, config=cfg)
    b = sample_inputs(200, 6, seed=4, config=cfg)
    c = sample_inputs(200, 6, seed=4, config=cfg, stream=1)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (200, 15) and np.all(a[0] == 0) and not np.array_equal(a, c)
    assert a[:, :6].min() >= 0 and a[:, :6].max() <= 1           # ARKit range [0, 1]
    assert a[:, 6].min() >= 0 and a[:, 6].max() <= cfg.jaw_open_max   # jaw opens about +X only
    assert np.abs(a[:, 9:]).max() <= cfg.eye_max + 0.05
    single = (np.count_nonzero(a[:, :6], axis=1) == 1) & np.all(a[:, 6:] == 0, axis=1)
    assert single.sum() > 10                                     # one-hot units exist
    assert (np.all(a[:, :6] == 0, axis=1) & (a[:, 6] > 0)).sum() > 5   # jaw-only rows exist
    extra = np.full((50, 15), 0.25, np.float32)
    d = sample_inputs(100, 6, seed=4, config=SamplingConfig(extra_fraction=0.3), extra_inputs=extra)
    assert (np.all(d == 0.25, axis=1)).sum() == 29
    f = sample_inputs(100, 6, seed=4, expr_space="flame")
    assert f[:, :6].min() < 0                                    # FLAME ψ is signed


def test_param_layout_round_trip(identity):
    p = _params(identity, expr=np.linspace(0, 1, 6), jaw=(0.1, 0.02, 0.0), eyes=np.arange(6) * 0.01)
    x = params_to_inputs(p, 6)
    assert x.shape == (15,) and len(input_names(identity.model.expr_names)) == 15
    q = inputs_to_params(x, identity.shape, 6)
    for name in ("expr", "jaw", "eyes", "shape"):
        np.testing.assert_array_equal(getattr(q, name), getattr(p, name))


def test_full_rank_reproduces_sampled_set(identity, baked):
    """With K = number of samples the basis spans every sampled residual: blending the projected
    coefficients reproduces the full model on the sampled set (near-exactly)."""
    n = 24
    inputs = sample_inputs(n, 6, seed=1)
    neutral = identity.pose(identity.neutral_params())
    attrs = baked.attributes
    source = residual_source(identity, inputs, neutral, attrs)
    dims = [len(neutral) * d for d in (3, 3, 4, 1)]
    results = streaming_svd(source, n, dims, n, seed=0, config=SVDConfig(oversample=0, power_iters=2))
    full_basis = {a: r.basis for a, r in zip(attrs, results)}
    twin = BakedIdentity(neutral, attrs, full_basis, _zero_mlp(6, 4 * n), b"", identity.model.expr_names,
                         identity.shape, baked.joints, blend_backend="float32")
    for i in (3, 11, 23):
        c = np.concatenate([r.coeffs[i] for r in results])
        got = twin.blend(c)
        want = identity.pose(inputs_to_params(inputs[i], identity.shape, 6))
        np.testing.assert_allclose(got.means, want.means, atol=2e-6)
        np.testing.assert_allclose(got.log_scales, want.log_scales, atol=1e-4)
        np.testing.assert_allclose(got.opacity_logits, want.opacity_logits, atol=1e-4)
        dots = np.abs((got.quats * want.quats).sum(1))
        assert dots.min() > 1 - 1e-6


def _zero_mlp(n_expr, outputs):
    from engine.bake.mlp import MLPWeights

    p = n_expr + 9
    return MLPWeights(np.zeros((p, 4)), np.zeros(4), np.zeros((4, 4)), np.zeros(4), np.zeros((4, outputs)),
                      np.zeros(outputs))


def test_mlp_recovers_held_out(baked):
    r = baked.report
    assert r.n_heldout == 6 and r.n_samples == 120 and r.k == 16
    for a in ("xyz", "scale", "rotation", "opacity"):
        assert r.heldout_residual_rms[a] > 0
        # the baked model explains most of the held-out deformation
        assert r.heldout_rmse[a] < 0.35 * r.heldout_residual_rms[a], (a, r.heldout_rmse[a], r.heldout_residual_rms[a])
        assert r.heldout_projection_rmse[a] <= r.heldout_rmse[a] + 1e-9
        assert 0.9 < r.captured[a] <= 1.0
    assert r.psnr_mean is None
    assert set(r.seconds) >= {"svd", "mlp", "report", "total"}
    assert 0 <= r.neck_rmse < 1e-3 and r.neck_max < 1e-2   # the run-time head transform follows LBS


def test_neutral_is_exact(identity, baked):
    full = identity.pose(identity.neutral_params())
    mine = baked.pose(baked.neutral_params())
    np.testing.assert_allclose(mine.means, full.means, atol=1e-6)
    np.testing.assert_allclose(mine.opacity_logits, full.opacity_logits, atol=1e-5)


def test_blended_attributes_stay_valid(identity, baked):
    rng = np.random.default_rng(0)
    for scale in (1.0, 4.0):  # including far outside the training range
        p = _params(identity, expr=rng.uniform(0, scale, 6), jaw=(0.4 * scale, 0.1, 0), eyes=rng.normal(size=6) * scale)
        g = baked.pose(p)
        assert np.all(np.isfinite(g.means)) and np.all(np.isfinite(g.log_scales))
        np.testing.assert_allclose(np.linalg.norm(g.quats, axis=1), 1.0, atol=1e-5)
        assert np.all(g.scales > 0)
        assert np.all((g.opacities >= 0) & (g.opacities <= 1)) and np.all(np.isfinite(g.opacity_logits))


@pytest.mark.parametrize("backend", ["numpy", "float32", "int8"])
@pytest.mark.parametrize("neck", [(0, 0, 0), (0.2, -0.1, 0.05)])
def test_fast_pose_equals_reference(identity, baked, backend, neck):
    p = _params(identity, expr=np.linspace(0.1, 0.9, 6), jaw=(0.2, 0.03, 0), eyes=[0.1, 0.2, 0, 0.1, 0.15, 0],
                neck=neck, global_rot=(0.1, 0.6, -0.2), translation=(0.01, 0.02, 0.3))
    arrays = baked.to_arrays()
    fast = BakedIdentity.from_arrays(arrays)
    fast.blend_backend = backend
    got, ref = fast.pose(p), baked.pose_reference(p)
    # static channels skipped by the fused kernels: error bounded by Σ_k |basis| · |c_k| (blend_kernel)
    skip = {"means": 0.0, "log_scales": 0.0, "quats": 0.0, "opacity_logits": 0.0, "sh": 0.0}
    if backend != "numpy":
        tables = fast.blend_tables()
        # (a float32 view of the table: the skipped channels' bound alone, the int8 part comes below)
        bound = _kernel_error_bound(fast, tables._replace(table=tables.table.astype(np.float32)),
                                    fast.coefficients(p)) - 2e-6
        skip = {"means": np.linalg.norm(bound[:, 0:3], axis=1).max(), "log_scales": bound[:, 3:6].max(),
                "quats": 2.5 * np.linalg.norm(bound[:, 6:10], axis=1).max(), "opacity_logits": bound[:, 10].max(),
                "sh": 0.0}
        assert max(skip.values()) < 1e-4   # far below the attribute changes themselves
    # int8 tables: error bounded by half a quantisation step per coefficient (see blend_kernel)
    tol = {"numpy": 2e-6, "float32": 2e-6, "int8": None}[backend]
    for name in ("means", "log_scales", "quats", "opacity_logits", "sh"):
        a, b = getattr(got, name), getattr(ref, name)
        if tol is None:
            size = np.abs(getattr(baked.pose(baked.neutral_params()), name) - b).max() + 1e-6
            np.testing.assert_allclose(a, b, atol=0.02 * size + 1e-6 + skip[name], err_msg=name)
        else:
            np.testing.assert_allclose(a, b, atol=tol + skip[name], err_msg=name)
    if backend == "float32":  # without coef_max (older files) nothing is skipped: exact
        del arrays["coef_max"]
        every = BakedIdentity.from_arrays(arrays)
        every.blend_backend = backend
        for name in ("means", "log_scales", "quats", "opacity_logits", "sh"):
            np.testing.assert_allclose(getattr(every.pose(p), name), getattr(ref, name), atol=2e-6, err_msg=name)
    if backend == "int8":
        g = got
        np.testing.assert_allclose(np.linalg.norm(g.quats, axis=1), 1.0, atol=1e-5)


def test_global_rotation_and_translation_are_rigid(identity, baked):
    """Head rotation and translation are not baked: they must match the full model exactly."""
    expr = np.array([0.5, 0.2, 0, 0.3, 0, 0.7], np.float32)
    p0 = _params(identity, expr=expr, jaw=(0.15, 0, 0))
    p1 = _params(identity, expr=expr, jaw=(0.15, 0, 0), global_rot=(0.3, -0.4, 0.1), translation=(0.1, -0.2, 0.5))
    m = rigid_head_transform(p1.global_rot, p1.neck, p1.translation, baked.joints)
    want = baked.pose(p0).transformed(m)
    got = baked.pose(p1)
    np.testing.assert_allclose(got.means, want.means, atol=2e-6)
    np.testing.assert_allclose(np.abs((got.quats * want.quats).sum(1)), 1.0, atol=1e-5)
    # the full model agrees at the neutral expression (where the bake is exact)
    n0 = _params(identity, global_rot=(0.3, -0.4, 0.1), translation=(0.1, -0.2, 0.5))
    np.testing.assert_allclose(baked.pose(n0).means, identity.pose(n0).means, atol=1e-5)


def test_neck_weights_follow_skinning(identity, baked):
    """Synthetic head: the skull is skinned to the root, the neck ring to the neck joint."""
    w = baked.neck_weights
    y = baked.neutral.means[:, 1]
    assert np.median(w[y > 0.0]) < 0.05 and np.median(w[y < -0.095]) > 0.9
    p = _params(identity, neck=(0.25, 0.1, 0.0))
    err = np.linalg.norm(baked.pose(p).means - identity.pose(p).means, axis=1)
    assert np.percentile(err, 95) < 1e-3


def test_joints_are_the_shaped_root_and_neck(identity, baked):
    pose = synthetic_forward(identity.model, identity.neutral_params())
    np.testing.assert_allclose(baked.joints, pose.joints[:2], atol=1e-6)
    np.testing.assert_allclose(neutral_joints(identity.model, identity.shape), baked.joints)


def test_numpy_and_onnxruntime_mlp_agree(identity, baked):
    pytest.importorskip("onnxruntime")
    x = sample_inputs(5, 6, seed=9, stream=2)
    ref = baked.mlp.forward(x)
    np.testing.assert_allclose(OnnxMLP(baked.onnx_bytes)(x), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    p = _params(identity, expr=np.full(6, 0.4), jaw=(0.1, 0, 0))
    a = BakedIdentity.from_arrays(baked.to_arrays())
    a.mlp_backend = "numpy"
    b = BakedIdentity.from_arrays(baked.to_arrays())
    b.mlp_backend = "onnxruntime"
    np.testing.assert_allclose(a.pose(p).means, b.pose(p).means, atol=1e-6)


def test_save_load_round_trip(tmp_path, identity, baked):
    path = tmp_path / "head.npz"
    baked.save(path)
    assert sorted(os.listdir(tmp_path)) == ["head.npz"]
    with np.load(path, allow_pickle=False) as npz:
        assert "basis_xyz" in npz.files and npz["basis_xyz"].shape == (16, len(baked), 3)
    back = BakedIdentity.load(path)
    ref = baked.to_arrays()
    got = back.to_arrays()
    assert sorted(ref) == sorted(got)
    for key in ref:
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    p = _params(identity, expr=np.full(6, 0.3), jaw=(0.2, 0, 0), neck=(0.1, 0.2, 0))
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        np.testing.assert_array_equal(getattr(back.pose(p), name), getattr(baked.pose(p), name))
    assert back.report == baked.report and back.config == baked.config
    # float16 storage: half the size, close poses
    import dataclasses

    half = dataclasses.replace(baked, config=dataclasses.replace(baked.config, storage_dtype="float16"))
    half.save(tmp_path / "half.npz")
    small = BakedIdentity.load(tmp_path / "half.npz")
    assert os.path.getsize(tmp_path / "half.npz") < 0.75 * os.path.getsize(path)
    np.testing.assert_allclose(small.pose(p).means, baked.pose(p).means, atol=1e-4)


def test_files_with_and_without_onnx_load_and_pose(tmp_path, identity, baked):
    """The ONNX member is optional (BAKED_FORMAT.md): a file with it (as every bake writes), with an
    empty one (``has_onnx: false``) or without it loads, and all three pose alike."""
    import json

    arrays = baked.to_arrays()
    assert arrays["mlp_onnx"].size > 0 and baked.metadata()["mlp"]["has_onnx"]
    empty = dict(arrays, mlp_onnx=np.zeros(0, np.uint8))
    meta = json.loads(bytes(empty["meta"]).decode())
    meta["mlp"]["has_onnx"] = False
    empty["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    absent = {k: v for k, v in empty.items() if k != "mlp_onnx"}
    p = _params(identity, expr=np.full(6, 0.3), jaw=(0.2, 0, 0), eyes=np.full(6, 0.05))
    ref = BakedIdentity.from_arrays(arrays)
    ref.mlp_backend = "numpy"
    want = ref.pose(p).means
    for name, members in (("with.npz", arrays), ("empty.npz", empty), ("absent.npz", absent)):
        np.savez(tmp_path / name, **members)
        back = BakedIdentity.load(tmp_path / name)
        assert bool(back.onnx_bytes) == (name == "with.npz")
        assert back.metadata()["mlp"]["has_onnx"] == (name == "with.npz")
        np.testing.assert_allclose(back.pose(p).means, want, rtol=0, atol=1e-6, err_msg=name)
        if not back.onnx_bytes:  # asking for onnxruntime without a network says so
            back.mlp_backend = "onnxruntime"
            with pytest.raises(GaussianHeadsError, match="no ONNX"):
                back.pose(p)
            assert "mlp_onnx" in back.to_arrays()  # re-saved: the (empty) member old readers need
    bad = dict(arrays, mlp_onnx=np.zeros((2, 2), np.uint8))
    with pytest.raises(GaussianHeadsError, match="mlp_onnx"):
        BakedIdentity.from_arrays(bad)


def test_corrupt_files_are_rejected_naming_them(tmp_path, baked):
    good = tmp_path / "good.npz"
    baked.save(good)
    data = good.read_bytes()
    cases = {}
    cases["truncated.npz"] = data[: len(data) // 2]
    cases["garbage.npz"] = b"not a zip at all" * 100
    cases["empty.npz"] = b""
    arrays = baked.to_arrays()
    for name, mutate in {
        "missing.npz": lambda a: a.pop("basis_rotation"),
        "wrongshape.npz": lambda a: a.__setitem__("basis_xyz", a["basis_xyz"][:, :-1]),
        "nan.npz": lambda a: a.__setitem__("mlp_w1", a["mlp_w1"] * np.nan),
        "badmeta.npz": lambda a: a.__setitem__("meta", np.frombuffer(b"{nope", np.uint8)),
        "future.npz": lambda a: a.__setitem__("meta", np.frombuffer(
            bytes(a["meta"]).replace(b'"format_version":1', b'"format_version":99'), np.uint8)),
    }.items():
        a = dict(arrays)
        mutate(a)
        np.savez(tmp_path / name, **a)
    for name, payload in cases.items():
        (tmp_path / name).write_bytes(payload)
    with zipfile.ZipFile(tmp_path / "pickled.npz", "w") as z:  # an object array needs pickles
        import io

        buf = io.BytesIO()
        np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        z.writestr("meta.npy", buf.getvalue())
    for name in list(cases) + ["missing.npz", "wrongshape.npz", "nan.npz", "badmeta.npz", "future.npz",
                               "pickled.npz", "absent.npz"]:
        path = tmp_path / name
        with pytest.raises(InputFileError) as info:
            BakedIdentity.load(path)
        assert str(path) in str(info.value), name
    with pytest.raises(InputFileError, match="newer"):
        BakedIdentity.load(tmp_path / "future.npz")


def test_cancel_raises_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ident = SynthIdentity(n_gaussians=300)
    polls = []

    def cancel():
        polls.append(1)
        return len(polls) > 20

    seen = []
    with pytest.raises(BakeCancelled):
        bake(ident, 60, 8, seed=0, config=SMALL, cancel=cancel, progress=lambda f, t: seen.append(f))
    assert isinstance(BakeCancelled(), GaussianHeadsError)
    assert ident.calls < 30          # stopped promptly, long before the 2 × 60 poses of the SVD
    assert os.listdir(tmp_path) == []


def test_progress_is_monotonic_and_complete():
    ident = SynthIdentity(n_gaussians=300)
    seen = []
    bake(ident, 40, 8, seed=0, config=BakeConfig(mlp=MLPConfig(hidden=(16, 16), steps=50),
                                                 report=ReportConfig(n_heldout=2)),
         progress=lambda f, t: seen.append((f, t)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert len(seen) > 10 and all(isinstance(t, str) and t for _, t in seen)


def test_exact_and_streaming_bakes_agree(identity):
    cfg_a = BakeConfig(mlp=MLPConfig(hidden=(16, 16), steps=20), report=ReportConfig(n_heldout=0),
                       svd=SVDConfig(power_iters=2))
    cfg_b = BakeConfig(mlp=MLPConfig(hidden=(16, 16), steps=20), report=ReportConfig(n_heldout=0),
                       svd=SVDConfig(method="exact"))
    a = bake(identity, 40, 6, seed=2, config=cfg_a)
    b = bake(identity, 40, 6, seed=2, config=cfg_b)
    from engine.bake.svd import subspace_distance

    for name in a.attributes:
        assert subspace_distance(a.basis(name), b.basis(name)) < 0.05, name


def test_rejects_bad_requests(identity):
    with pytest.raises(GaussianHeadsError, match="samples"):
        bake(identity, 10, 16, seed=0, config=SMALL)
    with pytest.raises(GaussianHeadsError, match="attribute"):
        bake(identity, 10, 4, seed=0, config=BakeConfig(attributes=("xyz", "wrinkles")))
    with pytest.raises(GaussianHeadsError, match="extra frames"):
        bake(identity, 20, 4, seed=0, config=SMALL, extra_frames=np.zeros((5, 3)))


def test_colour_and_extra_frames(identity):
    extra = np.zeros((30, 15), np.float32)
    extra[:, 0] = np.linspace(0, 1, 30)
    cfg = BakeConfig(attributes=("xyz", "color"), mlp=MLPConfig(hidden=(16, 16), steps=20),
                     report=ReportConfig(n_heldout=1))
    b = bake(identity, 30, 4, seed=0, config=cfg, extra_frames=extra)
    g = b.pose(b.neutral_params())
    np.testing.assert_allclose(g.sh, b.neutral.sh, atol=1e-6)  # identity has no colour change
    assert b.attributes == ("xyz", "color") and b.mlp.n_outputs == 8


def test_flame_space_model_bakes():
    """FLAME-space expressions (signed ψ, no range) go through the same bake."""
    import dataclasses

    ident = SynthIdentity(n_gaussians=300)
    ident.model = dataclasses.replace(ident.model, expr_space="flame", expr_range=None)
    b = bake(ident, 40, 6, seed=0, config=BakeConfig(mlp=MLPConfig(hidden=(16, 16), steps=30),
                                                    report=ReportConfig(n_heldout=2)))
    assert b.meta["model"]["expr_space"] == "flame"
    assert b.report.heldout_residual_rms["xyz"] > 0
    p = b.neutral_params()
    p.expr = np.full(6, -1.0, np.float32)
    assert np.isfinite(b.pose(p).means).all()


def test_pose_bench_times_the_full_and_the_baked_identity():
    import json
    import pathlib
    import subprocess
    import sys

    repo = pathlib.Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "engine", "bench", "pose", "--gaussians", "3000", "--repeat", "5"],
                          cwd=repo, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [("baked" in r["case"]) for r in rows] == [False, True]
    for r in rows:
        assert r["bench"] == "pose" and r["gaussians"] == 3000 and r["ms_median"] > 0


# -- static Gaussians (coef_max, compacted tables) ------------------------------------------------

def _kernel_error_bound(baked, tables, c):
    """[N, C] bound on |fused kernel − blend_numpy| before normalisation and the rigid part, for
    coefficients c [A·K]: skipped channels (static Gaussians, static channels) change by at most
    Σ_k |basis[k, i, j]| · |c_k| (≤ the documented e[i, j] · max_k |c_k| / coef_max[a, k]); int8
    channels err by at most scale / 2 · Σ_k |c_k|; plus float32 rounding."""
    from engine.bake import blend_kernel as bk

    n, k = len(baked), baked.k
    cc = np.asarray(c, np.float64).reshape(len(baked.attributes), k)
    skip = bk.change_bounds(baked.bases, baked.attributes, n, k, np.abs(cc))   # Σ_k |B| |c_k|
    bound = np.zeros_like(skip)
    live = tables.row >= 0
    skipped = np.ones(skip.shape, bool)
    skipped[live] = tables.scale == 0
    bound[skipped] = skip[skipped]
    if tables.table.dtype == np.int8:
        for a, name in enumerate(baked.attributes):
            lo, hi = bk.CHANNELS[name]
            bound[np.flatnonzero(live)[:, None], np.arange(lo, hi)[None, :]] += \
                tables.scale[:, lo:hi] / 2 * np.abs(cc[a]).sum()
    return bound + 2e-6


def _check_fast_against_twin(baked, c, m_root, m_neck):
    """The fused kernel equals the exact numpy twin within ``_kernel_error_bound``."""
    tables = baked.blend_tables()
    fast, twin = baked.blend(c, m_root, m_neck), baked.blend_numpy(c, m_root, m_neck)
    b = _kernel_error_bound(baked, tables, c)
    # rigid parts and quaternion products preserve vector norms: compare per-Gaussian norms
    assert (np.linalg.norm(fast.means - twin.means, axis=1) <= np.linalg.norm(b[:, 0:3], axis=1)).all()
    assert (np.abs(fast.log_scales - twin.log_scales) <= b[:, 3:6]).all()
    assert (np.abs(fast.opacity_logits - twin.opacity_logits) <= b[:, 10]).all()
    # normalise(q + δ) moves by at most 2|δ| / |q|; q = the twin's unnormalised quaternion
    k = baked.k
    a_rot = baked.attributes.index("rotation")
    q = baked.neutral.quats + (np.asarray(c[a_rot * k:(a_rot + 1) * k]) @ baked.bases["rotation"]).reshape(-1, 4)
    qn = np.linalg.norm(q, axis=1)
    dq = np.linalg.norm(b[:, 6:10], axis=1)
    ok = qn > 4 * dq + 1e-3
    err = np.linalg.norm(fast.quats - twin.quats, axis=1)
    assert (err[ok] <= 2 * dq[ok] / (qn[ok] - dq[ok]) + 2e-6).all()
    return fast, twin, tables


@pytest.mark.parametrize("backend", ["float32", "int8"])
def test_fast_blend_equals_numpy_twin_within_bounds(identity, baked, backend):
    fast = BakedIdentity.from_arrays(baked.to_arrays())
    fast.blend_backend = backend
    assert fast.coef_max is not None and fast.coef_max.shape == (4, 16)
    for neck in ((0, 0, 0), (0.2, -0.1, 0.05)):
        p = _params(identity, expr=np.linspace(0.1, 0.9, 6), jaw=(0.2, 0.03, 0), eyes=[0.1, 0.2, 0, 0.1, 0.15, 0],
                    neck=neck, global_rot=(0.1, 0.6, -0.2), translation=(0.01, 0.02, 0.3))
        _check_fast_against_twin(fast, fast.coefficients(p), *fast.head_transforms(p))


class _PartlyMoving:
    """An Identity where only the Gaussians in ``moving`` follow expressions, jaw and eyes; the others
    only follow the rigid head (global, neck, translation), like a scalp."""

    def __init__(self, base, moving):
        self.base, self.moving = base, np.asarray(moving)
        self.model, self.shape = base.model, base.shape

    def neutral_params(self):
        return self.base.neutral_params()

    def pose(self, params):
        full = self.base.pose(params)
        rigid = self.base.neutral_params()
        rigid.neck, rigid.global_rot, rigid.translation = params.neck, params.global_rot, params.translation
        still = self.base.pose(rigid)
        keep = np.ones(len(full), bool)
        keep[self.moving] = False
        for name in ("means", "log_scales", "quats", "opacity_logits"):
            getattr(full, name)[keep] = getattr(still, name)[keep]
        return full


@pytest.fixture(scope="module")
def partly_moving():
    ident = SynthIdentity(n_gaussians=400, seed=3)
    moving = np.sort(np.random.default_rng(1).choice(400, 150, replace=False))
    wrapped = _PartlyMoving(ident, moving)
    cfg = BakeConfig(mlp=MLPConfig(hidden=(32, 32), steps=200), report=ReportConfig(n_heldout=2))
    return wrapped, bake(wrapped, 60, 8, seed=0, config=cfg)


def test_bake_of_partly_moving_identity_compacts_the_table(partly_moving):
    from engine.bake import blend_kernel as bk

    wrapped, b = partly_moving
    assert b.coef_max.shape == (4, 8) and b.coef_max.dtype == np.float32 and (b.coef_max >= 0).all()
    for backend in ("float32", "int8"):
        b.blend_backend = backend
        t = b.blend_tables()
        np.testing.assert_array_equal(t.live, wrapped.moving)                # exactly the moving ones
        np.testing.assert_array_equal(t.row[wrapped.moving], np.arange(150))
        assert (np.delete(t.row, wrapped.moving) == -1).all()
        np.testing.assert_array_equal(t.static, np.setdiff1d(np.arange(400), wrapped.moving))
        assert t.table.shape == (150, 11, 8) and t.scale.shape == (150, 11) and t.live_fraction == 150 / 400
        # the compacted rows are the moving Gaussians' rows of the uncompacted table
        full = bk.build_tables(b.bases, b.attributes, 400, 8, quantise=backend == "int8")
        assert full.table.shape == (400, 11, 8) and full.live_fraction == 1.0
        blended = t.scale > 0
        np.testing.assert_array_equal(t.table[blended], full.table[wrapped.moving][blended])
        np.testing.assert_array_equal(t.scale[blended], full.scale[wrapped.moving][blended])
        assert not t.table[~blended].any()
    b.blend_backend = "auto"


def test_static_gaussians_come_out_neutral_then_rigid(partly_moving):
    wrapped, b = partly_moving
    static = np.setdiff1d(np.arange(400), wrapped.moving)
    nt = b.neutral
    rng = np.random.default_rng(5)
    for backend in ("float32", "int8"):
        b.blend_backend = backend
        for trial in range(3):
            p = b.neutral_params()
            p.expr = rng.uniform(0, 1, 6).astype(np.float32)
            p.jaw = np.array([0.3, 0.05, 0], np.float32)
            p.eyes = rng.normal(0, 0.2, (2, 3)).astype(np.float32)
            c = b.coefficients(p)
            assert np.abs(c).max() > 0
            g = b.blend(c)                                   # mode 0: no rigid part
            for name in ("means", "log_scales", "opacity_logits"):
                np.testing.assert_array_equal(getattr(g, name)[static], getattr(nt, name)[static], err_msg=name)
            q = nt.quats[static]
            np.testing.assert_allclose(g.quats[static], q / np.linalg.norm(q, axis=1, keepdims=True), atol=1e-7)
            p.neck = np.array([0.2, -0.1, 0.05], np.float32) * trial
            p.global_rot = np.array([0.1, 0.5, -0.2], np.float32)
            p.translation = np.array([0.01, 0.02, 0.3], np.float32)
            m_root, m_neck = b.head_transforms(p)
            g = b.blend(c, m_root, m_neck)                   # modes 1 and 2: neutral row, then rigid
            rigid = b.blend_numpy(np.zeros_like(c), m_root, m_neck)
            for name in ("means", "log_scales", "quats", "opacity_logits"):
                np.testing.assert_allclose(getattr(g, name)[static], getattr(rigid, name)[static], atol=1e-6,
                                           err_msg=name)
            _check_fast_against_twin(b, c, m_root, m_neck)
    b.blend_backend = "auto"


def test_noise_bases_with_tiny_coefficients_count_as_static(baked):
    """Basis peaks alone do not tell static from moving: a noise component with a large basis row
    but tiny training coefficients leaves its Gaussians static."""
    from engine.bake import blend_kernel as bk

    n, k = len(baked), baked.k
    rng = np.random.default_rng(0)
    bases = {name: np.zeros_like(b) for name, b in baked.bases.items()}
    moving = np.arange(0, n, 7)
    bases["xyz"].reshape(k, n, 3)[0, moving] = 0.01                    # a real blendshape on 1/7 of them
    bases["opacity"][3] = rng.normal(size=n) / np.sqrt(n)             # an orthonormal noise row ...
    coef_max = np.zeros((4, k), np.float32)
    coef_max[0, 0] = 2.0
    coef_max[3, 3] = 1e-5                                             # ... with tiny coefficients
    t = bk.build_tables(bases, baked.attributes, n, k, quantise=True, coef_max=coef_max)
    np.testing.assert_array_equal(t.live, moving)
    assert (t.scale[:, 10] == 0).all() and (t.scale[:, :3] > 0).all()
    coef_max[3, 3] = 1.0                                               # large coefficients: live
    t = bk.build_tables(bases, baked.attributes, n, k, quantise=True, coef_max=coef_max)
    assert t.live_fraction > 0.99
    # the bound is e = Σ_k |B| coef_max against the tolerance of the channel's attribute
    e = bk.change_bounds(bases, baked.attributes, n, k, coef_max)
    assert ((e[t.live, 10] >= bk.STATIC_TOLERANCES.opacity) == (t.scale[:, 10] > 0)).all()
    assert (e[t.static] < bk.STATIC_TOLERANCES.opacity).all()


def test_old_files_without_coef_max_blend_as_before(tmp_path, identity, baked):
    from engine.bake import blend_kernel as bk

    arrays = baked.to_arrays()
    assert arrays["coef_max"].shape == (4, 16)
    del arrays["coef_max"]
    np.savez(tmp_path / "old.npz", **arrays)
    old = BakedIdentity.load(tmp_path / "old.npz")
    assert old.coef_max is None and "coef_max" not in old.to_arrays()
    p = _params(identity, expr=np.linspace(0.1, 0.9, 6), jaw=(0.2, 0.03, 0), eyes=[0.1, 0.2, 0, 0.1, 0.15, 0])
    c = old.coefficients(p)
    for backend in ("float32", "int8"):
        old.blend_backend = backend
        t = old.blend_tables()
        assert t.live_fraction == 1.0 and (t.row == np.arange(len(old))).all()
        # every Gaussian blended from the whole table, as before coef_max existed
        want = bk.neutral_table(old.neutral, old.attributes).astype(np.float64)
        cc = c.reshape(4, 16).astype(np.float64)
        for j in range(11):
            a = t.chan_attr[j]
            if a >= 0:
                want[:, j] += t.scale[:, j] * (t.table[:, j, :].astype(np.float64) @ cc[a])
        g = old.blend(c)
        np.testing.assert_allclose(g.means, want[:, 0:3], atol=2e-6)
        np.testing.assert_allclose(g.log_scales, want[:, 3:6], atol=2e-6)
        np.testing.assert_allclose(g.opacity_logits, want[:, 10], atol=2e-6)
        q = want[:, 6:10] / np.linalg.norm(want[:, 6:10], axis=1, keepdims=True)
        np.testing.assert_allclose(g.quats, q, atol=2e-6)
        _check_fast_against_twin(old, c, *old.head_transforms(p))


def test_coef_max_round_trip_and_validation(tmp_path, baked):
    path = tmp_path / "head.npz"
    baked.save(path)
    with np.load(path, allow_pickle=False) as npz:
        assert npz["coef_max"].shape == (4, 16) and npz["coef_max"].dtype == np.float32
    back = BakedIdentity.load(path)
    np.testing.assert_array_equal(back.coef_max, baked.coef_max)
    np.testing.assert_array_equal(back.blend_tables().row, baked.blend_tables().row)
    arrays = baked.to_arrays()
    for name, bad in {"shape.npz": arrays["coef_max"][:, :-1], "negative.npz": -arrays["coef_max"],
                      "nan.npz": arrays["coef_max"] * np.nan, "int.npz": arrays["coef_max"].astype(np.int32)}.items():
        a = dict(arrays)
        a["coef_max"] = bad
        np.savez(tmp_path / name, **a)
        with pytest.raises(InputFileError, match="coef_max") as info:
            BakedIdentity.load(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
