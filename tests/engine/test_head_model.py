"""The open head model (data/open_head.npz) and the numpy/torch LBS."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from engine.errors import GaussianHeadsError
from engine.head_model import OPEN_MODEL_PATH, load_head_model
from engine.head_model.arkit import ARKIT_NAMES
from engine.head_model.lbs import forward, rodrigues, shape_vertices
from engine.head_model.model import JOINT_NAMES, REGIONS, HeadParams

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model():
    return load_head_model("open")


def params(model, batch=None, **kw):
    p = HeadParams.neutral_for(model, batch)
    names = list(model.expr_names)
    for k, v in kw.items():
        if k in names:
            p.expr[..., names.index(k)] = v
        else:
            setattr(p, k, np.asarray(v, np.float32))
    return p


def random_params(model, batch, seed=0):
    rng = np.random.default_rng(seed)
    f = lambda *s, sd=0.3: (rng.standard_normal((batch,) + s) * sd).astype(np.float32)  # noqa: E731
    return HeadParams(f(model.n_shape, sd=1.0), np.abs(f(model.n_expr)), f(3), f(3), f(3), f(2, 3), f(3, sd=0.02))


# ------------------------------------------------------------------------------------------------
# the artefact

def test_npz_is_plain_float32_and_small():
    assert OPEN_MODEL_PATH.stat().st_size < 15 * 2**20
    with np.load(OPEN_MODEL_PATH, allow_pickle=False) as z:
        for key in ("v_template", "shapedirs", "exprdirs", "j_regressor", "weights"):
            assert z[key].dtype == np.float32, key
        assert z["expr_names"].dtype.kind == "U"
        assert all(z[k].dtype != object for k in z.files)


def test_layout(model):
    v = model.n_vertices
    assert model.v_template.shape == (v, 3)
    assert 30 <= model.n_shape <= 50
    assert model.expr_names == ARKIT_NAMES and model.n_expr == 52
    assert model.expr_space == "arkit"
    np.testing.assert_array_equal(model.expr_range, np.tile([[0.0, 1.0]], (52, 1)))
    assert model.j_regressor.shape == (5, v) and model.weights.shape == (v, 5)
    assert model.parents.tolist() == [-1, 0, 1, 1, 1]
    np.testing.assert_allclose(model.weights.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(model.j_regressor.sum(1), 1.0, atol=1e-4)
    assert model.has_uv and model.ft.shape == model.faces.shape
    assert model.vt.min() >= 0 and model.vt.max() <= 1
    assert "+Z forward" in model.frame and "+X the subject's left" in model.frame
    assert load_head_model("open") is model        # cached


def test_masks_are_sensible(model):
    for region in REGIONS + ("eyebrows", "nose", "teeth", "iris", "pupil"):
        assert model.masks[region].shape == (model.n_vertices,)
        assert model.masks[region].sum() > 5, region
    m = model.masks
    assert not (m["iris"] & ~m["eyes"]).any() and not (m["pupil"] & ~m["iris"]).any()
    assert not (m["teeth"] & ~m["mouth_interior"]).any()
    assert not (m["scalp"] & m["face"]).any() and not (m["eyes"] & m["face"]).any()
    y = model.v_template[:, 1]
    z = model.v_template[:, 2]
    assert y[m["scalp"]].mean() > y[m["face"]].mean() > y[m["neck"]].mean()
    assert y[m["eyebrows"]].mean() > y[m["eyes"]].mean() > y[m["lips"]].mean()
    assert z[m["nose"]].max() == pytest.approx(z[m["face"]].max(), abs=0.005)   # nose tip is the front-most
    # ears on both sides, eyes on both sides
    x = model.v_template[:, 0]
    assert (x[m["ears"]] > 0.05).any() and (x[m["ears"]] < -0.05).any()


def test_frame_and_proportions(model):
    v = model.v_template
    size = np.ptp(v, axis=0)
    assert 0.14 < size[0] < 0.22 and 0.2 < size[1] < 0.32 and 0.18 < size[2] < 0.28   # metres
    assert np.abs(v.mean(0)).max() < 0.06                   # origin near the head centre
    joints = model.j_regressor @ v
    eye_l, eye_r = joints[3], joints[4]
    assert eye_l[0] > 0.02 and eye_r[0] < -0.02             # +X is the subject's left
    assert eye_l[2] > 0.04                                  # face looks down +Z
    assert joints[2, 1] < eye_l[1] and joints[1, 1] < joints[2, 1] and joints[0, 1] < joints[1, 1]


def test_joint_regressor_reproduces_eyeball_centres(model):
    joints = model.j_regressor @ model.v_template
    for j, side in ((3, 1), (4, -1)):
        ball = model.masks["eyes"] & (np.sign(model.v_template[:, 0]) == side)
        r = np.linalg.norm(model.v_template[ball] - joints[j], axis=1)
        assert r.std() < 0.05 * r.mean() and 0.009 < r.mean() < 0.018   # MakeHuman helper eyeballs: ~15.7 mm


# ------------------------------------------------------------------------------------------------
# LBS

def test_zero_params_give_template(model):
    pose = forward(model, params(model))
    np.testing.assert_allclose(pose.vertices, model.v_template, atol=1e-6)
    np.testing.assert_allclose(pose.joints, model.j_regressor @ model.v_template, atol=1e-6)
    np.testing.assert_allclose(pose.transforms[:, :3, :3], np.tile(np.eye(3), (5, 1, 1)), atol=1e-6)
    batched = forward(model, params(model, batch=3))
    assert batched.vertices.shape == (3, model.n_vertices, 3)
    assert batched.transforms.shape == (3, 5, 4, 4)


def test_shape_vertices_matches_forward(model):
    beta = np.random.default_rng(1).standard_normal(model.n_shape).astype(np.float32)
    np.testing.assert_allclose(shape_vertices(model, beta), forward(model, params(model, shape=beta)).vertices,
                               atol=1e-6)
    with pytest.raises(GaussianHeadsError):
        shape_vertices(model, beta[:3])


def test_bad_params_shape_is_refused(model):
    p = params(model)
    p.expr = np.zeros(7, np.float32)
    with pytest.raises(GaussianHeadsError, match="expr"):
        forward(model, p)


def test_rodrigues_is_a_rotation():
    r = rodrigues(np.array([[0.3, -0.2, 0.5], [0.0, 0.0, 0.0], [1e-5, 0, 0]], np.float32))
    np.testing.assert_allclose(r @ np.swapaxes(r, -1, -2), np.tile(np.eye(3), (3, 1, 1)), atol=1e-6)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-6)
    rx = rodrigues(np.array([np.pi / 2, 0, 0]))
    np.testing.assert_allclose(rx @ [0, 1, 0], [0, 0, 1], atol=1e-6)   # +X rotation turns +Y to +Z


def test_jaw_rotation_moves_chin_about_the_jaw_joint(model):
    rest = forward(model, params(model))
    posed = forward(model, params(model, jaw=[0.3, 0.0, 0.0]))
    jaw_joint = rest.joints[2]
    chin = model.weights[:, 2] > 0.999
    assert chin.sum() > 50
    d_rest = np.linalg.norm(rest.vertices[chin] - jaw_joint, axis=1)
    d_posed = np.linalg.norm(posed.vertices[chin] - posed.joints[2], axis=1)
    np.testing.assert_allclose(d_posed, d_rest, atol=1e-6)
    np.testing.assert_allclose(posed.joints[2], jaw_joint, atol=1e-7)
    moved = posed.vertices[chin] - rest.vertices[chin]
    assert np.linalg.norm(moved, axis=1).max() > 0.02
    assert moved[:, 1].mean() < -0.005                      # positive X rotation opens the jaw (down)
    skull = model.weights[:, 1] > 0.999
    np.testing.assert_allclose(posed.vertices[skull], rest.vertices[skull], atol=1e-7)


def _lower_lip(model):
    lips = model.masks["lips"]
    y = model.v_template[:, 1]
    mid = np.median(y[lips])
    return lips & (y < mid)


def test_jaw_open_blendshape_lowers_lip_and_keeps_skull(model):
    rest = model.v_template
    posed = forward(model, params(model, jawOpen=1.0)).vertices
    lower = _lower_lip(model)
    assert (posed[lower, 1] - rest[lower, 1]).mean() < -0.005
    scalp = model.masks["scalp"]
    assert np.abs(posed[scalp] - rest[scalp]).max() < 1e-4


def test_eye_blink_left_closes_left_lid_only(model):
    rest = model.v_template
    posed = forward(model, params(model, eyeBlinkLeft=1.0)).vertices
    lids = model.masks["eyelids"]
    left = lids & (rest[:, 0] > 0)
    right = lids & (rest[:, 0] < 0)
    moved = np.linalg.norm(posed - rest, axis=1)
    assert moved[left].max() > 0.004
    assert moved[right].max() < 1e-6
    upper_left = left & (rest[:, 1] > (model.j_regressor @ rest)[3, 1])
    assert (posed[upper_left, 1] - rest[upper_left, 1]).min() < -0.003      # the upper lid comes down


def test_arkit_left_is_the_subjects_left(model):
    x = model.v_template[:, 0]
    names = list(model.expr_names)

    def d(name):
        return model.exprdirs[:, :, names.index(name)]

    for left in [n for n in names if n.endswith("Left") and not n.startswith(("jaw", "mouthLeft"))]:
        mag = np.linalg.norm(d(left), axis=1)
        assert mag[x > 0.003].sum() > 2 * mag[x < -0.003].sum(), left
        right = left[:-4] + "Right"
        mag_r = np.linalg.norm(d(right), axis=1)
        assert mag_r[x < -0.003].sum() > 2 * mag_r[x > 0.003].sum(), right
    pupil_l = model.masks["pupil"] & (x > 0)
    assert d("eyeLookInLeft")[pupil_l, 0].mean() < -0.002      # towards the nose
    assert d("eyeLookOutLeft")[pupil_l, 0].mean() > 0.002
    assert d("eyeLookUpLeft")[pupil_l, 1].mean() > 0.001
    assert d("eyeLookDownLeft")[pupil_l, 1].mean() < -0.001
    moved = np.linalg.norm(d("jawLeft"), axis=1) > 1e-4
    assert d("jawLeft")[moved, 0].mean() > 0.001 and d("mouthLeft")[moved, 0].mean() > 0.0


def test_eye_pose_turns_only_the_eyeball(model):
    rest = forward(model, params(model))
    posed = forward(model, params(model, eyes=[[0.0, 0.4, 0.0], [0.0, 0.0, 0.0]]))
    moved = np.linalg.norm(posed.vertices - rest.vertices, axis=1) > 1e-6
    left_ball = model.masks["eyes"] & (model.v_template[:, 0] > 0)
    assert moved[left_ball].all() and not moved[~left_ball].any()
    pupil = model.masks["pupil"] & left_ball
    assert (posed.vertices[pupil, 0] - rest.vertices[pupil, 0]).mean() > 0.002   # looks to the subject's left


def test_identity_changes_proportions_not_topology(model):
    rest = model.v_template
    sizes = []
    for k in range(5):
        beta = np.zeros(model.n_shape, np.float32)
        beta[k] = 2.0
        v = forward(model, params(model, shape=beta)).vertices
        assert v.shape == rest.shape and np.isfinite(v).all()
        sizes.append(np.ptp(v, axis=0) - np.ptp(rest, axis=0))
        assert np.abs(v - rest).max() > 0.003
    assert np.abs(np.array(sizes)).max() > 0.003
    # random people stay plausible heads
    rng = np.random.default_rng(7)
    for _ in range(5):
        v = shape_vertices(model, rng.standard_normal(model.n_shape).astype(np.float32))
        ratio = np.ptp(v, axis=0) / np.ptp(rest, axis=0)
        assert (ratio > 0.8).all() and (ratio < 1.25).all()


def test_expressions_do_not_move_the_neck_and_jaw_joints(model):
    moved = np.einsum("jv,vce->jce", model.j_regressor, model.exprdirs)        # [J, 3, E]
    assert np.abs(moved[:3]).max() < 1e-6
    assert np.abs(moved[3:]).max() < 0.003                                    # eyeball centroids: ~2 mm at most


def test_identity_moves_the_joints(model):
    beta = np.zeros(model.n_shape, np.float32)
    beta[0] = 2.0
    j0 = forward(model, params(model)).joints
    j1 = forward(model, params(model, shape=beta)).joints
    assert np.abs(j1 - j0).max() > 1e-4


def test_batched_equals_single(model):
    p = random_params(model, 4, seed=3)
    batch = forward(model, p)
    for b in range(4):
        single = HeadParams(*(getattr(p, n)[b] for n in ("shape", "expr", "global_rot", "neck", "jaw", "eyes",
                                                         "translation")))
        np.testing.assert_allclose(forward(model, single).vertices, batch.vertices[b], atol=1e-6)


def test_translation_and_global_rotation(model):
    p = params(model, translation=[0.1, -0.2, 0.3])
    np.testing.assert_allclose(forward(model, p).vertices, model.v_template + [0.1, -0.2, 0.3], atol=1e-6)
    p = params(model, global_rot=[0.0, np.pi, 0.0])
    v = forward(model, p).vertices
    root = (model.j_regressor @ model.v_template)[0]
    expect = (model.v_template - root) * [-1, 1, -1] + root
    np.testing.assert_allclose(v, expect, atol=1e-5)


def test_skinning_transforms_map_rest_joints(model):
    pose = forward(model, random_params(model, 2, seed=5))
    a = pose.skinning_transforms()
    mapped = np.einsum("bjik,bjk->bji", a[..., :3, :3], pose.rest_joints) + a[..., :3, 3]
    np.testing.assert_allclose(mapped, pose.joints, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# torch twin

def test_torch_matches_numpy_forward_and_is_differentiable(model):
    torch = pytest.importorskip("torch")
    from engine.head_model.lbs_torch import TorchHeadModel

    tm = TorchHeadModel(model)
    p = random_params(model, 131, seed=11)          # > lbs.CHUNK: the numpy pass runs in blocks
    ref = forward(model, p)
    verts, transforms = tm.forward_params(p)
    np.testing.assert_allclose(verts.numpy(), ref.vertices, atol=1e-5)
    np.testing.assert_allclose(transforms.numpy(), ref.transforms, atol=1e-5)

    jaw = torch.zeros(1, 3, requires_grad=True)
    shape = torch.zeros(1, model.n_shape, requires_grad=True)
    z = lambda *s: torch.zeros(*s)  # noqa: E731
    v, _ = tm(shape, z(1, model.n_expr), z(1, 3), z(1, 3), jaw, z(1, 2, 3), z(1, 3))
    chin = torch.as_tensor(model.weights[:, 2] > 0.999)
    v[0, chin, 1].sum().backward()
    assert jaw.grad[0, 0] < 0                       # opening the jaw lowers the chin
    assert torch.isfinite(shape.grad).all() and shape.grad.abs().sum() > 0
    with pytest.raises(GaussianHeadsError):
        tm(shape[:, :3], z(1, model.n_expr), z(1, 3), z(1, 3), jaw, z(1, 2, 3), z(1, 3))


# ------------------------------------------------------------------------------------------------
# CLI and rebuild

def test_cli_info_prints_one_json_object(capsys):
    from engine.__main__ import main

    assert main(["head-model", "info"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    info = json.loads(out[0])
    for key in ("name", "vertices", "faces", "n_shape", "n_expr", "expr_names", "joints", "has_uv"):
        assert key in info
    assert info["joints"] == list(JOINT_NAMES) and info["n_expr"] == 52 and info["has_uv"] is True


def test_cli_info_reports_bad_file(tmp_path, capsys):
    from engine.__main__ import main

    bad = tmp_path / "nothing.pkl"
    assert main(["head-model", "info", "--model", str(bad)]) == 1
    assert str(bad) in capsys.readouterr().err


@pytest.mark.slow
def test_rebuild_reproduces_the_committed_model(tmp_path):
    """The committed open model is rebuilt from the CC0 sources: every array has the same shape
    and dtype, integer and text arrays are identical, float arrays agree to a few float32 steps of
    their largest value (float64 BLAS results rounded to float32 may land one step apart on
    another CPU: seen once, 1.2e-7 in one j_regressor entry)."""
    out = tmp_path / "open_head.npz"
    subprocess.run([sys.executable, str(REPO / "tools" / "build_open_head.py"), "--quiet", "--out", str(out)],
                   check=True, cwd=REPO, timeout=600)
    rebuilt, committed = np.load(out), np.load(OPEN_MODEL_PATH)
    assert sorted(rebuilt.files) == sorted(committed.files)
    for key in committed.files:
        a, b = rebuilt[key], committed[key]
        assert (a.shape, a.dtype) == (b.shape, b.dtype), key
        if a.dtype.kind == "f":
            step = np.finfo(b.dtype).eps * max(1.0, float(np.abs(b).max()))
            np.testing.assert_allclose(a, b, rtol=0, atol=4 * step, err_msg=key)
        else:
            np.testing.assert_array_equal(a, b, err_msg=key)
