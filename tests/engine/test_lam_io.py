"""LAM avatar zips: import poses like LAM's renderer, our export round-trips, bad input is refused."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from engine.avatar.builtin import BuiltinSamplerConfig, BuiltinSource
from engine.avatar.sources import parse_source, sample_identity
from engine.errors import GaussianHeadsError, InputFileError
from engine.head_model.lbs import rodrigues
from engine.io.lam import read_lam_zip, write_lam_zip
from tests.engine.lam_fixtures import lam_members, make_lam_zip, zip_bytes


@pytest.fixture(scope="module")
def lam_zip(tmp_path_factory):
    path = tmp_path_factory.mktemp("lam") / "synthetic.zip"
    truth = make_lam_zip(path)
    return path, truth


def _renderer_centres(truth, expr: dict, head_rot, neck_rot) -> np.ndarray:
    """LAM's renderer, written out: vertex + offset + Σ w·delta, then the head bone's world
    transform (neck bone rotated by our head rotation, head bone by our neck), in glb space."""
    centre = truth.positions + truth.offsets
    for name, w in expr.items():
        centre = centre + w * truth.targets[truth.target_names.index(name)]
    neck_pos, head_pos = truth.bone_world[3], truth.bone_world[4]
    r_g, r_n = rodrigues(np.asarray(head_rot, np.float64)), rodrigues(np.asarray(neck_rot, np.float64))
    inner = (centre - head_pos) @ r_n.T + head_pos
    return (inner - neck_pos) @ r_g.T + neck_pos


@pytest.mark.parametrize("expr,head_rot,neck_rot", [
    ({}, (0, 0, 0), (0, 0, 0)),
    ({"jawOpen": 1.0, "mouthSmileLeft": 0.5}, (0, 0, 0), (0, 0, 0)),
    ({"eyeBlinkRight": 0.8, "browInnerUp": 0.3}, (0.2, -0.3, 0.1), (0.0, 0.25, -0.1)),
])
def test_import_poses_like_lams_renderer(lam_zip, expr, head_rot, neck_rot):
    path, truth = lam_zip
    identity = read_lam_zip(path).identity
    origin = np.asarray(identity.meta["lam_origin"])
    params = identity.neutral_params()
    for name, w in expr.items():
        params.expr[identity.model.expr_names.index(name)] = w
    params.global_rot[:] = head_rot
    params.neck[:] = neck_rot
    got = identity.pose(params)
    want = _renderer_centres(truth, expr, head_rot, neck_rot) - origin
    assert np.abs(got.means - want).max() < 2e-6
    assert np.array_equal(got.log_scales, truth.gaussians.log_scales)
    assert np.array_equal(got.opacity_logits, truth.gaussians.opacity_logits)
    assert identity.model.n_expr == 52 and not identity.model.exprdirs[:, :, -1].any()   # tongueOut absent


def test_imported_zip_is_a_source(lam_zip):
    path, truth = lam_zip
    spec = parse_source(f"lam:{path}")
    identity = sample_identity(spec, seed=3)
    assert len(identity) == len(truth.positions)
    with pytest.raises(GaussianHeadsError, match="one Gaussian per vertex"):
        parse_source(f"lam:{path}", n_gaussians=100)


def _poses(identity):
    names = identity.model.expr_names
    out = []
    for expr, rot, jaw in (({}, (0, 0, 0), 0.0), ({"jawOpen": 0.7, "mouthPucker": 0.4}, (0, 0, 0), 0.0),
                           ({"eyeBlinkLeft": 1.0}, (0.1, 0.4, -0.2), 0.0), ({}, (0, 0, 0), 0.2)):
        p = identity.neutral_params()
        for n, w in expr.items():
            p.expr[names.index(n)] = w
        p.global_rot[:] = rot
        p.jaw[0] = jaw
        out.append(p)
    return out


def test_export_builtin_round_trips(tmp_path):
    identity = BuiltinSource(config=BuiltinSamplerConfig(n_gaussians=3000)).sample(5)
    write_lam_zip(identity, tmp_path / "round.zip")
    back = read_lam_zip(tmp_path / "round.zip").identity
    for p, q in zip(_poses(identity), _poses(back)):
        a, b = identity.pose(p), back.pose(q)
        tol = 1e-5 if not p.jaw.any() else 2e-3   # the jaw bends faces; an anchor follows its own weights
        assert np.abs(a.means - b.means).max() < tol
        if not p.expr.any() and not p.jaw.any():
            # LAM's format keeps a Gaussian's orientation under blendshapes (ours turn with their
            # face), so orientations agree exactly only without expression
            assert np.abs(np.abs((a.quats * b.quats).sum(1)) - 1).max() < 1e-5
        np.testing.assert_allclose(a.sh, b.sh, atol=2e-6)  # DC goes through the colour and back
        assert np.array_equal(a.opacity_logits, b.opacity_logits)


def test_offset_ply_holds_the_colour_itself(tmp_path):
    """LAM's exporter writes RGB into f_dc (rgb2sh=False) and its renderer reads f_dc as 8-bit RGB:
    the written f_dc are our displayed base colour, not SH coefficients."""
    import zipfile

    from engine.avatar.gaussian_set import sh_dc_to_rgb
    from engine.io.ply import read_ply_full

    identity = BuiltinSource(config=BuiltinSamplerConfig(n_gaussians=2000)).sample(2)
    write_lam_zip(identity, tmp_path / "colour.zip")
    with zipfile.ZipFile(tmp_path / "colour.zip") as zf:
        (tmp_path / "offset.ply").write_bytes(zf.read("colour/offset.ply"))
    f_dc = read_ply_full(tmp_path / "offset.ply").gaussians.sh[:, 0, :]
    expected = sh_dc_to_rgb(identity.pose(identity.neutral_params()).sh[:, 0, :])
    np.testing.assert_allclose(f_dc, expected, atol=1e-6)
    assert f_dc.min() > -0.05 and f_dc.max() < 1.05  # colours, where SH DC coefficients span about ±1.8


def test_export_imported_lam_keeps_it(lam_zip, tmp_path):
    path, _ = lam_zip
    first = read_lam_zip(path).identity
    write_lam_zip(first, tmp_path / "again.zip")
    second = read_lam_zip(tmp_path / "again.zip").identity
    for p, q in zip(_poses(first)[:3], _poses(second)[:3]):
        assert np.abs(first.pose(p).means - second.pose(q).means).max() < 1e-5


def test_written_zip_layout(tmp_path):
    identity = BuiltinSource(config=BuiltinSamplerConfig(n_gaussians=500)).sample(1)
    write_lam_zip(identity, tmp_path / "head.zip")
    with zipfile.ZipFile(tmp_path / "head.zip") as zf:
        names = zf.namelist()
        order = json.loads(zf.read("head/vertex_order.json"))
    assert names[0] == "head/" and set(names[1:]) == {f"head/{m}" for m in
                                                       ("skin.glb", "offset.ply", "vertex_order.json", "animation.glb")}
    assert sorted(order) == list(range(500))


# -- bad input ---------------------------------------------------------------------------------

def _write(tmp_path, data: bytes, name="bad.zip"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _expect(tmp_path, data, match):
    p = _write(tmp_path, data)
    with pytest.raises(InputFileError, match=match) as info:
        read_lam_zip(p)
    assert str(p) in str(info.value)


@pytest.fixture(scope="module")
def small_members():
    return lam_members(seed=1, stride=20)[0]


def test_truncated_and_corrupt_zips(tmp_path, small_members):
    data = zip_bytes(small_members)
    _expect(tmp_path, data[: len(data) // 2], "zip")
    _expect(tmp_path, b"PK\x03\x04 not really", "zip")


def test_hostile_member_names(tmp_path, small_members):
    _expect(tmp_path, zip_bytes(small_members, extra={"../evil.txt": b"x"}), r"'\.\.'")
    _expect(tmp_path, zip_bytes(small_members, extra={"/etc/passwd": b"x"}), "absolute")


def test_zip_bomb(tmp_path, small_members):
    _expect(tmp_path, zip_bytes(small_members, extra={"avatar/pad.bin": bytes(50 << 20)}), "zip bomb")


def test_missing_member(tmp_path, small_members):
    members = dict(small_members)
    del members["offset.ply"]
    _expect(tmp_path, zip_bytes(members), "missing offset.ply")


def test_vertex_order_not_a_permutation(tmp_path, small_members):
    order = json.loads(small_members["vertex_order.json"])
    order[0] = order[1]
    _expect(tmp_path, zip_bytes({**small_members, "vertex_order.json": json.dumps(order).encode()}), "permutation")


def test_ply_glb_counts_disagree(tmp_path, small_members):
    other = lam_members(seed=1, stride=25)[0]
    _expect(tmp_path, zip_bytes({**small_members, "offset.ply": other["offset.ply"]}), "vertices")


def test_non_finite_ply(tmp_path, small_members):
    ply = bytearray(small_members["offset.ply"])
    start = ply.index(b"end_header\n") + len(b"end_header\n")
    ply[start:start + 4] = np.float32(np.nan).tobytes()
    _expect(tmp_path, zip_bytes({**small_members, "offset.ply": bytes(ply)}), "NaN")


def _with_targets(members, rename=None, drop=None):
    import pygltflib

    gltf = pygltflib.GLTF2.load_from_bytes(members["skin.glb"])
    names = gltf.meshes[0].extras["targetNames"]
    if rename:
        names[names.index(rename[0])] = rename[1]
    if drop:
        i = names.index(drop)
        del names[i]
        del gltf.meshes[0].primitives[0].targets[i]
    return {**members, "skin.glb": b"".join(bytes(x) for x in gltf.save_to_bytes())}


def test_target_names(tmp_path, small_members):
    _expect(tmp_path, zip_bytes(_with_targets(small_members, rename=("jawOpen", "mouthOpen"))), "non-ARKit")
    _expect(tmp_path, zip_bytes(_with_targets(small_members, drop="cheekPuff")), "missing ARKit")
    _expect(tmp_path, zip_bytes(_with_targets(small_members, rename=("jawOpen", "cheekPuff"))), "twice")


def test_corrupt_glb(tmp_path, small_members):
    glb = small_members["skin.glb"]
    _expect(tmp_path, zip_bytes({**small_members, "skin.glb": glb[: len(glb) // 2]}), "skin.glb")
    _expect(tmp_path, zip_bytes({**small_members, "skin.glb": b"nope"}), "glTF")


def test_animation_glb_reads_as_a_take(tmp_path, small_members):
    from engine.animation.formats import read_any
    from engine.io.lam_glb_write import template_clips

    path = tmp_path / "animation.glb"
    path.write_bytes(small_members["animation.glb"])
    seq = read_any(path)
    name, times, quats = template_clips()[0]
    assert seq.source_format == "lam_animation_glb" and seq.space == "arkit" and seq.n_frames == len(times)
    angle = 2 * np.arctan2(np.linalg.norm(quats[:, :3], axis=1), quats[:, 3]) * np.sign(quats[:, 0] + 1e-30)
    assert np.abs(seq.neck[:, 0] - angle).max() < 1e-5           # the head bone's nod about +X
    assert not seq.global_rot.any() and not seq.expr.any()


def test_vertex_order_with_huge_numbers(tmp_path, small_members):
    n = len(json.loads(small_members["vertex_order.json"]))
    order = list(range(n))
    order[0] = 1 << 80
    _expect(tmp_path, zip_bytes({**small_members, "vertex_order.json": json.dumps(order).encode()}), "permutation")
