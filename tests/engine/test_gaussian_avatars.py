"""GaussianAvatars-format avatars: teeth layout, exact face-frame conversion, animation, bad input."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from engine.avatar.gaussian_avatars import load_avatar, read_avatar
from engine.avatar.identity import BoundIdentity
from engine.avatar.lift_kernel import available_impls, lift_gaussians
from engine.avatar.sources import clear_cache, parse_source, sample_identity, source_status
from engine.errors import GaussianHeadsError
from engine.head_model import load_head_model
from engine.head_model.lbs import forward
from engine.head_model.model import HeadParams
from engine.head_model.teeth import (N_TEETH_FACES, N_TEETH_VERTICES, RING, add_teeth, find_lip_rings,
                                     teeth_faces)
from tests.engine.ga_fixtures import (flame_arrays, reference_gaussians, reference_vertices, write_avatar, write_flame_npz)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("ga")
    flame_path = write_flame_npz(root / "flame2023.npz")
    arrays = write_avatar(root / "avatar", flame_arrays())
    return {"root": root, "flame": flame_path, "folder": str(root / "avatar"), "arrays": arrays}


@pytest.fixture(scope="module")
def identity(files):
    return load_avatar(files["folder"], files["flame"])


def _params(model, expr, rotation, neck, jaw, eyes, translation):
    p = HeadParams.neutral_for(model)
    p.expr[:] = expr
    p.global_rot[:], p.neck[:], p.jaw[:] = rotation, neck, jaw
    p.eyes[:] = np.asarray(eyes, np.float32).reshape(2, 3)
    p.translation[:] = translation
    return p


def _check_against_reference(identity, files, expr, rotation, neck, jaw, eyes, translation):
    flame = load_head_model(files["flame"])
    teeth = add_teeth(flame)
    prm = files["arrays"]["params"]
    verts = reference_vertices(teeth, prm["shape"].astype(np.float64), prm["static_offset"][0].astype(np.float64),
                               expr, rotation, neck, jaw, eyes, translation)
    means, log_scales, mats = reference_gaussians(verts, teeth.faces, files["arrays"]["props"],
                                                  files["arrays"]["binding"])
    g = identity.pose(_params(identity.model, expr, rotation, neck, jaw, eyes, translation))
    np.testing.assert_allclose(g.means, means, atol=2e-6)
    np.testing.assert_allclose(g.log_scales, log_scales, atol=2e-5)
    from engine.avatar.transforms import quat_to_matrix

    np.testing.assert_allclose(quat_to_matrix(g.quats), mats, atol=5e-5)  # float32 mesh
    sh = files["arrays"]["props"]
    np.testing.assert_allclose(g.opacity_logits, sh["opacity"], atol=1e-6)
    np.testing.assert_allclose(g.sh[:, 0, 1], sh["f_dc_1"], atol=1e-6)


def test_neutral_pose_equals_the_format_maths(identity, files):
    e = np.zeros(identity.model.n_expr)
    _check_against_reference(identity, files, e, np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(6), np.zeros(3))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_posed_avatar_equals_the_format_maths(identity, files, seed):
    rng = np.random.default_rng(seed)
    _check_against_reference(identity, files, rng.normal(0, 1.5, identity.model.n_expr), rng.normal(0, 0.3, 3),
                             rng.normal(0, 0.3, 3), np.abs(rng.normal(0, 0.3, 3)), rng.normal(0, 0.2, 6),
                             rng.normal(0, 0.05, 3))


def test_flame_param_imports_as_its_animation(identity, files):
    from engine.animation.formats import read_any

    seq = read_any(os.path.join(files["folder"], "flame_param.npz"))
    prm = files["arrays"]["params"]
    assert seq.n_frames == prm["expr"].shape[0]
    np.testing.assert_allclose(seq.translation, prm["translation"])
    np.testing.assert_allclose(seq.global_rot, prm["rotation"])
    k = 4
    _check_against_reference(identity, files, seq.expr[k], seq.global_rot[k], seq.neck[k], seq.jaw[k],
                             seq.eyes[k].reshape(-1), seq.translation[k])


@pytest.mark.skipif("numba" not in available_impls(), reason="numba not installed")
def test_edge_height_rule_numba_equals_numpy_reference(identity):
    v = forward(identity.model, identity.neutral_params()).vertices
    b, c = identity.binding, identity.canonical
    out = [lift_gaussians(v, identity.model.faces, b.face_idx, b.bary, c.offsets, c.log_scales, c.quats, impl=impl,
                          scale_rule="edge_height") for impl in ("numba", "numpy")]
    for fast, slow in zip(*out):
        np.testing.assert_allclose(fast, slow, atol=1e-6)


def test_stored_identity_keeps_the_face_scale_rule(identity):
    again = BoundIdentity.from_arrays(identity.to_arrays(), identity.model)
    params = identity.neutral_params()
    params.jaw[0] = 0.3
    np.testing.assert_array_equal(again.pose(params).means, identity.pose(params).means)


# ------------------------------------------------------------------------------------------------
# Teeth

def test_teeth_layout(files):
    flame = load_head_model(files["flame"])
    teeth = add_teeth(flame)
    n_v, n_f = flame.n_vertices, flame.faces.shape[0]
    assert teeth.n_vertices == n_v + N_TEETH_VERTICES == n_v + 120
    assert teeth.faces.shape == (n_f + N_TEETH_FACES, 3) == (n_f + 168, 3)
    np.testing.assert_array_equal(teeth.faces[:n_f], flame.faces)
    f = teeth_faces(n_v) - n_v
    # the format's numbering: the first upper-front triangle, the middle flip, the last lower one
    assert f[0].tolist() == [0, 31, 30] and f[14].tolist() == [7, 8, 37] and f[167].tolist() == [118, 119, 59]
    assert np.array_equal(np.unique(f), np.arange(120))
    upper = f[:84] // RING
    assert set(np.unique(upper)) == {0, 2, 4, 5} and set(np.unique(f[84:] // RING)) == {1, 3, 6, 7}
    # vertices from the lip rings, as the format describes them
    up, low = find_lip_rings(flame)
    lu, ll = flame.v_template[up].astype(np.float64), flame.v_template[low].astype(np.float64)
    d = np.linalg.norm(lu - ll, axis=1).mean()
    mid = (lu + ll) / 2
    mid[:, 1] = mid[:, 1].mean()
    mid[:, 2] -= 1.5 * d
    tv = teeth.v_template[n_v:].astype(np.float64).reshape(8, RING, 3)
    np.testing.assert_allclose(tv[2], mid + [0, 0.1 * d, 0], atol=1e-6)
    np.testing.assert_allclose(tv[0], mid + [0, 2.1 * d, 0], atol=1e-6)
    np.testing.assert_allclose(tv[3], mid + [0, -0.1 * d, -0.4 * d], atol=1e-6)
    np.testing.assert_allclose(tv[7], tv[3] - [0, 0, d], atol=1e-6)
    np.testing.assert_allclose(teeth.shapedirs[n_v:n_v + RING], (flame.shapedirs[up] + flame.shapedirs[low]) / 2)
    assert not teeth.exprdirs[n_v:].any() and not teeth.posedirs[n_v:].any() and not teeth.j_regressor[:, n_v:].any()
    assert (teeth.weights[n_v:].reshape(8, RING, 5)[[0, 2, 4, 5], :, 1] == 1).all()
    assert (teeth.weights[n_v:].reshape(8, RING, 5)[[1, 3, 6, 7], :, 2] == 1).all()


def test_lower_teeth_follow_the_jaw_upper_teeth_stay(identity):
    n = identity.model.n_vertices - N_TEETH_VERTICES
    neutral = forward(identity.model, identity.neutral_params())
    params = identity.neutral_params()
    params.jaw[0] = 0.4
    opened = forward(identity.model, params)
    rows = lambda v: v[n:].reshape(8, RING, 3)  # noqa: E731
    np.testing.assert_allclose(rows(opened.vertices)[[0, 2, 4, 5]], rows(neutral.vertices)[[0, 2, 4, 5]], atol=1e-7)
    moved = np.linalg.norm(rows(opened.vertices)[[1, 3, 6, 7]] - rows(neutral.vertices)[[1, 3, 6, 7]], axis=-1)
    assert moved.min() > 1e-3
    on_teeth = identity.binding.face_idx >= identity.model.faces.shape[0] - N_TEETH_FACES
    assert on_teeth.sum() >= 50
    g0, g1 = identity.pose(identity.neutral_params()), identity.pose(params)
    lower = on_teeth & (identity.binding.face_idx >= identity.model.faces.shape[0] - N_TEETH_FACES // 2)
    assert np.linalg.norm(g1.means[lower] - g0.means[lower], axis=1).min() > 1e-4


def test_no_mouth_opening_is_a_clear_error():
    from tests.engine.synthetic_head import make_synthetic_head

    with pytest.raises(GaussianHeadsError, match="no mouth opening"):
        add_teeth(make_synthetic_head())


# ------------------------------------------------------------------------------------------------
# Sources, CLI

def test_source_registry_and_cli(files, tmp_path):
    clear_cache()
    spec = parse_source(f"gaussian_avatars:{files['folder']}", model_spec=files["flame"])
    ident = sample_identity(spec, seed=3)
    assert len(ident) == len(files["arrays"]["binding"])
    assert "GaussianAvatars" in source_status(spec).text
    assert source_status(parse_source(f"gaussian_avatars:{files['folder']}")).warning
    ply = os.path.join(files["folder"], "point_cloud.ply")
    assert len(load_avatar(ply, files["flame"])) == len(ident)
    from engine.__main__ import main

    out = tmp_path / "posed.ply"
    assert main(["sample", "--seed", "0", "--source", f"gaussian_avatars:{files['folder']}", "--model", files["flame"],
                 "--out", str(out)]) == 0
    from engine.io.ply import read_ply

    np.testing.assert_allclose(read_ply(out).means, ident.pose(ident.neutral_params()).means, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Missing / mismatched FLAME, bad files

def test_missing_flame_names_the_avatar(files):
    ply = os.path.join(files["folder"], "point_cloud.ply")
    with pytest.raises(GaussianHeadsError, match="FLAME") as info:
        load_avatar(files["folder"], "")
    assert ply in str(info.value)
    missing = os.path.join(str(files["root"]), "nope.pkl")
    with pytest.raises(GaussianHeadsError) as info:
        load_avatar(files["folder"], missing)
    assert ply in str(info.value) and missing in str(info.value)


def test_mismatched_flame_names_both_files(files, tmp_path):
    other = flame_arrays()
    other["f"] = other["f"][:-200]                          # fewer faces: binding out of range
    np.savez(tmp_path / "fewer_faces.npz", **other)
    with pytest.raises(GaussianHeadsError) as info:
        load_avatar(files["folder"], str(tmp_path / "fewer_faces.npz"))
    text = str(info.value)
    assert str(tmp_path / "fewer_faces.npz") in text and "point_cloud.ply" in text and "faces" in text
    other = flame_arrays()
    for key in ("v_template", "shapedirs", "posedirs", "weights"):
        other[key] = other[key][:-1]
    other["J_regressor"] = other["J_regressor"][:, :-1]
    other["f"] = other["f"][(other["f"] < len(other["v_template"])).all(1)]
    np.savez(tmp_path / "fewer_vertices.npz", **other)
    with pytest.raises(GaussianHeadsError) as info:
        load_avatar(files["folder"], str(tmp_path / "fewer_vertices.npz"))
    text = str(info.value)
    assert str(tmp_path / "fewer_vertices.npz") in text and "flame_param.npz" in text and "vertices" in text


def _copy(files, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(files["folder"], folder)
    return folder


def _table(folder):
    raw = (folder / "point_cloud.ply").read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    return raw[:end], bytearray(raw[end:])


@pytest.mark.parametrize("problem, match", [
    ("binding_range", "face"), ("binding_negative", "negative"), ("nan", "NaN"), ("truncated", "truncated"),
    ("no_binding", "binding_0"), ("no_params", "flame_param.npz"), ("bad_shape", "shape"),
    ("nan_offset", "static_offset"), ("not_npz", "npz"),
])
def test_bad_input_is_one_clear_error(files, tmp_path, problem, match):
    folder = _copy(files, tmp_path)
    header, body = _table(folder)
    n = len(files["arrays"]["binding"])
    stride = len(body) // n
    ply = folder / "point_cloud.ply"
    if problem in ("binding_range", "binding_negative"):
        value = 10 ** 6 if problem == "binding_range" else -3
        body[stride - 4:stride] = np.float32(value).tobytes()
        ply.write_bytes(header + body)
    elif problem == "nan":
        body[0:4] = np.float32(np.nan).tobytes()
        ply.write_bytes(header + body)
    elif problem == "truncated":
        ply.write_bytes(header + body[: len(body) // 2])
    elif problem == "no_binding":
        ply.write_bytes(header.replace(b"property float binding_0", b"property float extra_0") + body)
    elif problem == "no_params":
        os.remove(folder / "flame_param.npz")
    elif problem in ("bad_shape", "nan_offset"):
        prm = dict(files["arrays"]["params"])
        if problem == "bad_shape":
            prm["shape"] = np.zeros((3, 4), np.float32)
        else:
            prm["static_offset"] = prm["static_offset"].copy()
            prm["static_offset"][0, 5, 1] = np.nan
        np.savez(folder / "flame_param.npz", **prm)
    elif problem == "not_npz":
        (folder / "flame_param.npz").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(GaussianHeadsError, match=match) as info:
        load_avatar(str(folder), files["flame"])
    assert str(folder) in str(info.value)


# ------------------------------------------------------------------------------------------------
# Fuzz (slow): structured mutations of valid files never escape as anything but one clear error

def _fuzz_setup(files, tmp_path_factory):
    flame = load_head_model(files["flame"])
    folder = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(files["folder"], folder, dirs_exist_ok=True)
    return flame, folder


def _load_or_clear_error(folder, flame, flame_path):
    try:
        ident = load_avatar(str(folder), flame_path, flame=flame)
    except GaussianHeadsError as exc:
        assert str(exc).strip()
        return
    g = ident.pose(ident.neutral_params())
    assert np.isfinite(g.means).all()


@pytest.mark.slow
def test_fuzz_point_cloud_ply(files, tmp_path_factory):
    from hypothesis import HealthCheck, given, settings, strategies as st

    flame, folder = _fuzz_setup(files, tmp_path_factory)
    header, body = _table(folder)
    n = len(files["arrays"]["binding"])
    stride = len(body) // n
    lines = header.decode("ascii").split("\n")

    @st.composite
    def mutation(draw):
        kind = draw(st.sampled_from(["cut", "bytes", "value", "header_line", "count", "binding_type"]))
        h, b = list(lines), bytearray(body)
        if kind == "cut":
            b = b[: draw(st.integers(0, len(b)))]
        elif kind == "bytes":
            for _ in range(draw(st.integers(1, 8))):
                i = draw(st.integers(0, len(b) - 1))
                b[i] = draw(st.integers(0, 255))
        elif kind == "value":
            row, col = draw(st.integers(0, n - 1)), draw(st.integers(0, stride // 4 - 1))
            value = draw(st.sampled_from([np.nan, np.inf, -1.0, 1e30, 2.5, 168.0 + 1e5, -0.0, 1e-30]))
            b[row * stride + 4 * col: row * stride + 4 * col + 4] = np.float32(value).tobytes()
        elif kind == "header_line":
            i = draw(st.integers(1, len(h) - 3))
            choice = draw(st.sampled_from(["drop", "dup", "garble"]))
            if choice == "drop":
                del h[i]
            elif choice == "dup":
                h.insert(i, h[i])
            else:
                h[i] = draw(st.sampled_from(["property float", "element vertex -1", "property list uchar int x",
                                             "format ascii 1.0", "property double binding_0", "comment \x7f"]))
        elif kind == "count":
            h[2] = f"element vertex {draw(st.integers(0, 3 * n))}"
        else:
            h = [ln.replace("property float binding_0", "property " + draw(
                st.sampled_from(["int", "uchar", "double", "short"])) + " binding_0") for ln in h]
        return "\n".join(h).encode("latin1") + bytes(b)

    @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(mutation())
    def run(data):
        (folder / "point_cloud.ply").write_bytes(data)
        _load_or_clear_error(folder, flame, files["flame"])

    run()


@pytest.mark.slow
def test_fuzz_flame_param_npz(files, tmp_path_factory):
    from hypothesis import HealthCheck, given, settings, strategies as st

    flame, folder = _fuzz_setup(files, tmp_path_factory)
    base = files["arrays"]["params"]
    raw = (folder / "flame_param.npz").read_bytes()

    @st.composite
    def mutation(draw):
        kind = draw(st.sampled_from(["drop", "shape", "dtype", "value", "bytes", "cut"]))
        prm = {k: v.copy() for k, v in base.items()}
        key = draw(st.sampled_from(sorted(prm)))
        if kind == "drop":
            del prm[key]
        elif kind == "shape":
            dims = draw(st.lists(st.integers(0, 6), min_size=0, max_size=3))
            prm[key] = np.ones(dims, np.float32)
        elif kind == "dtype":
            prm[key] = draw(st.sampled_from([np.array(["text"]), np.array([True, False]),
                                             np.zeros((1, 3), np.complex64), prm[key].astype(np.float16)]))
        elif kind == "value":
            a = prm[key].reshape(-1)
            if a.size:
                a[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from([np.nan, np.inf, 1e30, -1e30]))
        if kind in ("bytes", "cut"):
            data = bytearray(raw)
            if kind == "cut":
                data = data[: draw(st.integers(0, len(data)))]
            else:
                for _ in range(draw(st.integers(1, 8))):
                    data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
            return bytes(data)
        return prm

    @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(mutation())
    def run(data):
        target = folder / "flame_param.npz"
        if isinstance(data, bytes):
            target.write_bytes(data)
        else:
            np.savez(target, **data)
        _load_or_clear_error(folder, flame, files["flame"])

    run()


def test_read_avatar_reports_counts(files):
    data = read_avatar(files["folder"])
    assert len(data.faces) == len(files["arrays"]["binding"]) and data.shape.shape == (300,)
