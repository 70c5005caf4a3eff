"""Splat file formats (engine.io): SPZ, .splat, the registry; round trips, layouts, bad input, fuzz."""

from __future__ import annotations

import gzip
import math
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from engine.avatar.gaussian_set import SH_C0, GaussianSet
from engine.avatar.transforms import quat_to_matrix
from engine.errors import GaussianHeadsError, InputFileError
from engine.io import FORMATS, detect_format, read_splats, write_splats
from engine.io.ply import ply_bytes
from engine.io.splat import splat_bytes
from engine.io.spz import _flip_axes, _pack_smallest_three, _unpack_smallest_three, spz_bytes


def _gaussians(n=400, degree=3, seed=0):
    """Values inside every format's range (SPZ: |SH| < 1, colour DC within +-3)."""
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    sh = rng.uniform(-0.9, 0.9, (n, (degree + 1) ** 2, 3))
    sh[:, 0] = rng.uniform(-1.7, 1.7, (n, 3))
    return GaussianSet(rng.normal(size=(n, 3)), rng.uniform(-7, -1, (n, 3)), q, rng.normal(0, 2, n), sh)


def _cov(g):
    r = quat_to_matrix(g.quats)
    s = np.exp(2 * g.log_scales.astype(np.float64))
    return np.einsum("nij,nj,nkj->nik", r, s, r)


def _close(a, b, pos, log_scale, cov_rel, alpha, dc, sh1, sh_rest):
    """a == b within each field's quantisation step."""
    assert len(a) == len(b)
    assert np.abs(a.means - b.means).max() <= pos
    assert np.abs(a.log_scales - b.log_scales).max() <= log_scale
    # rotations compared through covariances built with the same scales (quaternions may differ
    # in sign, or by a half turn that maps the ellipsoid onto itself)
    ca = _cov(GaussianSet(a.means, b.log_scales, a.quats, a.opacity_logits, a.sh))
    cb = _cov(b)
    scale = np.abs(cb).max(axis=(1, 2))[:, None, None]
    assert (np.abs(ca - cb) / scale).max() <= cov_rel
    assert np.abs(a.opacities - b.opacities).max() <= alpha
    assert np.abs(a.sh[:, 0] - b.sh[:, 0]).max() <= dc
    if b.sh_degree:
        assert np.abs(a.sh[:, 1:4] - b.sh[:, 1:4]).max() <= sh1
        assert np.abs(a.sh[:, 4:] - b.sh[:, 4:]).max(initial=0) <= sh_rest


# --- round trips ----------------------------------------------------------------------------

@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_spz_round_trip_within_quantisation(tmp_path, version, degree):
    g = _gaussians(degree=degree)
    FORMATS["spz"].write(str(tmp_path / "g.spz"), g) if version == 3 else \
        (tmp_path / "g.spz").write_bytes(spz_bytes(g, version=version))
    back = read_splats(tmp_path / "g.spz")
    assert back.sh_degree == degree
    # v2 derives w from 8-bit x, y, z: near w = 0 that costs up to ~0.1 rad (why v3 exists)
    # steps: 2^-12 m, 1/16 log, 1/255 alpha, 1/(0.15*255) colour, SH 8/128 and 16/128 buckets
    _close(back, g, pos=0.5 / 4096 + 1e-6, log_scale=1 / 32 + 1e-5,
           cov_rel=0.25 if version == 2 else 0.01, alpha=0.5 / 255 + 1e-6,
           dc=0.5 / (0.15 * 255) + 1e-5, sh1=4.5 / 128 + 1e-6, sh_rest=8.5 / 128 + 1e-6)
    np.testing.assert_allclose(np.linalg.norm(back.quats, axis=1), 1, atol=1e-5)
    assert spz_bytes(g, version) == spz_bytes(_gaussians(degree=degree), version)  # deterministic


def test_splat_round_trip_within_quantisation(tmp_path):
    g = _gaussians(degree=0)
    g.sh[:, 0] = np.clip(g.sh[:, 0], -0.5 / SH_C0, 0.5 / SH_C0)
    write_splats(tmp_path / "g.splat", g)
    back = read_splats(tmp_path / "g.splat")
    assert np.array_equal(back.means, g.means)
    assert np.abs(back.log_scales - g.log_scales).max() < 1e-6
    _close(back, g, pos=0, log_scale=1e-6, cov_rel=0.04, alpha=0.5 / 255 + 1e-6,
           dc=0.5 / 255 / SH_C0 + 1e-5, sh1=0, sh_rest=0)
    assert (tmp_path / "g.splat").stat().st_size == 32 * len(g)


def test_splat_writer_drops_higher_sh(tmp_path):
    write_splats(tmp_path / "g.splat", _gaussians(degree=2))
    assert read_splats(tmp_path / "g.splat").sh_degree == 0


def test_ply_through_registry_is_exact(tmp_path):
    g = _gaussians(degree=3)
    assert write_splats(tmp_path / "g.PLY", g).name == "ply"
    back = read_splats(tmp_path / "g.PLY")
    assert all(np.array_equal(getattr(back, f), getattr(g, f)) for f in ("means", "quats", "sh"))


# --- layouts checked against encodings written here from the format descriptions -------------

def test_spz_layout_decoded_from_hand_built_file(tmp_path):
    """One degree-1 Gaussian packed by hand, field by field (version 2, 8 fractional bits)."""
    def fixed24(v):
        i = int(round(v * 256)) & 0xFFFFFF
        return bytes([i & 0xFF, (i >> 8) & 0xFF, i >> 16])
    pos = fixed24(1.5) + fixed24(-2.25) + fixed24(0.125)   # RUB as stored
    alpha = bytes([191])
    colour = bytes([127, 166, 89])                          # f_dc = (c/255 - .5)/.15
    scales = bytes([96, 112, 128])                          # log = s/16 - 10
    rot = bytes([128, 128, 255])                            # x, y ~ 0, z ~ 1 -> w ~ 0
    sh = bytes([128, 160, 96, 144, 128, 112, 128, 128, 192])
    payload = struct.pack("<IIIBBBB", 0x5053474E, 2, 1, 1, 8, 0, 0) + pos + alpha + colour + scales + rot + sh
    (tmp_path / "h.spz").write_bytes(gzip.compress(payload))
    g = read_splats(tmp_path / "h.spz")
    # RUB -> RDF: y and z negate
    np.testing.assert_allclose(g.means[0], [1.5, 2.25, -0.125])
    np.testing.assert_allclose(g.opacities[0], 191 / 255, atol=1e-6)
    np.testing.assert_allclose(g.sh[0, 0], (np.array([127, 166, 89]) / 255 - 0.5) / 0.15, atol=1e-6)
    np.testing.assert_allclose(g.log_scales[0], [-4, -3, -2])
    xyz = np.array([128, 128, 255]) / 127.5 - 1
    expect = np.array([math.sqrt(max(0, 1 - (xyz ** 2).sum())), xyz[0], -xyz[1], -xyz[2]])
    np.testing.assert_allclose(g.quats[0], expect / np.linalg.norm(expect), atol=1e-6)
    raw = (np.frombuffer(sh, np.uint8).reshape(3, 3).astype(float) - 128) / 128      # [coefficient, colour]
    np.testing.assert_allclose(g.sh[0, 1:], raw * np.array([-1, -1, 1])[:, None], atol=1e-6)


def _unpack_scalar(word):
    """Smallest-three decoding, one quaternion at a time, straight from the description."""
    largest = word >> 30
    q = [0.0] * 4
    rest = word
    for i in (3, 2, 1, 0):
        if i == largest:
            continue
        mag, neg = rest & 0x1FF, (rest >> 9) & 1
        rest >>= 10
        q[i] = (-1 if neg else 1) * math.sqrt(0.5) * mag / 511
    q[largest] = math.sqrt(max(0.0, 1 - sum(v * v for v in q)))
    return q


def test_smallest_three_matches_scalar_reference():
    rng = np.random.default_rng(3)
    q = rng.normal(size=(500, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    words = _pack_smallest_three(q)
    fast = _unpack_smallest_three(words)
    slow = np.array([_unpack_scalar(int(w)) for w in words])
    np.testing.assert_allclose(fast, slow, atol=1e-6)
    assert np.abs(np.abs((fast * q).sum(1)) - 1).max() < 1e-5   # same rotation up to sign


def test_axis_flip_equals_rotating_the_set():
    """The explicit RUB<->RDF sign flips equal GaussianSet.transformed (SH rotation included)."""
    g = _gaussians(degree=3)
    means, quats, sh = _flip_axes(g.means, g.quats, g.sh)
    turned = g.transformed(np.diag([1.0, -1.0, -1.0, 1.0]))
    np.testing.assert_allclose(means, turned.means, atol=1e-6)
    np.testing.assert_allclose(sh, turned.sh, atol=1e-5)
    flipped = GaussianSet(means, g.log_scales, quats, g.opacity_logits, sh)
    np.testing.assert_allclose(_cov(flipped), _cov(turned), atol=1e-6)


def test_splat_layout_decoded_from_hand_built_record(tmp_path):
    rec = struct.pack("<3f3f4B4B", 1.0, 2.0, 3.0, 0.01, 0.02, 0.5, 255, 128, 0, 204, 255, 128, 128, 128)
    (tmp_path / "h.splat").write_bytes(rec)
    g = read_splats(tmp_path / "h.splat")
    np.testing.assert_array_equal(g.means[0], [1, 2, 3])
    np.testing.assert_allclose(g.scales[0], [0.01, 0.02, 0.5], rtol=1e-6)
    np.testing.assert_allclose(0.5 + SH_C0 * g.sh[0, 0], [1, 128 / 255, 0], atol=1e-6)
    np.testing.assert_allclose(g.opacities[0], 0.8, atol=1e-6)
    np.testing.assert_allclose(g.quats[0], [1, 0, 0, 0], atol=1e-6)


# --- the registry -------------------------------------------------------------------------

def test_detection_by_content_then_extension(tmp_path):
    g = _gaussians(n=5, degree=0)
    (tmp_path / "ply_named.spz").write_bytes(ply_bytes(g))
    (tmp_path / "spz_named.ply").write_bytes(spz_bytes(g))
    (tmp_path / "a.splat").write_bytes(splat_bytes(g))
    assert detect_format(tmp_path / "ply_named.spz").name == "ply"
    assert detect_format(tmp_path / "spz_named.ply").name == "spz"
    assert detect_format(tmp_path / "a.splat").name == "splat"
    (tmp_path / "a.obj").write_bytes(splat_bytes(g))
    with pytest.raises(InputFileError, match="a.obj: not a Gaussian splat file"):
        read_splats(tmp_path / "a.obj")
    with pytest.raises(GaussianHeadsError, match="unknown splat format"):
        write_splats(tmp_path / "x.obj", g)


# --- bad input: one InputFileError naming the file and the problem ---------------------------

def _spz_payload(g, version=3):
    return gzip.decompress(spz_bytes(g, version))


@pytest.mark.parametrize("case, problem", [
    ("truncated", "truncated"), ("magic", "wrong magic"), ("count", "more than we accept"),
    ("version", "version 7"), ("degree", "SH degree 9"), ("not_gzip", "not gzip-compressed"),
    ("bad_crc", "damaged"), ("header", "inside its header"), ("extensions", "extensions"),
])
def test_bad_spz_files(tmp_path, case, problem):
    payload = bytearray(_spz_payload(_gaussians(n=50, degree=1)))
    if case == "truncated":
        data = gzip.compress(bytes(payload[:-7]))
    elif case == "magic":
        payload[0] ^= 0xFF
        data = gzip.compress(bytes(payload))
    elif case == "count":
        payload[8:12] = struct.pack("<I", 2 ** 31)
        data = gzip.compress(bytes(payload))
    elif case == "version":
        payload[4:8] = struct.pack("<I", 7)
        data = gzip.compress(bytes(payload))
    elif case == "degree":
        payload[12] = 9
        data = gzip.compress(bytes(payload))
    elif case == "extensions":
        payload[14] = 0x2
        data = gzip.compress(bytes(payload))
    elif case == "header":
        data = gzip.compress(bytes(payload[:10]))
    elif case == "bad_crc":
        data = bytearray(gzip.compress(bytes(payload)))
        data[-8] ^= 0xFF
        data = bytes(data)
    else:
        data = b"NGSP" + bytes(payload)
    path = tmp_path / "bad.spz"
    path.write_bytes(data)
    with pytest.raises(InputFileError, match=problem) as info:
        read_splats(path) if case != "not_gzip" else FORMATS["spz"].read(str(path))
    assert str(path) in str(info.value)


def test_spz_gzip_bomb_inflates_only_what_the_header_claims(tmp_path):
    """A 10-Gaussian header followed by 256 MiB of zeros: reading stays within a few MB."""
    header = _spz_payload(_gaussians(n=10, degree=0))
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(header)]
    zeros = bytes(1 << 20)
    parts += [packer.compress(zeros) for _ in range(256)]
    parts.append(packer.flush())
    path = tmp_path / "bomb.spz"
    path.write_bytes(b"".join(parts))
    tracemalloc.start()
    g = read_splats(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(g) == 10
    assert peak < 8 << 20


@pytest.mark.parametrize("case, problem", [
    ("truncated", "not a multiple of 32"), ("nan", "NaN or infinite positions"),
    ("scale", "negative or non-finite scale"), ("rotation", "zero rotation"),
])
def test_bad_splat_files(tmp_path, case, problem):
    table = np.frombuffer(splat_bytes(_gaussians(n=20, degree=0)), np.uint8).copy()
    floats = table.view("<f4").reshape(20, 8)
    if case == "truncated":
        table = table[:-5]
    elif case == "nan":
        floats[3, 1] = np.nan
    elif case == "scale":
        floats[4, 4] = -1.0
    else:
        table.reshape(20, 32)[5, 28:] = 128
    path = tmp_path / "bad.splat"
    path.write_bytes(table.tobytes())
    with pytest.raises(InputFileError, match=problem) as info:
        read_splats(path)
    assert str(path) in str(info.value)


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(InputFileError, match="cannot read file"):
        read_splats(tmp_path / "nope.spz")


# --- fuzz: structured mutations of valid files -------------------------------------------

def _mutate(data: bytes, draw, header_len: int) -> bytes:
    from hypothesis import strategies as st

    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "byte", "header", "insert", "float", "append"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "truncate":
            del data[at:]
        elif kind == "byte":
            data[at] = draw(st.integers(0, 255))
        elif kind == "header":
            i = draw(st.integers(0, max(0, min(header_len, len(data)) - 1)))
            data[i] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "float" and len(data) >= at + 4:
            value = draw(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e38, 1e-45]))
            data[at:at + 4] = struct.pack("<f", value)
        else:
            data += draw(st.binary(max_size=64))
    return bytes(data)


def _read_or_clean_error(path):
    try:
        g = read_splats(path)
    except InputFileError as exc:
        assert str(path) in str(exc)
        return "error"
    g.validate_finite("fuzzed file")
    np.testing.assert_allclose(np.linalg.norm(g.quats, axis=1), 1, atol=1e-4)
    return "read"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["spz", "splat", "ply"])
def test_fuzz_readers(tmp_path, fmt):
    """>= 1,000 mutated files per reader: each reads to finite Gaussians or raises InputFileError."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    base = _gaussians(n=12, degree=1, seed=5)
    valid = {"spz": _spz_payload(base), "splat": splat_bytes(base.with_sh_degree(0)),
             "ply": ply_bytes(base)}[fmt]
    header_len = valid.index(b"end_header") + 11 if fmt == "ply" else {"spz": 16, "splat": 32}[fmt]
    path = tmp_path / f"fuzz.{fmt}"
    seen = []

    @settings(max_examples=1000, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data(), st.booleans())
    def check(data, mutate_compressed):
        mutated = _mutate(valid, data.draw, header_len)
        if fmt == "spz":
            mutated = gzip.compress(mutated, mtime=0)
            if mutate_compressed:
                mutated = _mutate(mutated, data.draw, 10)
        path.write_bytes(mutated)
        seen.append(_read_or_clean_error(path))

    check()
    assert len(seen) >= 1000 and set(seen) == {"error", "read"}  # both outcomes exercised


def test_merge_places_splat_objects_by_their_transform():
    """Static splat objects join the merged set in world space (engine.scene_render)."""
    from engine.scene_render import SplatInstance, merge_avatars

    g = _gaussians(n=50, degree=1)
    matrix = np.eye(4)
    matrix[:3, :3] = 2.0 * np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])   # quarter turn, scale 2
    matrix[:3, 3] = [1.0, 2.0, 3.0]
    merged = merge_avatars([], splats=[SplatInstance("a", g), SplatInstance("b", g, matrix)])
    assert len(merged) == 100
    assert np.array_equal(merged.means[:50], g.means) and np.array_equal(merged.sh[:50], g.sh)
    moved = g.transformed(matrix)
    np.testing.assert_allclose(merged.means[50:], moved.means, atol=1e-6)
    np.testing.assert_allclose(merged.sh[50:], moved.sh, atol=1e-6)
    np.testing.assert_allclose(merged.means[50:], g.means @ matrix[:3, :3].T + [1, 2, 3], atol=1e-5)
    np.testing.assert_allclose(merged.log_scales[50:], g.log_scales + np.log(2.0), atol=1e-5)
