"""3DGS PLY reading and writing (engine.io.ply)."""

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from engine.avatar.gaussian_set import GaussianSet
from engine.errors import InputFileError
from engine.io.ply import ply_bytes, read_ply, read_ply_full, write_ply


def _gaussians(n=500, degree=3, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return GaussianSet(rng.normal(size=(n, 3)), rng.normal(-3, 1, (n, 3)), q, rng.normal(size=n),
                       rng.normal(size=(n, (degree + 1) ** 2, 3)))


def _same(a, b):
    return all(np.array_equal(getattr(a, f), getattr(b, f))
               for f in ("means", "log_scales", "quats", "opacity_logits", "sh"))


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_is_exact(tmp_path, degree):
    g = _gaussians(degree=degree)
    path = tmp_path / "g.ply"
    write_ply(path, g, extras={"binding_0": np.arange(len(g), dtype=np.int32)})
    back = read_ply_full(path)
    assert _same(back.gaussians, g)
    assert back.gaussians.sh_degree == degree
    assert np.array_equal(back.extras["binding_0"], np.arange(len(g)))


def test_writing_is_deterministic(tmp_path):
    g = _gaussians()
    write_ply(tmp_path / "a.ply", g)
    write_ply(tmp_path / "b.ply", _gaussians())
    assert (tmp_path / "a.ply").read_bytes() == (tmp_path / "b.ply").read_bytes()
    assert not list(tmp_path.glob("*.tmp*"))


def test_layout_matches_inria_convention(tmp_path):
    """Field order and channel-major f_rest, checked with an independent reader (plyfile)."""
    g = _gaussians(n=50, degree=2)
    write_ply(tmp_path / "g.ply", g)
    v = PlyData.read(str(tmp_path / "g.ply"))["vertex"]
    names = [p.name for p in v.properties]
    assert names == (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
                     + [f"f_rest_{i}" for i in range(24)]
                     + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])
    assert all(p.val_dtype in ("f4", "<f4", "float32") for p in v.properties)
    for c in range(3):
        assert np.array_equal(v[f"f_dc_{c}"], g.sh[:, 0, c])
        for k in range(1, 9):
            assert np.array_equal(v[f"f_rest_{c * 8 + k - 1}"], g.sh[:, k, c])
    assert np.array_equal(v["rot_0"], g.quats[:, 0]) and np.array_equal(v["scale_2"], g.log_scales[:, 2])
    assert not v["nx"].any()


def test_reads_public_sample_without_normals(samples_dir):
    path = samples_dir / "splat_no_normals.ply"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    g = read_ply(path)
    ref = PlyData.read(str(path))["vertex"]
    assert len(g) == 45_624 and g.sh_degree == 0
    g.validate_finite()
    assert np.array_equal(g.means[:, 1], ref["y"]) and np.array_equal(g.sh[:, 0, 2], ref["f_dc_2"])
    assert np.array_equal(g.opacity_logits, ref["opacity"])
    np.testing.assert_allclose(np.linalg.norm(g.quats, axis=1), 1.0, atol=1e-5)
    raw = np.stack([ref[f"rot_{i}"] for i in range(4)], 1)
    np.testing.assert_allclose(g.quats, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)


def _write_plyfile(path, fields, n=10, fmt_text=False, byte_order="<", extra_elements=()):
    rng = np.random.default_rng(1)
    data = np.zeros(n, [(f, "f4") for f in fields])
    for f in fields:
        data[f] = rng.normal(size=n)
    if "rot_0" in fields:
        data["rot_0"] += 3.0
    elements = [PlyElement.describe(data, "vertex")] + list(extra_elements)
    PlyData(elements, text=fmt_text, byte_order=byte_order).write(str(path))
    return data


BASE = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
        "rot_0", "rot_1", "rot_2", "rot_3"]


def test_tolerates_extras_big_endian_ascii_and_later_elements(tmp_path):
    fields = BASE[:3] + ["nx", "ny", "nz"] + BASE[3:] + [f"f_rest_{i}" for i in range(9)] + ["binding_0"]
    ref = _write_plyfile(tmp_path / "be.ply", fields, byte_order=">")
    g = read_ply_full(tmp_path / "be.ply")
    assert g.gaussians.sh_degree == 1 and np.array_equal(g.extras["binding_0"], ref["binding_0"])
    assert g.extras["binding_0"].dtype.isnative
    assert np.array_equal(g.gaussians.sh[:, 1, 0], ref["f_rest_0"]) and np.array_equal(g.gaussians.sh[:, 1, 1], ref["f_rest_3"])
    _write_plyfile(tmp_path / "ascii.ply", BASE, fmt_text=True)
    a = read_ply(tmp_path / "ascii.ply")
    assert len(a) == 10 and a.sh_degree == 0
    face = PlyElement.describe(np.array([([0, 1, 2],)], [("vertex_indices", "i4", (3,))]), "face")
    _write_plyfile(tmp_path / "faces.ply", BASE, extra_elements=[face])
    assert len(read_ply(tmp_path / "faces.ply")) == 10


def _expect_error(path, match):
    with pytest.raises(InputFileError, match=match) as info:
        read_ply(path)
    assert str(path) in str(info.value)


def test_rejects_malformed_files(tmp_path):
    good = tmp_path / "good.ply"
    write_ply(good, _gaussians(n=100, degree=1))
    data = good.read_bytes()

    (tmp_path / "trunc.ply").write_bytes(data[:-7])
    _expect_error(tmp_path / "trunc.ply", "truncated")
    (tmp_path / "headtrunc.ply").write_bytes(data[:60])
    _expect_error(tmp_path / "headtrunc.ply", "end_header")
    (tmp_path / "huge.ply").write_bytes(data.replace(b"element vertex 100", b"element vertex 99999999999"))
    _expect_error(tmp_path / "huge.ply", "claims")
    (tmp_path / "big.ply").write_bytes(data.replace(b"element vertex 100", b"element vertex 900000000"))
    _expect_error(tmp_path / "big.ply", "truncated")
    (tmp_path / "notply.ply").write_bytes(b"solid cube\nfacet normal 0 0 1\n")
    _expect_error(tmp_path / "notply.ply", "not a PLY")
    (tmp_path / "empty.ply").write_bytes(b"")
    _expect_error(tmp_path / "empty.ply", "not a PLY")
    (tmp_path / "nonascii.ply").write_bytes(data.replace(b"format", b"comment \xff\nformat", 1))
    _expect_error(tmp_path / "nonascii.ply", "non-ASCII")
    (tmp_path / "fmt.ply").write_bytes(data.replace(b"binary_little_endian 1.0", b"binary_middle_endian 1.0"))
    _expect_error(tmp_path / "fmt.ply", "unsupported format")
    (tmp_path / "kw.ply").write_bytes(data.replace(b"element vertex", b"elephant\nelement vertex"))
    _expect_error(tmp_path / "kw.ply", "unknown keyword")
    (tmp_path / "dup.ply").write_bytes(data.replace(b"property float nz", b"property float ny"))
    _expect_error(tmp_path / "dup.ply", "declared twice")

    _write_plyfile(tmp_path / "missing.ply", [f for f in BASE if f != "scale_1"])
    _expect_error(tmp_path / "missing.ply", "scale_1")
    _write_plyfile(tmp_path / "rest.ply", BASE + [f"f_rest_{i}" for i in range(7)])
    _expect_error(tmp_path / "rest.ply", "7 f_rest")
    _write_plyfile(tmp_path / "gap.ply", BASE + [f"f_rest_{i}" for i in range(1, 10)])
    _expect_error(tmp_path / "gap.ply", "f_rest_0 is missing")
    face = PlyElement.describe(np.array([([0, 1, 2],)], [("vertex_indices", "i4", (3,))]), "face")
    PlyData([face]).write(str(tmp_path / "novertex.ply"))
    _expect_error(tmp_path / "novertex.ply", "no 'vertex' element")
    PlyData([PlyElement.describe(np.zeros(3, [("x", "f4"), ("y", "f4"), ("z", "f4")]), "vertex")]).write(
        str(tmp_path / "points.ply"))
    _expect_error(tmp_path / "points.ply", "not a 3DGS PLY")

    g = _gaussians(n=20, degree=0)
    g.means[5, 1] = np.nan
    (tmp_path / "nan.ply").write_bytes(ply_bytes(g))
    _expect_error(tmp_path / "nan.ply", "NaN")
    g = _gaussians(n=20, degree=0)
    g.log_scales[3, 0] = np.inf
    (tmp_path / "inf.ply").write_bytes(ply_bytes(g))
    _expect_error(tmp_path / "inf.ply", "infinite scales")
    g = _gaussians(n=20, degree=0)
    g.quats[2] = 0
    (tmp_path / "zeroq.ply").write_bytes(ply_bytes(g))
    _expect_error(tmp_path / "zeroq.ply", "zero rotation")

    _write_plyfile(tmp_path / "a.ply", BASE, fmt_text=True)
    text = (tmp_path / "a.ply").read_bytes()
    head, body = text.split(b"end_header\n")
    (tmp_path / "ascii_junk.ply").write_bytes(head + b"end_header\n" + body.replace(b" ", b" abc ", 1))
    _expect_error(tmp_path / "ascii_junk.ply", "not a number")
    (tmp_path / "ascii_short.ply").write_bytes(head + b"end_header\n" + body[: len(body) // 2])
    _expect_error(tmp_path / "ascii_short.ply", "truncated")
    _expect_error(tmp_path / "does_not_exist.ply", "cannot read")


def test_write_rejects_non_finite(tmp_path):
    g = _gaussians(n=5)
    g.means[0, 0] = np.inf
    with pytest.raises(Exception, match="NaN or infinity"):
        write_ply(tmp_path / "x.ply", g)
    assert not (tmp_path / "x.ply").exists()
