"""UV sampling, triangle frames and lifting (engine.avatar.binding), on the synthetic head."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from engine.avatar.binding import Binding, face_frames, lift, sample_uv_binding, uv_face_areas
from engine.avatar.identity import BoundIdentity, CanonicalGaussians
from engine.avatar.transforms import quat_to_matrix
from engine.errors import GaussianHeadsError
from engine.head_model.model import HeadParams
from tests.engine.synthetic_head import _rodrigues, make_synthetic_head, synthetic_forward


@pytest.fixture(scope="module")
def model():
    return make_synthetic_head()


def _rot(axis, angle):
    return _rodrigues(np.asarray(axis, float) / np.linalg.norm(axis) * angle)


def test_sample_counts_and_barycentrics(model):
    b = sample_uv_binding(model, 10_000, seed=3)
    assert len(b) == 10_000
    assert b.face_idx.dtype == np.int32 and b.bary.dtype == np.float32 and b.uv.dtype == np.float32
    assert b.face_idx.min() >= 0 and b.face_idx.max() < len(model.faces)
    assert (b.bary >= -1e-6).all()
    np.testing.assert_allclose(b.bary.sum(1), 1.0, atol=1e-6)
    uv = np.einsum("nk,nkc->nc", b.bary, model.vt[model.ft[b.face_idx]])
    np.testing.assert_allclose(b.uv, uv, atol=1e-6)


def test_sampling_is_deterministic_per_seed(model):
    a = sample_uv_binding(model, 5000, seed=7)
    b = sample_uv_binding(model, 5000, seed=7)
    c = sample_uv_binding(model, 5000, seed=8)
    assert np.array_equal(a.face_idx, b.face_idx) and np.array_equal(a.bary, b.bary)
    assert not np.array_equal(a.uv, c.uv)


def test_face_counts_follow_uv_area(model):
    n = 65_536
    b = sample_uv_binding(model, n, seed=0)
    area = uv_face_areas(model)
    expected = area / area.sum() * n
    counts = np.bincount(b.face_idx, minlength=len(area))
    assert np.abs(counts - expected).max() < 1.0 + 1e-9  # systematic sampling: floor or ceil


def test_uv_coverage_is_even(model):
    """Coverage over a 16x16 UV grid matches the layout's area, and points are spread (no clumps)."""
    n = 40_000
    b = sample_uv_binding(model, n, seed=1)
    # Reference: the UV area in each cell, estimated with many i.i.d. area-weighted samples.
    ref = sample_uv_binding(model, 400_000, seed=99)
    grid = 16
    hist = np.histogram2d(b.uv[:, 0], b.uv[:, 1], bins=grid, range=[[0, 1], [0, 1]])[0] / n
    hist_ref = np.histogram2d(ref.uv[:, 0], ref.uv[:, 1], bins=grid, range=[[0, 1], [0, 1]])[0] / len(ref)
    big = hist_ref > 1.0 / grid ** 2 / 2
    assert np.abs(hist[big] / hist_ref[big] - 1).max() < 0.08
    # Even spreading: nearest-neighbour distances vary less than for i.i.d. uniform points.
    d_strat = cKDTree(b.uv).query(b.uv, k=2)[0][:, 1]
    rng = np.random.default_rng(0)
    area = uv_face_areas(model)
    faces = rng.choice(len(area), size=n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], 1)
    uv_iid = np.einsum("nk,nkc->nc", bary, model.vt[model.ft[faces]])
    d_iid = cKDTree(uv_iid).query(uv_iid, k=2)[0][:, 1]
    assert d_strat.std() / d_strat.mean() < 0.8 * d_iid.std() / d_iid.mean()
    assert np.quantile(d_strat, 0.05) > 1.5 * np.quantile(d_iid, 0.05)


def test_region_weights_raise_density(model):
    base = sample_uv_binding(model, 20_000, seed=0)
    dense = sample_uv_binding(model, 20_000, seed=0, region_weights={"scalp": 3.0})
    scalp_faces = model.masks["scalp"][model.faces].all(1)
    frac_base = scalp_faces[base.face_idx].mean()
    frac_dense = scalp_faces[dense.face_idx].mean()
    assert frac_dense > 1.5 * frac_base
    with pytest.raises(GaussianHeadsError, match="no region"):
        sample_uv_binding(model, 100, region_weights={"antlers": 2.0})
    with pytest.raises(GaussianHeadsError):
        sample_uv_binding(model, 0)


def test_face_frames_are_rotations_with_normal_z(model):
    rot, scale = face_frames(model.v_template, model.faces)
    assert rot.shape == (len(model.faces), 3, 3) and scale.shape == (len(model.faces),)
    eye = np.einsum("fji,fjk->fik", rot, rot)
    np.testing.assert_allclose(eye, np.broadcast_to(np.eye(3), eye.shape), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-5)
    tri = model.v_template[model.faces].astype(np.float64)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    np.testing.assert_allclose(rot[:, :, 2], normal, atol=1e-5)
    edges = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).mean(1)
    np.testing.assert_allclose(scale, edges, rtol=1e-5)
    # outward normals on the closed ellipsoid
    assert ((rot[:, :, 2] * tri.mean(1)).sum(1) > 0).all()


def test_frames_follow_similarity_transforms(model):
    v = model.v_template.astype(np.float64)
    q = _rot([0.3, 1.0, -0.2], 0.8)
    rot0, s0 = face_frames(v, model.faces)
    rot1, s1 = face_frames(1.5 * v @ q.T + [0.1, -0.2, 0.3], model.faces)
    np.testing.assert_allclose(rot1, np.einsum("ij,fjk->fik", q, rot0), atol=1e-9)
    np.testing.assert_allclose(s1, 1.5 * s0, rtol=1e-9)


def test_lift_matches_barycentric_points_and_batches(model):
    b = sample_uv_binding(model, 3000, seed=2)
    v = np.stack([model.v_template, model.v_template * 1.1])
    points, rot, scale = lift(v, model.faces, b)
    assert points.shape == (2, 3000, 3) and rot.shape == (2, 3000, 3, 3) and scale.shape == (2, 3000)
    expect = np.einsum("nk,nkc->nc", b.bary, model.v_template[model.faces[b.face_idx]])
    np.testing.assert_allclose(points[0], expect, atol=1e-7)
    np.testing.assert_allclose(points[1], 1.1 * expect, atol=1e-7)
    rf, sf = face_frames(model.v_template, model.faces)
    np.testing.assert_allclose(rot[0], rf[b.face_idx], atol=1e-7)
    np.testing.assert_allclose(scale[0], sf[b.face_idx], rtol=1e-6)
    with pytest.raises(GaussianHeadsError):
        lift(v, model.faces, Binding(np.array([len(model.faces)]), np.ones((1, 3)) / 3, np.zeros((1, 2))))


def _params(model, jaw=0.0, expr=None):
    p = HeadParams.neutral_for(model)
    p.jaw = np.array([jaw, 0.0, 0.0], np.float32)
    if expr:
        for name, value in expr.items():
            p.expr[model.expr_names.index(name)] = value
    return p


def _identity(model, n=20_000, offsets=None, seed=0):
    b = sample_uv_binding(model, n, seed=seed)
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    offsets = np.zeros((n, 3)) if offsets is None else offsets
    can = CanonicalGaussians(offsets, np.full((n, 3), -2.0), q, np.zeros(n), np.zeros((n, 1, 3)))
    return BoundIdentity(model, b, can, np.zeros(model.n_shape))


def test_lower_lip_gaussians_follow_jaw_open(model):
    ident = _identity(model)
    params = _params(model, jaw=0.25, expr={"jawOpen": 1.0})
    v = synthetic_forward(model, params).vertices
    g = ident.pose_vertices(v, params)
    jaw_w = model.weights[:, 2][model.faces[ident.binding.face_idx]].min(1)
    lips = model.masks["lips"][model.faces[ident.binding.face_idx]].any(1) & (jaw_w > 0.5)
    assert lips.sum() > 20
    surface = np.einsum("nk,nkc->nc", ident.binding.bary, v[model.faces[ident.binding.face_idx]])
    assert np.abs(g.means[lips] - surface[lips]).max() < 1e-5
    rest = ident.pose_vertices(model.v_template)
    moved = np.linalg.norm(g.means[lips] - rest.means[lips], axis=1)
    assert moved.min() > 5e-3  # they really moved with the jaw (metres)


def test_gaussians_rotate_with_the_jaw(model):
    rng = np.random.default_rng(4)
    n = 20_000
    ident = _identity(model, n, offsets=rng.normal(scale=0.3, size=(n, 3)))
    jaw = 0.3
    params = _params(model, jaw=jaw)
    v = synthetic_forward(model, params).vertices
    posed = ident.pose_vertices(v, params)
    rest = ident.pose_vertices(model.v_template)
    rigid = (model.weights[:, 2][model.faces[ident.binding.face_idx]] > 0.999).all(1)
    assert rigid.sum() > 50
    r_jaw = _rot([1, 0, 0], jaw)
    m_posed = quat_to_matrix(posed.quats[rigid])
    m_rest = quat_to_matrix(rest.quats[rigid])
    np.testing.assert_allclose(m_posed, np.einsum("ij,njk->nik", r_jaw, m_rest), atol=2e-5)
    # offsets rotate too: the Gaussian-to-Gaussian vectors turn with the jaw
    d_posed = posed.means[rigid] - posed.means[rigid][0]
    d_rest = rest.means[rigid] - rest.means[rigid][0]
    np.testing.assert_allclose(d_posed, d_rest @ r_jaw.T, atol=2e-6)
    np.testing.assert_allclose(posed.log_scales[rigid], rest.log_scales[rigid], atol=1e-5)


def test_gaussians_stretch_with_the_mesh(model):
    ident = _identity(model, 2000, offsets=np.tile([0.0, 0.0, 0.5], (2000, 1)))
    a = ident.pose_vertices(model.v_template)
    b = ident.pose_vertices(model.v_template * 2.0)
    np.testing.assert_allclose(b.means, 2.0 * a.means, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(b.log_scales, a.log_scales + np.log(2.0), atol=1e-5)
