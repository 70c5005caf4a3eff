"""The built-in identity source (engine.avatar.builtin) and the sample / render verbs."""

import importlib.util
import pathlib

import numpy as np
import pytest
from scipy.spatial import cKDTree

from engine.avatar.builtin import BuiltinSamplerConfig, BuiltinSource
from engine.avatar.gaussian_set import sh_dc_to_rgb
from engine.avatar.identity import BoundIdentity
from engine.errors import GaussianHeadsError
from engine.io.ply import ply_bytes
from tests.engine.synthetic_head import make_synthetic_head, synthetic_forward

REPO = pathlib.Path(__file__).resolve().parents[2]
HAVE_OPEN = (REPO / "data" / "open_head.npz").exists()
HAVE_LBS = importlib.util.find_spec("engine.head_model.lbs") is not None


def _open_model():
    if not HAVE_OPEN:
        pytest.skip("data/open_head.npz is not built yet")
    from engine.head_model import load_head_model

    return load_head_model("open")


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic_head()


@pytest.fixture(scope="module", params=["synthetic", "open"])
def source(request, synthetic):
    model = synthetic if request.param == "synthetic" else _open_model()
    return BuiltinSource(model, BuiltinSamplerConfig(n_gaussians=30_000))


def _neutral(identity):
    p = identity.neutral_params()
    return identity.pose_vertices(synthetic_forward(identity.model, p).vertices, p)


def test_sample_is_a_plausible_identity(source):
    ident = source.sample(3)
    assert isinstance(ident, BoundIdentity) and ident.deformation is None
    assert len(ident) == 30_000 and ident.meta["source"] == "builtin" and ident.meta["seed"] == 3
    g = _neutral(ident)
    g.validate_finite()
    rgb = sh_dc_to_rgb(g.sh[:, 0])
    assert rgb.min() >= -1e-6 and rgb.max() <= 1 + 1e-6
    assert np.median(g.opacities) > 0.9
    scales = np.sort(g.scales, axis=1)
    assert np.median(scales[:, 0] / scales[:, 2]) < 0.4         # flat on the surface
    # sized to cover: the tangential size is comparable to the spacing between neighbours
    spacing = cKDTree(g.means).query(g.means, k=2)[0][:, 1]
    assert np.median(scales[:, 2]) > 0.9 * np.median(spacing)
    np.testing.assert_allclose(np.linalg.norm(g.quats, axis=1), 1.0, atol=1e-5)


def test_same_seed_same_identity_and_bytes(source):
    a, b = source.sample(11), source.sample(11)
    for key, value in a.to_arrays().items():
        assert np.array_equal(value, b.to_arrays()[key]), key
    assert ply_bytes(_neutral(a)) == ply_bytes(_neutral(b))
    # a fresh source gives the same identity (nothing depends on call order)
    c = BuiltinSource(source.model, source.config).sample(11)
    assert np.array_equal(c.canonical.sh, a.canonical.sh) and np.array_equal(c.shape, a.shape)


def test_sixteen_seeds_are_different_people(source):
    idents = [source.sample(seed) for seed in range(16)]
    means = np.array([sh_dc_to_rgb(i.canonical.sh[:, 0]).mean(0) for i in idents])
    shapes = np.array([i.shape for i in idents])
    d_col = np.linalg.norm(means[:, None] - means[None], axis=2)[np.triu_indices(16, 1)]
    assert d_col.min() > 1e-3 and np.median(d_col) > 0.05
    lum = means.mean(1)
    assert lum.max() - lum.min() > 0.25                           # light to dark skin
    d_shape = np.linalg.norm(shapes[:, None] - shapes[None], axis=2)[np.triu_indices(16, 1)]
    assert d_shape.min() > 0.1
    model = source.model
    verts = [model.v_template + np.tensordot(model.shapedirs, s, axes=([2], [0])) for s in shapes[:4]]
    assert min(np.abs(verts[i] - verts[j]).max() for i in range(4) for j in range(i + 1, 4)) > 1e-3


def test_given_shape_and_truncation(source):
    beta = np.linspace(-1, 1, source.model.n_shape).astype(np.float32)
    assert np.array_equal(source.sample(1, shape=beta).shape, beta)
    assert not source.sample(1, truncation=0.0).shape.any()
    with pytest.raises(GaussianHeadsError):
        source.sample(1, shape=np.zeros(source.model.n_shape + 1))
    with pytest.raises(GaussianHeadsError):
        source.sample(-1)
    with pytest.raises(GaussianHeadsError):
        BuiltinSamplerConfig(n_gaussians=0)


def test_regions_have_their_colours():
    model = _open_model()
    src = BuiltinSource(model, BuiltinSamplerConfig(n_gaussians=65_536))
    ident = src.sample(5)
    rgb = sh_dc_to_rgb(ident.canonical.sh[:, 0])
    corners = model.faces[ident.binding.face_idx]

    def region(name):
        return np.asarray(model.masks[name])[corners].all(1)

    teeth, lips, face = region("teeth"), region("lips"), region("face") & ~region("lips")
    assert rgb[teeth].mean() > 0.6                                       # white teeth
    assert (rgb[lips, 0] - rgb[lips, 2]).mean() > (rgb[face, 0] - rgb[face, 2]).mean()   # redder lips
    inner = region("mouth_interior") & ~teeth & ~region("lips")
    assert rgb[inner].mean() < 0.25 and (rgb[inner, 0] > rgb[inner, 1]).mean() > 0.9  # dark red
    eyes = region("eyes")
    assert rgb[eyes].max() > 0.7 and rgb[eyes].min() < 0.1                # white sclera, dark pupil
    assert ident.to_arrays()["canonical.sh"].shape == (65_536, 1, 3)


def test_open_model_lower_lip_follows_jaw():
    """On the real open model with its LBS: lip Gaussians stay on the lifted surface."""
    if not HAVE_LBS:
        pytest.skip("engine.head_model.lbs is not available yet")
    model = _open_model()
    from engine.head_model import lbs

    ident = BuiltinSource(model, BuiltinSamplerConfig(n_gaussians=30_000)).sample(2)
    p = ident.neutral_params()
    p.expr[model.expr_names.index("jawOpen")] = 0.7
    p.jaw[0] = 0.2
    v = lbs.forward(model, p).vertices
    corners = model.faces[ident.binding.face_idx]
    lower = np.asarray(model.masks["lips"])[corners].all(1) & (model.weights[corners, 2].min(1) > 0.5)
    assert lower.sum() > 50
    g = ident.pose(p)
    surface = np.einsum("nk,nkc->nc", ident.binding.bary, v[corners])
    assert np.abs(g.means[lower] - surface[lower]).max() < 1e-5
    rest = ident.pose(ident.neutral_params())
    assert np.linalg.norm(g.means[lower] - rest.means[lower], axis=1).mean() > 2e-3


def test_cli_sample_is_byte_identical(tmp_path):
    if not (HAVE_LBS and HAVE_OPEN):
        pytest.skip("needs the open head model and its LBS")
    from engine.__main__ import main

    for name in ("a.ply", "b.ply"):
        assert main(["sample", "--seed", "4", "--gaussians", "20000", "--out", str(tmp_path / name)]) == 0
    assert (tmp_path / "a.ply").read_bytes() == (tmp_path / "b.ply").read_bytes()
    assert main(["sample", "--seed", "4", "--source", str(tmp_path / "missing"), "--out",
                 str(tmp_path / "c.ply")]) == 1


def test_cli_render_writes_a_picture(tmp_path):
    if not (HAVE_LBS and HAVE_OPEN):
        pytest.skip("needs the open head model and its LBS")
    from PIL import Image

    from engine.__main__ import main

    out = tmp_path / "head.png"
    assert main(["render", "--seed", "2", "--gaussians", "20000", "--expr", "jawOpen=0.4", "--jaw", "0.1",
                 "--yaw", "30", "--width", "96", "--height", "112", "--background", "0.2,0.3,0.4",
                 "--out", str(out)]) == 0
    img = np.asarray(Image.open(out))
    assert img.shape == (112, 96, 3)
    assert np.abs(img[0, 0].astype(int) - [51, 76, 102]).max() <= 1       # the background corner
    centre = img[40:70, 35:60].reshape(-1, 3)
    assert (np.abs(centre.astype(int) - [51, 77, 102]).sum(1) > 30).mean() > 0.9   # the head is there
    assert main(["render", "--seed", "2", "--expr", "notAChannel=1", "--width", "64", "--height", "64",
                 "--out", str(out)]) == 1
