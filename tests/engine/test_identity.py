"""BoundIdentity: posing, residuals, the numba/numpy lifting twins and flat-array storage."""

import io
import pathlib

import numpy as np
import pytest

from engine.avatar.binding import sample_uv_binding
from engine.avatar.identity import (BoundIdentity, CanonicalGaussians, GaussianResiduals, Identity,
                                    lift_canonical, model_spec, register_deformation)
from engine.avatar.lift_kernel import available_impls
from engine.errors import GaussianHeadsError
from engine.head_model.model import HeadParams
from tests.engine.synthetic_head import make_synthetic_head, synthetic_forward

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model():
    return make_synthetic_head()


def _identity(model, n=4000, seed=0, sh_degree=1, deformation=None):
    rng = np.random.default_rng(seed)
    b = sample_uv_binding(model, n, seed=seed)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    can = CanonicalGaussians(rng.normal(scale=0.2, size=(n, 3)), rng.normal(-2, 0.3, size=(n, 3)), q,
                             rng.normal(size=n), rng.normal(size=(n, (sh_degree + 1) ** 2, 3)))
    return BoundIdentity(model, b, can, rng.normal(size=model.n_shape), deformation, {"source": "test", "seed": seed})


class ShiftDeformation:
    """A storable test deformation: pushes every Gaussian along its normal by expr[0] * amount."""

    kind = "test_shift"

    def __init__(self, amount):
        self.amount = np.asarray(amount, np.float32)

    def residuals(self, params):
        k = float(params.expr[0])
        if k == 0:
            return None
        n = self.amount.shape[0]
        d = np.zeros((n, 3), np.float32)
        d[:, 2] = k * self.amount
        return GaussianResiduals(d_offsets=d, d_quats=np.zeros((n, 4), np.float32))

    def to_arrays(self):
        return {"amount": self.amount}


register_deformation("test_shift", lambda arrays, model: ShiftDeformation(arrays["amount"]))


def test_bound_identity_is_an_identity(model):
    ident = _identity(model)
    assert isinstance(ident, Identity)
    p = ident.neutral_params()
    assert np.array_equal(p.shape, ident.shape) and not p.expr.any() and not p.jaw.any()


def test_pose_vertices_shapes_and_finite(model):
    ident = _identity(model, n=3000, sh_degree=2)
    p = ident.neutral_params()
    p.jaw[0] = 0.2
    p.expr[0] = 0.7
    g = ident.pose_vertices(synthetic_forward(model, p).vertices, p)
    assert len(g) == 3000 and g.sh.shape == (3000, 9, 3) and g.means.dtype == np.float32
    g.validate_finite()
    np.testing.assert_allclose(np.linalg.norm(g.quats, axis=1), 1.0, atol=1e-5)
    with pytest.raises(GaussianHeadsError, match="vertices"):
        ident.pose_vertices(np.zeros((5, 3)))


@pytest.mark.skipif("numba" not in available_impls(), reason="numba is not installed")
def test_numba_and_numpy_lifting_agree(model):
    ident = _identity(model, n=5000)
    p = ident.neutral_params()
    p.jaw[:] = [0.3, 0.05, -0.02]
    p.global_rot[:] = [0.1, 0.7, 0.0]
    v = synthetic_forward(model, p).vertices
    a = lift_canonical(v, model.faces, ident.binding, ident.canonical, impl="numba")
    b = lift_canonical(v, model.faces, ident.binding, ident.canonical, impl="numpy")
    np.testing.assert_allclose(a.means, b.means, atol=1e-6)
    np.testing.assert_allclose(a.log_scales, b.log_scales, atol=1e-5)
    np.testing.assert_allclose(a.quats, b.quats, atol=1e-6)


def test_residuals_are_applied(model):
    n = 3000
    amount = np.full(n, 0.5, np.float32)
    ident = _identity(model, n=n, deformation=ShiftDeformation(amount))
    p = ident.neutral_params()
    base = ident.pose_vertices(model.v_template)            # no params: no residuals
    p.expr[0] = 1.0
    shifted = ident.pose_vertices(model.v_template, p)
    from engine.avatar.binding import lift

    _, rot, scale = lift(model.v_template, model.faces, ident.binding)
    np.testing.assert_allclose(shifted.means - base.means, rot[:, :, 2] * (0.5 * scale)[:, None], atol=1e-6)
    np.testing.assert_allclose(shifted.quats, base.quats, atol=1e-6)


def test_residual_quaternions_are_renormalised():
    can = CanonicalGaussians(np.zeros((2, 3)), np.zeros((2, 3)), [[1, 0, 0, 0], [1, 0, 0, 0]], np.zeros(2),
                             np.zeros((2, 1, 3)))
    out = GaussianResiduals(d_quats=np.array([[0, 1, 0, 0], [-1, 0, 0, 0]], np.float32)).applied_to(can)
    np.testing.assert_allclose(out.quats[0], [2 ** -0.5, 2 ** -0.5, 0, 0], atol=1e-6)
    np.testing.assert_allclose(out.quats[1], [1, 0, 0, 0])  # degenerate sum falls back to identity
    with pytest.raises(GaussianHeadsError):
        GaussianResiduals(d_offsets=np.zeros((3, 3))).applied_to(can)


def test_to_arrays_from_arrays_round_trip(model, tmp_path):
    ident = _identity(model, n=2500, deformation=ShiftDeformation(np.linspace(0, 1, 2500)))
    arrays = ident.to_arrays()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
    # through an .npz without pickles
    np.savez(tmp_path / "id.npz", **arrays)
    with np.load(tmp_path / "id.npz", allow_pickle=False) as data:
        loaded = {k: data[k] for k in data.files}
    back = BoundIdentity.from_arrays(loaded, model=model)
    for name in ("face_idx", "bary", "uv"):
        assert np.array_equal(getattr(back.binding, name), getattr(ident.binding, name))
    for name in ("offsets", "log_scales", "quats", "opacity_logits", "sh"):
        assert np.array_equal(getattr(back.canonical, name), getattr(ident.canonical, name))
    assert np.array_equal(back.shape, ident.shape)
    assert back.meta == ident.meta and back.meta["model"] == "synthetic"
    assert model_spec(make_synthetic_head()) == "synthetic"
    assert isinstance(back.deformation, ShiftDeformation)
    p = ident.neutral_params()
    p.expr[0] = 0.5
    a = ident.pose_vertices(model.v_template, p)
    b = back.pose_vertices(model.v_template, p)
    assert np.array_equal(a.means, b.means)


def test_from_arrays_rejects_other_topology_and_junk(model):
    arrays = _identity(model).to_arrays()
    other = make_synthetic_head(n_lat=20, n_lon=40)
    with pytest.raises(GaussianHeadsError, match="different head model"):
        BoundIdentity.from_arrays(arrays, model=other)
    broken = dict(arrays)
    del broken["canonical.quats"]
    with pytest.raises(GaussianHeadsError, match="canonical.quats"):
        BoundIdentity.from_arrays(broken, model=model)
    broken = dict(arrays, meta=np.array(["{not json"]))
    with pytest.raises(GaussianHeadsError, match="JSON"):
        BoundIdentity.from_arrays(broken, model=model)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # sanity: storable
    assert buf.tell() > 0


def test_pose_through_lbs_on_open_model():
    """Full path with the real head model and LBS, once they exist."""
    pytest.importorskip("engine.head_model.lbs")
    if not (REPO / "data" / "open_head.npz").exists():
        pytest.skip("data/open_head.npz is not built yet")
    from engine.head_model import load_head_model

    open_model = load_head_model("open")
    ident = _identity(open_model, n=20_000)
    p = ident.neutral_params()
    if "jawOpen" in open_model.expr_names:
        p.expr[open_model.expr_names.index("jawOpen")] = 0.8
    p.jaw[0] = 0.2
    g = ident.pose(p)
    assert len(g) == 20_000
    g.validate_finite()
    assert ident.meta["model"] == "open"
    back = BoundIdentity.from_arrays(ident.to_arrays())          # reloads the open model by its spec
    assert back.model is open_model and np.array_equal(back.pose(p).means, g.means)
    with pytest.raises(GaussianHeadsError):
        ident.pose(HeadParams.neutral_for(open_model, batch=2))
